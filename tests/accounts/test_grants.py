"""Nobody hands out more than they hold (accounts/grants.py; docs/roles.md, "Who may grant what").

Two matrices, each refused case checked for its refusal (403 on the App API, an error message or a
403 in the admin, a CommandError from the CLI) and for nothing having changed:

- the App API: a key with scopes S creates, rotates, revokes and edits a key with scopes T (or a
  Track/CDP key);
- console users: each role × action (create, rotate, revoke, edit a key; add, change, remove a
  member) × surface (the admin, and the CLI with --actor-email). Users reach the App API only
  through keys — the first matrix — and it has no member endpoints; the CLI has no command that
  removes a member.

The expectations are written out here from docs/roles.md, not derived from accounts/grants.py.
"""

import io
from itertools import combinations

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import services
from accounts.grants import GrantRefused, check_may_manage_key
from accounts.models import ApiKey, ApiKeyKind, Membership, User
from accounts.permissions import workspace_permissions
from accounts.roles import Role, permissions_for
from tests.support.factories import ProfileFactory, make_member

ALL = frozenset({"read", "write", "compliance"})
SCOPE_SETS = [frozenset(c) for n in (1, 2, 3) for c in combinations(sorted(ALL), n)]

# What each role may grant in keys (None: may not manage keys at all), and in roles.
KEY_SCOPES_OF = {
    Role.OWNER: ALL, Role.ADMIN: ALL, Role.DEVELOPER: frozenset({"read"}),
    Role.MARKETER: None, Role.ANALYST: None, Role.COMPLIANCE: None,
}
ROLES_GRANTABLE_BY = {
    Role.OWNER: set(Role.values), Role.ADMIN: set(Role.values) - {Role.OWNER},
    Role.MARKETER: set(), Role.ANALYST: set(), Role.COMPLIANCE: set(), Role.DEVELOPER: set(),
}


def ids(scopes) -> str:
    return "+".join(sorted(scopes))


def keys_of(workspace) -> set:
    """Everything about the workspace's keys that a grant could change."""
    return {(k.pk, k.kind, k.name, tuple(sorted(k.scopes)), k.revoked_at, k.replaced_by_id)
            for k in ApiKey.unscoped.filter(workspace=workspace)}


def new_key(tenant, kind="app", scopes=(), name="target") -> tuple[ApiKey, str]:
    return services.create_api_key(workspace=tenant.workspace, kind=kind, name=name, scopes=scopes)


def assert_granted(tenant, action, kind, scopes, target, before, *, name="granted"):
    """The allowed change happened, and only it."""
    after = keys_of(tenant.workspace)
    if action == "create":
        created = ApiKey.unscoped.get(workspace=tenant.workspace, name=name)
        assert (created.kind, set(created.scopes), created.revoked_at) == (kind, set(scopes), None)
        assert len(after) == len(before) + 1
    elif action == "rotate":
        target.refresh_from_db()
        assert target.revoked_at is not None and target.replaced_by is not None
        assert (target.replaced_by.kind, set(target.replaced_by.scopes)) == (kind, set(scopes))
        assert len(after) == len(before) + 1
    else:
        target.refresh_from_db()
        assert target.revoked_at is not None and target.replaced_by is None
        assert len(after) == len(before)


# --- the two findings of the issue -----------------------------------------------------------------

def test_a_write_only_key_cannot_rotate_a_compliance_key_into_its_hands(tenant_a):
    full = ApiKey.unscoped.get(workspace=tenant_a.workspace, kind="app", name="app")  # compliance, read, write
    _, write_only = new_key(tenant_a, scopes=["write"], name="writer")
    before = keys_of(tenant_a.workspace)
    response = tenant_a.app_client(write_only).post(f"/v1/api_keys/{full.pk}/rotate")
    assert response.status_code == 403
    assert "secret" not in response.json()
    assert "compliance" in response.json()["meta"]["error"] and "read" in response.json()["meta"]["error"]
    response = tenant_a.app_client(write_only).post(f"/v1/api_keys/{full.pk}/revoke")
    assert response.status_code == 403
    assert keys_of(tenant_a.workspace) == before
    assert tenant_a.app_client().get("/v1/compliance/audit-log").status_code == 200  # the real key still works


def test_a_developer_cannot_create_a_compliance_key_in_the_admin(client, tenant_a):
    developer = make_member(tenant_a.workspace, Role.DEVELOPER)
    client.force_login(developer)
    response = client.post(reverse("admin:accounts_apikey_add"),
                           {"kind": "app", "name": "dev-compliance", "scopes": ["compliance", "read"]})
    assert response.status_code == 302
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level == messages.ERROR]
    assert errors and "compliance" in errors[0]
    assert not ApiKey.unscoped.filter(name="dev-compliance").exists()
    # What a developer holds, they may still grant.
    response = client.post(reverse("admin:accounts_apikey_add"), {"kind": "app", "name": "dev-read", "scopes": ["read"]})
    assert response.status_code == 302
    assert ApiKey.unscoped.get(name="dev-read").scopes == ["read"]


