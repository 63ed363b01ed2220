"""The admin console: login, workspace isolation, role gates, switching, API keys, members, audit log."""

import re
import warnings

import pytest
from django.contrib.messages import get_messages
from django.core.paginator import UnorderedObjectListWarning
from django.urls import reverse

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope, Membership, User, Workspace
from accounts.permissions import workspace_permissions
from accounts.roles import Role, permissions_for
from accounts.tokens import hash_secret
from core.models import AuditEntry
from conftest import make_tenant
from accounts.middleware import SESSION_KEY
from tests.support.factories import EventFactory, ProfileFactory, UserFactory, make_member
from profiles.models import Device, Event, Identity, Profile

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"
# Every changelist below stays under this many queries, however many rows it shows.
MAX_CHANGELIST_QUERIES = 15


def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def login(client, user):
    client.force_login(user)
    return client


def changelist(client, model, max_queries, assert_max_queries, **params):
    with assert_max_queries(max_queries) as captured:
        response = client.get(admin_url(model), params)
    assert response.status_code == 200, response.status_code
    return response, len(captured)


def shown_pks(response) -> set:
    return {obj.pk for obj in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def switch(client, workspace_id):
    return client.post(reverse("admin:switch_workspace"), {"workspace": workspace_id}, follow=True)


# --- 1. login ------------------------------------------------------------------------------------


def test_login_page_renders(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_user_without_membership_cannot_enter_the_index(client, tenant_a):
    loner = UserFactory()
    login(client, loner)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    # Logging in through the form does not help either.
    client.logout()
    response = client.post(reverse("admin:login"), {"username": loner.email, "password": PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert response.context["form"].errors
    assert client.get(reverse("admin:index")).status_code == 302


def test_inactive_member_cannot_enter(client, tenant_a):
    tenant_a.owner.is_active = False
    tenant_a.owner.save()
    login(client, tenant_a.owner)
    assert client.get(reverse("admin:index")).status_code == 302


def test_member_can_log_in_through_the_login_form(client, tenant_a):
    # Members are not `is_staff`; the console is open to every active member.
    assert not tenant_a.owner.is_staff
    response = client.post(
        reverse("admin:login") + "?next=/admin/", {"username": tenant_a.owner.email, "password": PASSWORD}
    )
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert response.context["ulak_workspace"] == tenant_a.workspace


def test_client_login_of_a_member_reaches_the_index(client, tenant_a):
    assert client.login(email=tenant_a.owner.email, password=PASSWORD)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert tenant_a.workspace.name in response.content.decode()


# --- 2. changelists show the session's workspace only -----------------------------------------


def make_people(workspace, n, tag):
    profiles = [ProfileFactory(workspace=workspace, external_id=f"{tag}-person-{i}") for i in range(n)]
    for p in profiles:
        EventFactory(profile=p, name=f"{tag}-event")
        Device.unscoped.create(workspace=workspace, profile=p, platform="ios", token=f"{tag}-token-{p.pk}")
    return profiles


def test_profile_changelist_is_scoped(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    mine = make_people(a.workspace, 2, "acme")
    theirs = make_people(b.workspace, 2, "globex")
    response, _ = changelist(login(client, a.owner), Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == {p.pk for p in mine}
    assert "acme-person-0" in response.content.decode()
    assert "globex-person" not in response.content.decode()
    assert not shown_pks(response) & {p.pk for p in theirs}


def test_event_changelist_is_scoped(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    make_people(a.workspace, 2, "acme")
    make_people(b.workspace, 2, "globex")
    response, _ = changelist(login(client, a.owner), Event, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == set(Event.unscoped.filter(workspace=a.workspace).values_list("pk", flat=True))
    assert len(shown_pks(response)) == 2
    assert "globex" not in response.content.decode()


def test_membership_changelist_is_scoped(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    a_analyst = make_member(a.workspace, Role.ANALYST)
    b_analyst = make_member(b.workspace, Role.ANALYST)
    response, _ = changelist(
        login(client, a.owner), Membership, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries
    )
    assert shown_pks(response) == set(Membership.unscoped.filter(workspace=a.workspace).values_list("pk", flat=True))
    body = response.content.decode()
    assert a_analyst.email in body
    assert b_analyst.email not in body and b.owner.email not in body


def test_api_key_changelist_is_scoped(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    response, _ = changelist(login(client, a.owner), ApiKey, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == set(ApiKey.unscoped.filter(workspace=a.workspace).values_list("pk", flat=True))
    assert len(shown_pks(response)) == 3
    body = response.content.decode()
    for key in ApiKey.unscoped.filter(workspace=b.workspace):
        assert key.prefix not in body


def test_audit_changelist_is_scoped(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    ProfileFactory(workspace=b.workspace)
    response, _ = changelist(
        login(client, a.owner), AuditEntry, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries
    )
    expected = set(AuditEntry.objects.filter(workspace_id=a.workspace.pk).values_list("pk", flat=True))
    assert expected  # creating the tenant was audited
    assert shown_pks(response) == expected
    body = response.content.decode()
    assert b.owner.email not in body
    assert b.workspace.name not in body


def test_workspace_changelist_shows_only_the_session_workspace(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    response, _ = changelist(
        login(client, a.owner), Workspace, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries
    )
    assert shown_pks(response) == {a.workspace.pk}
    assert b.site_id not in response.content.decode()


def add_rows(workspace, n=20):
    """Twenty more rows of every kind, with related objects, in `workspace`."""
    make_people(workspace, n, f"bulk{workspace.pk}")
    for i in range(n):
        make_member(workspace, Role.ANALYST)
        services.create_api_key(workspace=workspace, kind=ApiKeyKind.APP, name=f"k{i}", scopes=[AppScope.READ])


@pytest.mark.parametrize("model", [Profile, Event, Device, Membership, ApiKey, AuditEntry, Workspace])
def test_changelist_query_count_does_not_grow_with_rows(client, tenant_a, model, django_assert_max_num_queries):
    login(client, tenant_a.owner)
    ProfileFactory(workspace=tenant_a.workspace)
    _, before = changelist(client, model, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    add_rows(tenant_a.workspace)
    with_rows, after = changelist(client, model, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert len(with_rows.context["cl"].result_list) >= (1 if model is Workspace else 20)
    assert after <= before, f"{model.__name__}: {before} queries for few rows, {after} for many (N+1)"


# --- 3. another workspace's objects do not exist ------------------------------------------------


def objects_of(tenant):
    """One object of each kind in `tenant`'s workspace."""
    return {
        Profile: ProfileFactory(workspace=tenant.workspace, external_id=f"{tenant.workspace.slug}-person"),
        Membership: Membership.unscoped.get(workspace=tenant.workspace, user=tenant.owner),
        ApiKey: ApiKey.unscoped.filter(workspace=tenant.workspace).first(),
        Workspace: tenant.workspace,
    }


@pytest.mark.parametrize("model", [Profile, Membership, ApiKey, Workspace])
@pytest.mark.parametrize("view", ["change", "history"])
def test_other_workspace_object_views_are_404(client, two_tenants, model, view):
    a, b = two_tenants
    theirs = objects_of(b)[model]
    response = login(client, a.owner).get(admin_url(model, view, theirs.pk))
    assert response.status_code == 404
    # ...and a POST to the change view neither succeeds nor changes anything.
    if view == "change":
        assert client.post(admin_url(model, view, theirs.pk), {"name": "pwned", "role": "analyst"}).status_code == 404
        theirs.refresh_from_db()
        assert getattr(theirs, "name", None) != "pwned" and getattr(theirs, "role", None) != "analyst"


@pytest.mark.parametrize("model", [Profile, Membership, ApiKey, Workspace])
def test_other_workspace_object_delete_is_refused(client, two_tenants, model):
    a, b = two_tenants
    theirs = objects_of(b)[model]
    login(client, a.owner)
    response = client.get(admin_url(model, "delete", theirs.pk))
    # Profiles, ApiKeys and Workspaces are never deleted in the console, so Django answers 403 before
    # looking the object up; either way nothing about B's object is revealed.
    expected = 404 if model is Membership else 403
    assert response.status_code == expected
    assert client.post(admin_url(model, "delete", theirs.pk), {"post": "yes"}).status_code == expected
    assert model._base_manager.filter(pk=theirs.pk).exists()


def test_own_objects_change_views_open(client, tenant_a):
    """The counterpart of the 404s above: the same views work for the session's own objects."""
    mine = objects_of(tenant_a)
    login(client, tenant_a.owner)
    for model, obj in mine.items():
        assert client.get(admin_url(model, "change", obj.pk)).status_code == 200, model
        assert client.get(admin_url(model, "history", obj.pk)).status_code == 200, model


# --- 4. autocomplete -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["event", "device", "identity"])
def test_profile_autocomplete_returns_own_workspace_only(client, two_tenants, source):
    a, b = two_tenants
    mine = ProfileFactory(workspace=a.workspace, external_id="match-acme")
    theirs = ProfileFactory(workspace=b.workspace, external_id="match-globex")
    response = login(client, a.owner).get(
        reverse("admin:autocomplete"),
        {"app_label": "profiles", "model_name": source, "field_name": "profile", "term": "match"},
    )
    assert response.status_code == 200
    ids = {int(r["id"]) for r in response.json()["results"]}
    assert ids == {mine.pk}
    assert theirs.pk not in ids


def test_profile_autocomplete_pages_in_a_stable_order(client, tenant_a):
    """Autocomplete pages 20 at a time; without an ordering, pages may repeat or skip people."""
    for i in range(25):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"many-{i}")
    login(client, tenant_a.owner)
    params = {"app_label": "profiles", "model_name": "event", "field_name": "profile", "term": "many"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = client.get(reverse("admin:autocomplete"), params).json()
        second = client.get(reverse("admin:autocomplete"), {**params, "page": 2}).json()
    assert not [w for w in caught if issubclass(w.category, UnorderedObjectListWarning)]
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 25


# --- 5. foreign-key choices ----------------------------------------------------------------------


def identity_post(profile_pk, anonymous_id="added-in-admin"):
    return {"profile": profile_pk, "anonymous_id": anonymous_id}


def device_post(profile_pk, token="admin-token"):
    return {"profile": profile_pk, "token": token, "platform": "ios", "attributes": "{}",
            "last_used_0": "", "last_used_1": ""}


@pytest.mark.parametrize("model", [Identity, Device])
def test_add_form_offers_only_own_profiles(client, two_tenants, model):
    a, b = two_tenants
    mine = ProfileFactory(workspace=a.workspace)
    theirs = ProfileFactory(workspace=b.workspace)
    response = login(client, a.owner).get(admin_url(model, "add"))
    assert response.status_code == 200
    choices = response.context["adminform"].form.fields["profile"].queryset
    assert set(choices.values_list("pk", flat=True)) == {mine.pk}
    assert f'value="{theirs.pk}"' not in response.content.decode()


@pytest.mark.parametrize("model, post", [(Identity, identity_post), (Device, device_post)])
def test_add_form_rejects_other_workspace_profile(client, two_tenants, model, post):
    a, b = two_tenants
    mine = ProfileFactory(workspace=a.workspace)
    theirs = ProfileFactory(workspace=b.workspace)
    login(client, a.owner)
    response = client.post(admin_url(model, "add"), post(theirs.pk))
    assert response.status_code == 200
    assert "profile" in response.context["adminform"].form.errors
    assert not model.unscoped.filter(profile=theirs).exists()
    # The same form with the workspace's own profile goes through, into the session's workspace.
    assert client.post(admin_url(model, "add"), post(mine.pk)).status_code == 302
    assert model.unscoped.get(profile=mine).workspace == a.workspace


# --- 6. roles ------------------------------------------------------------------------------------


def as_member(client, workspace, role):
    user = make_member(workspace, role)
    client.force_login(user)
    return user


def profile_post(profile, **changes):
    data = {
        "external_id": profile.external_id or "", "email": profile.email or "", "phone": "", "attributes": "{}",
        "time_zone": "",
        "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
        "devices-TOTAL_FORMS": "0", "devices-INITIAL_FORMS": "0",
    }
    return {**data, **changes}


@pytest.mark.parametrize(
    "role, model, allowed",
    [
        (Role.ANALYST, Profile, True), (Role.ANALYST, ApiKey, False), (Role.ANALYST, AuditEntry, False),
        (Role.DEVELOPER, ApiKey, True), (Role.DEVELOPER, AuditEntry, False),
        (Role.COMPLIANCE, AuditEntry, True), (Role.COMPLIANCE, ApiKey, False), (Role.COMPLIANCE, Profile, True),
        (Role.MARKETER, Profile, True), (Role.MARKETER, AuditEntry, False), (Role.MARKETER, ApiKey, False),
        (Role.ADMIN, Membership, True), (Role.ADMIN, AuditEntry, True),
    ],
)
def test_changelist_access_follows_the_role(client, tenant_a, role, model, allowed, django_assert_max_num_queries):
    as_member(client, tenant_a.workspace, role)
    if allowed:
        changelist(client, model, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    else:
        assert client.get(admin_url(model)).status_code == 403


@pytest.mark.parametrize("role", [Role.ANALYST, Role.COMPLIANCE, Role.DEVELOPER])
def test_read_only_roles_see_profiles_but_cannot_change_or_add(client, tenant_a, role):
    profile = ProfileFactory(workspace=tenant_a.workspace, external_id="before")
    as_member(client, tenant_a.workspace, role)
    response = client.get(admin_url(Profile, "change", profile.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()
    assert client.post(admin_url(Profile, "change", profile.pk), profile_post(profile, external_id="after")).status_code == 403
    profile.refresh_from_db()
    assert profile.external_id == "before"
    assert client.get(admin_url(Profile, "add")).status_code == 403
    assert client.post(admin_url(Profile, "delete", profile.pk), {"post": "yes"}).status_code == 403
    assert Profile.unscoped.filter(pk=profile.pk).exists()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.OWNER])
def test_people_roles_change_profiles(client, tenant_a, role):
    profile = ProfileFactory(workspace=tenant_a.workspace, external_id="before")
    as_member(client, tenant_a.workspace, role)
    response = client.post(admin_url(Profile, "change", profile.pk), profile_post(profile, external_id="after"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    profile.refresh_from_db()
    assert profile.external_id == "after"


def test_profile_change_view_shows_devices_and_identities(client, tenant_a):
    profile = ProfileFactory(workspace=tenant_a.workspace)
    Device.unscoped.create(workspace=tenant_a.workspace, profile=profile, platform="android", token="tok-visible")
    Identity.unscoped.create(workspace=tenant_a.workspace, profile=profile, anonymous_id="anon-visible")
    login(client, tenant_a.owner)
    response = client.get(admin_url(Profile, "change", profile.pk))
    assert response.status_code == 200
    assert len(response.context["inline_admin_formsets"]) == 2
    body = response.content.decode()
    assert "tok-visible" in body and "anon-visible" in body


def test_workspace_settings_follow_the_role(client, tenant_a):
    url = admin_url(Workspace, "change", tenant_a.workspace.pk)
    data = {"name": "Acme Renamed", "time_zone": "Europe/Istanbul", "event_retention_days": 30}
    as_member(client, tenant_a.workspace, Role.ANALYST)
    assert client.get(url).status_code == 200
    assert client.post(url, data).status_code == 403
    login(client, tenant_a.owner)
    assert client.post(url, data).status_code == 302
    tenant_a.workspace.refresh_from_db()
    assert (tenant_a.workspace.name, tenant_a.workspace.time_zone, tenant_a.workspace.event_retention_days) == (
        "Acme Renamed", "Europe/Istanbul", 30
    )
    assert client.get(admin_url(Workspace, "add")).status_code == 403
    assert client.post(admin_url(Workspace, "delete", tenant_a.workspace.pk), {"post": "yes"}).status_code == 403


def test_developer_creates_api_keys(client, tenant_a):
    developer = as_member(client, tenant_a.workspace, Role.DEVELOPER)
    response = client.post(admin_url(ApiKey, "add"), {"kind": "cdp", "name": "dev-key"})
    assert response.status_code == 302
    key = ApiKey.unscoped.get(name="dev-key")
    assert (key.workspace, key.created_by, key.kind) == (tenant_a.workspace, developer, ApiKeyKind.CDP)


@pytest.mark.parametrize("role", [Role.ANALYST, Role.MARKETER, Role.COMPLIANCE])
def test_roles_without_manage_api_keys_cannot_create_keys(client, tenant_a, role):
    as_member(client, tenant_a.workspace, role)
    assert client.post(admin_url(ApiKey, "add"), {"kind": "cdp", "name": "nope"}).status_code == 403
    assert not ApiKey.unscoped.filter(name="nope").exists()


def membership_of(user, workspace):
    return Membership.unscoped.get(user=user, workspace=workspace)


def test_admin_adds_members_but_not_owners(client, tenant_a):
    as_member(client, tenant_a.workspace, Role.ADMIN)
    response = client.post(admin_url(Membership, "add"), {"email": "boss@example.test", "role": Role.OWNER})
    assert response.status_code == 302
    assert not Membership.unscoped.filter(user__email="boss@example.test").exists()
    assert any("owner" in m.lower() for m in messages_of(response))

    response = client.post(admin_url(Membership, "add"), {"email": "helper@example.test", "role": Role.ANALYST})
    assert response.status_code == 302
    assert Membership.unscoped.get(user__email="helper@example.test").role == Role.ANALYST


def test_admin_cannot_promote_to_or_demote_from_owner(client, tenant_a):
    analyst = make_member(tenant_a.workspace, Role.ANALYST)
    as_member(client, tenant_a.workspace, Role.ADMIN)
    promote = membership_of(analyst, tenant_a.workspace)
    response = client.post(admin_url(Membership, "change", promote.pk), {"role": Role.OWNER})
    assert response.status_code == 302
    assert any("Only an owner" in m for m in messages_of(response))
    assert membership_of(analyst, tenant_a.workspace).role == Role.ANALYST

    owner = membership_of(tenant_a.owner, tenant_a.workspace)
    client.post(admin_url(Membership, "change", owner.pk), {"role": Role.ANALYST})
    assert membership_of(tenant_a.owner, tenant_a.workspace).role == Role.OWNER
    assert client.post(admin_url(Membership, "delete", owner.pk), {"post": "yes"}).status_code == 403
    assert Membership.unscoped.filter(pk=owner.pk).exists()

    # An ordinary role change is allowed.
    assert client.post(admin_url(Membership, "change", promote.pk), {"role": Role.MARKETER}).status_code == 302
    assert membership_of(analyst, tenant_a.workspace).role == Role.MARKETER


def test_owner_grants_owner(client, tenant_a):
    analyst = make_member(tenant_a.workspace, Role.ANALYST)
    login(client, tenant_a.owner)
    membership = membership_of(analyst, tenant_a.workspace)
    assert client.post(admin_url(Membership, "change", membership.pk), {"role": Role.OWNER}).status_code == 302
    assert membership_of(analyst, tenant_a.workspace).role == Role.OWNER
    assert workspace_permissions(analyst, tenant_a.workspace) == permissions_for(Role.OWNER)


# --- 7. switching workspaces ---------------------------------------------------------------------


def test_switching_workspace_changes_data_and_role(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    a_profile = ProfileFactory(workspace=a.workspace, external_id="acme-only")
    b_profile = ProfileFactory(workspace=b.workspace, external_id="globex-only")
    services.add_member(workspace=b.workspace, email=a.owner.email, role=Role.ANALYST)
    login(client, a.owner)

    response, _ = changelist(client, Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == {a_profile.pk}  # "Acme" sorts first: the default
    assert client.get(admin_url(ApiKey)).status_code == 200  # owner of A

    response = switch(client, b.workspace.pk)
    assert response.status_code == 200
    assert client.session[SESSION_KEY] == b.workspace.pk
    response, _ = changelist(client, Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == {b_profile.pk}
    assert response.context["ulak_workspace"] == b.workspace
    assert client.get(admin_url(Profile, "change", a_profile.pk)).status_code == 404
    # B's role (analyst) applies now.
    assert client.get(admin_url(ApiKey)).status_code == 403
    assert client.post(admin_url(Profile, "change", b_profile.pk), profile_post(b_profile)).status_code == 403

    # A workspace the user is not a member of: refused, and B stays selected.
    c = make_tenant("Contoso")
    switch(client, c.workspace.pk)
    response, _ = changelist(client, Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert response.context["ulak_workspace"] == b.workspace
    assert shown_pks(response) == {b_profile.pk}

    switch(client, a.workspace.pk)
    response, _ = changelist(client, Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == {a_profile.pk}


def test_cannot_switch_to_a_workspace_without_membership(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    a_profile = ProfileFactory(workspace=a.workspace)
    ProfileFactory(workspace=b.workspace)
    login(client, a.owner)
    response = switch(client, b.workspace.pk)
    assert response.status_code == 200
    assert any("not a member" in m for m in map(str, response.context["messages"]))
    assert client.session.get(SESSION_KEY) != b.workspace.pk
    response, _ = changelist(client, Profile, MAX_CHANGELIST_QUERIES, django_assert_max_num_queries)
    assert shown_pks(response) == {a_profile.pk}
    assert response.context["ulak_workspace"] == a.workspace


def test_switch_is_post_only_and_a_forged_session_falls_back(client, two_tenants):
    a, b = two_tenants
    login(client, a.owner)
    assert client.get(reverse("admin:switch_workspace"), {"workspace": b.workspace.pk}).status_code == 405
    session = client.session
    session[SESSION_KEY] = b.workspace.pk  # not a member of B: the middleware must ignore it
    session.save()
    response = client.get(admin_url(Workspace))
    assert shown_pks(response) == {a.workspace.pk}


# --- 8. API keys ---------------------------------------------------------------------------------

SECRET = re.compile(r"ulk_app_[A-Za-z0-9_\-]{40,}")  # a whole secret, not the 12-character prefix


def test_api_key_secret_is_shown_once_and_only_its_hash_is_stored(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(
        admin_url(ApiKey, "add"), {"kind": "app", "name": "ci", "scopes": ["read", "write"]}, follow=True
    )
    assert response.status_code == 200
    secrets_shown = SECRET.findall(response.content.decode())
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]

    key = ApiKey.unscoped.get(workspace=tenant_a.workspace, name="ci")
    assert key.scopes == ["read", "write"]
    assert key.secret_hash == hash_secret(secret)
    row = ApiKey.unscoped.filter(pk=key.pk).values().get()
    assert not [field for field, value in row.items() if secret in str(value)]
    assert key.prefix == secret[:12]
    for entry in AuditEntry.objects.filter(content_type__model="apikey", object_pk=str(key.pk)):
        assert secret not in str(entry.changes) and secret not in entry.object_repr

    # Shown once: the next page no longer has it.
    assert secret not in client.get(admin_url(ApiKey)).content.decode()
    assert secret not in client.get(admin_url(ApiKey, "change", key.pk)).content.decode()


def test_app_key_without_scopes_is_refused(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(admin_url(ApiKey, "add"), {"kind": "app", "name": "noscope"})
    assert response.status_code == 200
    assert "scopes" in response.context["adminform"].form.errors
    assert not ApiKey.unscoped.filter(name="noscope").exists()


def revoke(client, *pks):
    return client.post(admin_url(ApiKey), {"action": "revoke_keys", "_selected_action": list(pks), "index": 0, "confirmed": "yes"})


def test_revoke_action_sets_revoked_at_only_in_own_workspace(client, two_tenants):
    a, b = two_tenants
    mine = ApiKey.unscoped.filter(workspace=a.workspace, kind=ApiKeyKind.APP).get()
    theirs = ApiKey.unscoped.filter(workspace=b.workspace, kind=ApiKeyKind.APP).get()
    login(client, a.owner)
    assert revoke(client, mine.pk, theirs.pk).status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None


def test_analyst_cannot_revoke(client, tenant_a):
    key = ApiKey.unscoped.filter(workspace=tenant_a.workspace).first()
    as_member(client, tenant_a.workspace, Role.ANALYST)
    assert revoke(client, key.pk).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_api_keys_cannot_be_deleted(client, tenant_a):
    key = ApiKey.unscoped.filter(workspace=tenant_a.workspace).first()
    login(client, tenant_a.owner)
    response = client.get(admin_url(ApiKey))
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert "revoke_keys" in actions and "rotate_keys" in actions
    assert client.get(admin_url(ApiKey, "delete", key.pk)).status_code == 403
    assert client.post(admin_url(ApiKey, "delete", key.pk), {"post": "yes"}).status_code == 403
    client.post(admin_url(ApiKey), {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"})
    assert ApiKey.unscoped.filter(pk=key.pk).exists()


def test_rotate_action_shows_new_secret_and_revokes_old(client, tenant_a):
    old = ApiKey.unscoped.filter(workspace=tenant_a.workspace, kind=ApiKeyKind.APP).get()
    login(client, tenant_a.owner)
    response = client.post(
        admin_url(ApiKey), {"action": "rotate_keys", "_selected_action": [old.pk], "index": 0, "confirmed": "yes"}, follow=True
    )
    (secret,) = SECRET.findall(response.content.decode())
    old.refresh_from_db()
    assert old.revoked_at is not None and old.replaced_by is not None
    assert old.replaced_by.secret_hash == hash_secret(secret)
    assert secret != tenant_a.app_key


# --- 9. members ----------------------------------------------------------------------------------


def test_adding_a_member_by_email_creates_user_and_grants(client, tenant_a):
    login(client, tenant_a.owner)
    response = client.post(
        admin_url(Membership, "add"),
        {"email": "New.Person@Example.test", "password": "a-fresh-pass-77", "role": Role.MARKETER},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.test")
    assert user.check_password("a-fresh-pass-77")
    assert membership_of(user, tenant_a.workspace).role == Role.MARKETER
    assert workspace_permissions(user, tenant_a.workspace) == permissions_for(Role.MARKETER)


def test_adding_an_existing_user_keeps_their_password(client, two_tenants):
    a, b = two_tenants
    login(client, a.owner)
    response = client.post(
        admin_url(Membership, "add"), {"email": b.owner.email, "password": "ignored-pass-1", "role": Role.ANALYST}
    )
    assert response.status_code == 302
    b.owner.refresh_from_db()
    assert b.owner.check_password(PASSWORD)
    assert workspace_permissions(b.owner, a.workspace) == permissions_for(Role.ANALYST)
    assert workspace_permissions(b.owner, b.workspace) == permissions_for(Role.OWNER)


def test_adding_a_member_twice_is_refused(client, tenant_a):
    analyst = make_member(tenant_a.workspace, Role.ANALYST)
    login(client, tenant_a.owner)
    response = client.post(admin_url(Membership, "add"), {"email": analyst.email, "role": Role.ADMIN})
    assert response.status_code == 302
    assert any("already a member" in m for m in messages_of(response))
    assert membership_of(analyst, tenant_a.workspace).role == Role.ANALYST


def test_last_owner_cannot_be_deleted_or_demoted(client, tenant_a):
    owner = membership_of(tenant_a.owner, tenant_a.workspace)
    login(client, tenant_a.owner)
    assert client.get(admin_url(Membership, "delete", owner.pk)).status_code == 200  # confirmation page
    response = client.post(admin_url(Membership, "delete", owner.pk), {"post": "yes"})
    assert response.status_code == 302
    assert Membership.unscoped.filter(pk=owner.pk).exists()
    assert any("owner" in m for m in messages_of(response))
    client.post(admin_url(Membership, "change", owner.pk), {"role": Role.ADMIN})
    assert membership_of(tenant_a.owner, tenant_a.workspace).role == Role.OWNER
    assert workspace_permissions(tenant_a.owner, tenant_a.workspace) == permissions_for(Role.OWNER)


def test_deleting_a_member_removes_their_grants(client, tenant_a):
    analyst = make_member(tenant_a.workspace, Role.ANALYST)
    login(client, tenant_a.owner)
    membership = membership_of(analyst, tenant_a.workspace)
    assert client.post(admin_url(Membership, "delete", membership.pk), {"post": "yes"}).status_code == 302
    assert not Membership.unscoped.filter(pk=membership.pk).exists()
    assert workspace_permissions(analyst, tenant_a.workspace) == frozenset()


# --- 10. the audit log is read-only --------------------------------------------------------------


def test_audit_entries_are_read_only(client, two_tenants):
    a, b = two_tenants
    entry = AuditEntry.objects.filter(workspace_id=a.workspace.pk).first()
    theirs = AuditEntry.objects.filter(workspace_id=b.workspace.pk).first()
    login(client, a.owner)
    response = client.get(admin_url(AuditEntry, "change", entry.pk))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert client.post(admin_url(AuditEntry, "change", entry.pk), {"object_repr": "forged"}).status_code == 403
    assert client.get(admin_url(AuditEntry, "add")).status_code == 403
    assert client.post(admin_url(AuditEntry, "add"), {"object_repr": "forged"}).status_code == 403
    assert client.get(admin_url(AuditEntry, "delete", entry.pk)).status_code == 403
    assert client.post(admin_url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    actions = client.get(admin_url(AuditEntry)).context["action_form"]
    assert actions is None or "delete_selected" not in dict(actions.fields["action"].choices)
    assert AuditEntry.objects.filter(pk=entry.pk, object_repr=entry.object_repr).exists()
    assert not AuditEntry.objects.filter(object_repr="forged").exists()
    assert client.get(admin_url(AuditEntry, "change", theirs.pk)).status_code == 404