# --- App API: a key with scopes S acting on a key with scopes T ------------------------------------

TARGETS = [("app", scopes) for scopes in SCOPE_SETS] + [("track", frozenset()), ("cdp", frozenset())]


@pytest.mark.parametrize("holder", SCOPE_SETS, ids=ids)
@pytest.mark.parametrize("kind, scopes", TARGETS, ids=[f"{k}:{ids(s)}" for k, s in TARGETS])
def test_app_api_key_on_key_matrix(tenant_a, holder, kind, scopes):
    _, secret = new_key(tenant_a, scopes=holder, name="holder")
    client = tenant_a.app_client(secret)
    allowed = "write" in holder and scopes <= holder

    for action in ("create", "rotate", "revoke"):
        target, target_secret = (None, None) if action == "create" else new_key(tenant_a, kind=kind, scopes=scopes)
        before = keys_of(tenant_a.workspace)
        if action == "create":
            body = {"kind": kind, "name": "granted", **({"scopes": sorted(scopes)} if scopes else {})}
            response = client.post("/v1/api_keys", body, format="json")
        else:
            response = client.post(f"/v1/api_keys/{target.pk}/{action}")
        if allowed:
            assert response.status_code == (201 if action == "create" else 200), (action, response.content)
            assert_granted(tenant_a, action, kind, scopes, target, before)
            if action != "revoke":
                assert response.json()["secret"]
        else:
            assert response.status_code == 403, (action, response.content)
            error = response.json()["meta"]["error"]
            if "write" in holder:  # refused by the grant rule, naming what the key lacks
                assert all(scope in error for scope in scopes - holder), error
            assert keys_of(tenant_a.workspace) == before, action
        ApiKey.unscoped.filter(name="granted").delete()

    # Keys are never edited: no PATCH or PUT, whatever the scopes.
    target, _ = new_key(tenant_a, kind=kind, scopes=scopes)
    before = keys_of(tenant_a.workspace)
    for method in ("patch", "put"):
        response = getattr(client, method)(f"/v1/api_keys/{target.pk}", {"name": "x", "scopes": sorted(ALL)},
                                           format="json")
        assert response.status_code in (403, 405)
    assert keys_of(tenant_a.workspace) == before


def test_a_key_of_another_workspace_grants_nothing(two_tenants):
    a, b = two_tenants
    b_key = ApiKey.unscoped.get(workspace=b.workspace, kind="app")
    with pytest.raises(GrantRefused):
        check_may_manage_key(workspace=a.workspace, kind="app", scopes=["read"], action="create", acting_key=b_key)


# --- console users: role × key action × surface ---------------------------------------------------

USER_TARGETS = [("app", frozenset({"read"})), ("app", frozenset({"write"})), ("app", frozenset({"compliance", "read"})),
                ("app", ALL), ("track", frozenset()), ("cdp", frozenset())]


def admin_error(response) -> str | None:
    """The refusal the admin answered to a POST made with follow=True (the page it redirects to
    shows, and so uses up, the messages), or None when it went through."""
    if response.status_code == 403:
        return "403"
    assert response.redirect_chain and response.status_code == 200, response.status_code
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level == messages.ERROR]
    return "; ".join(errors) or None


def admin_key_action(client, tenant, actor, action, kind, scopes, target):
    client.force_login(actor)
    if action == "create":
        data = {"kind": kind, "name": "granted", **({"scopes": sorted(scopes)} if scopes else {})}
        return admin_error(client.post(reverse("admin:accounts_apikey_add"), data, follow=True))
    if action == "edit":
        url = reverse("admin:accounts_apikey_change", args=[target.pk])
        return admin_error(client.post(url, {"kind": "app", "name": "renamed", "scopes": sorted(ALL)}, follow=True))
    return admin_error(client.post(reverse("admin:accounts_apikey_changelist"),
                                   {"action": f"{action}_keys", "_selected_action": [target.pk], "index": 0,
                                    "confirmed": "yes"},
                                   follow=True))


def cli(*args) -> str | None:
    """Run a management command; the CommandError's text when it refused, else None."""
    try:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    except CommandError as exc:
        return str(exc) or "CommandError"
    return None


def cli_key_action(client, tenant, actor, action, kind, scopes, target):
    args = ["api_key", action, tenant.workspace.slug, "--actor-email", actor.email]
    if action == "create":
        args += ["--kind", kind, "--name", "granted", *[f"--scope={scope}" for scope in sorted(scopes)]]
    else:  # `edit` is no action of the command: keys are never edited
        args += ["--key", str(target.pk)]
    return cli(*args)


KEY_SURFACES = {"admin": admin_key_action, "cli": cli_key_action}


@pytest.mark.parametrize("surface", KEY_SURFACES)
@pytest.mark.parametrize("action", ["create", "rotate", "revoke", "edit"])
@pytest.mark.parametrize("role", Role.values)
def test_user_key_matrix(client, tenant_a, role, action, surface):
    actor = make_member(tenant_a.workspace, role)
    grantable = KEY_SCOPES_OF[role]
    for kind, scopes in USER_TARGETS:
        target = None if action == "create" else new_key(tenant_a, kind=kind, scopes=scopes)[0]
        before = keys_of(tenant_a.workspace)
        refusal = KEY_SURFACES[surface](client, tenant_a, actor, action, kind, scopes, target)
        case = (role, action, surface, kind, sorted(scopes), refusal)
        if action != "edit" and grantable is not None and scopes <= grantable:
            assert refusal is None, case
            assert_granted(tenant_a, action, kind, scopes, target, before)
            if action == "create":
                assert ApiKey.unscoped.get(name="granted").created_by == actor
        else:
            assert refusal, case
            assert keys_of(tenant_a.workspace) == before, case
            if action == "edit":
                assert refusal == "403" if surface == "admin" else "invalid choice" in refusal, case
            elif grantable is None:
                assert refusal == "403" if surface == "admin" else "may not manage" in refusal, case
            else:
                assert all(scope in refusal for scope in scopes - grantable), case
        ApiKey.unscoped.filter(name="granted").delete()


# --- console users: role × member action × surface ------------------------------------------------

def admin_member_action(client, tenant, actor, action, email, role, membership):
    client.force_login(actor)
    if action == "add":
        return admin_error(client.post(reverse("admin:accounts_membership_add"),
                                       {"email": email, "role": role, "password": ""}, follow=True))
    if action == "change":
        return admin_error(client.post(reverse("admin:accounts_membership_change", args=[membership.pk]),
                                       {"role": role}, follow=True))
    return admin_error(client.post(reverse("admin:accounts_membership_delete", args=[membership.pk]),
                                   {"post": "yes"}, follow=True))


def cli_member_action(client, tenant, actor, action, email, role, membership):
    return cli("add_member", tenant.workspace.slug, email, "--role", role, "--actor-email", actor.email)


MEMBER_SURFACES = {"admin": admin_member_action, "cli": cli_member_action}
CHANGES = ([(Role.ANALYST, role) for role in Role.values if role != Role.ANALYST]
           + [(role, Role.ANALYST) for role in Role.values if role != Role.ANALYST])


def member_cases(action):
    """(role held before or None, role after or None) for each case of `action`."""
    if action == "add":
        return [(None, role) for role in Role.values]
    if action == "change":
        return CHANGES
    return [(role, None) for role in Role.values]


def memberships_of(workspace) -> set:
    return {(m.user_id, m.role, workspace_permissions(m.user, workspace))
            for m in Membership.unscoped.filter(workspace=workspace).select_related("user")}


@pytest.mark.parametrize("action, surface", [("add", "admin"), ("add", "cli"), ("change", "admin"),
                                             ("change", "cli"), ("remove", "admin")])
@pytest.mark.parametrize("role", Role.values)
def test_user_member_matrix(client, tenant_a, role, action, surface):
    actor = make_member(tenant_a.workspace, role)
    grantable = ROLES_GRANTABLE_BY[role]
    for n, (old, new) in enumerate(member_cases(action)):
        email = f"member{n}@example.test"
        membership = None
        if old is not None:
            make_member(tenant_a.workspace, old, email=email)
            membership = Membership.unscoped.get(workspace=tenant_a.workspace, user__email=email)
        before = memberships_of(tenant_a.workspace)
        refusal = MEMBER_SURFACES[surface](client, tenant_a, actor, action, email, new, membership)
        case = (role, action, surface, old, new, refusal)
        if {old, new} - {None} <= grantable:
            assert refusal is None, case
            user = User.objects.get(email=email)
            if new is None:
                assert not Membership.unscoped.filter(workspace=tenant_a.workspace, user=user).exists(), case
                assert workspace_permissions(user, tenant_a.workspace) == frozenset(), case
            else:
                assert Membership.unscoped.get(workspace=tenant_a.workspace, user=user).role == new, case
                assert workspace_permissions(user, tenant_a.workspace) == permissions_for(new), case
        else:
            assert refusal, case
            assert memberships_of(tenant_a.workspace) == before, case
            if old is None:
                assert not User.objects.filter(email=email).exists(), case
            if not grantable:
                assert refusal == "403" if surface == "admin" else "may not manage members" in refusal, case
            elif refusal != "403":  # an admin facing the owner role is refused by name
                assert "Only an owner" in refusal, case


def test_a_role_above_ones_own_is_refused_even_without_the_owner_role(tenant_a):
    """The rule is "no role with permissions you lack", not only "only owners grant owners": a
    member who may manage members but not export personal data cannot make a compliance officer.
    (No default role is like that; a superuser's grants are narrowed here by hand.)"""
    from accounts.services import sync_workspace_permissions

    manager = make_member(tenant_a.workspace, Role.ADMIN)
    sync_workspace_permissions(user=manager, workspace=tenant_a.workspace,
                               codenames=permissions_for(Role.ADMIN) - {"export_personal_data"})
    with pytest.raises(GrantRefused, match="export_personal_data"):
        services.add_member(workspace=tenant_a.workspace, email="officer@example.test", role=Role.COMPLIANCE,
                            acting_user=manager)
    assert not Membership.unscoped.filter(user__email="officer@example.test").exists()
    services.add_member(workspace=tenant_a.workspace, email="helper@example.test", role=Role.MARKETER,
                        acting_user=manager)


# --- the CLI: the trusted operator, and an actor of another workspace ----------------------------

def test_cli_without_actor_is_the_trusted_operator(tenant_a):
    slug = tenant_a.workspace.slug
    full = ApiKey.unscoped.get(workspace=tenant_a.workspace, kind="app", name="app")
    assert cli("api_key", "create", slug, "--kind", "app", "--name", "granted", "--scope", "compliance") is None
    assert cli("api_key", "rotate", slug, "--key", str(full.pk)) is None
    assert cli("add_member", slug, "boss@example.test", "--role", "owner") is None
    assert Membership.unscoped.get(user__email="boss@example.test").role == Role.OWNER


def test_cli_actor_of_another_workspace_grants_nothing_here(two_tenants):
    a, b = two_tenants  # b's owner is no member of a
    full = ApiKey.unscoped.get(workspace=a.workspace, kind="app", name="app")
    before_keys, before_members = keys_of(a.workspace), memberships_of(a.workspace)
    as_b = ["--actor-email", b.owner.email]
    assert "may not manage" in cli("api_key", "create", a.workspace.slug, "--kind", "cdp", "--name", "x", *as_b)
    assert "may not manage" in cli("api_key", "revoke", a.workspace.slug, "--key", str(full.pk), *as_b)
    assert "may not manage" in cli("add_member", a.workspace.slug, "x@example.test", "--role", "analyst", *as_b)
    # Another workspace's key is not found at all.
    b_key = ApiKey.unscoped.get(workspace=b.workspace, kind="app")
    assert "No key" in cli("api_key", "revoke", a.workspace.slug, "--key", str(b_key.pk))
    assert (keys_of(a.workspace), memberships_of(a.workspace)) == (before_keys, before_members)
    b_key.refresh_from_db()
    assert b_key.revoked_at is None


def test_cli_unknown_actor_is_refused(tenant_a):
    assert "No user" in cli("api_key", "create", tenant_a.workspace.slug, "--kind", "cdp", "--name", "x",
                            "--actor-email", "nobody@example.test")
    assert not ApiKey.unscoped.filter(name="x").exists()


# --- other credentials ------------------------------------------------------------------------------

@pytest.mark.parametrize("scopes, status", [(["write"], 403), (["read", "write"], 200)])
def test_an_inbox_token_needs_read_as_well_as_write(tenant_a, scopes, status):
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    _, secret = new_key(tenant_a, scopes=scopes, name="minter")
    response = tenant_a.app_client(secret).post("/v1/customers/ada/inbox_token", {}, format="json")
    assert response.status_code == status, response.content
    if status == 403:
        assert "read" in response.json()["meta"]["error"] and "token" not in response.json()


@pytest.mark.parametrize("kind", [ApiKeyKind.TRACK, ApiKeyKind.CDP])
def test_developers_keep_managing_ingest_keys(tenant_a, kind):
    developer = make_member(tenant_a.workspace, Role.DEVELOPER)
    key, _ = services.create_api_key(workspace=tenant_a.workspace, kind=kind, name="ingest", acting_user=developer)
    new, _ = services.rotate_api_key(api_key=key, acting_user=developer)
    services.revoke_api_key(api_key=new, acting_user=developer)
    new.refresh_from_db()
    assert new.revoked_at is not None and new.created_by == developer
