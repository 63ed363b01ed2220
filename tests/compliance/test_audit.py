"""The audit log: who changed what, from where, in which workspace; masked, append-only, isolated."""

import json
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, Membership, User
from core.audit import MASK
from core.models import AuditEntry
from config.celery import app as celery_app
from core.context import Actor, NoWorkspaceInScope, acting_as, workspace_scope
from core.tasks import UlakTask
from tests.support.factories import EventFactory
from profiles.models import Identity, Profile

pytestmark = pytest.mark.django_db

CREATE, UPDATE, DELETE = AuditEntry.Action.CREATE, AuditEntry.Action.UPDATE, AuditEntry.Action.DELETE


# --- helpers ---------------------------------------------------------------------------------


def last_entry_id() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def entries_since(entry_id: int):
    return AuditEntry.objects.filter(pk__gt=entry_id).order_by("pk")


def entries_for(obj, action=None):
    entries = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk)
    ).order_by("pk")
    return entries.filter(action=action) if action is not None else entries


def only(queryset):
    rows = list(queryset)
    assert len(rows) == 1, f"expected exactly one audit entry, got {len(rows)}: {[e.changes for e in rows]}"
    return rows[0]


def stored_text(entry: AuditEntry) -> str:
    """Everything an entry stores about the object, as one string to search in."""
    return json.dumps(
        [entry.changes, entry.changes_text, entry.object_repr, entry.serialized_data, entry.additional_data],
        default=str,
    )


def app_key_row(tenant) -> ApiKey:
    """The row of `tenant.app_key`, the key `tenant.app_client()` sends."""
    return ApiKey.unscoped.get(workspace=tenant.workspace, prefix=tenant.app_key[:12])


def snapshot(queryset) -> dict:
    return {row["id"]: row for row in queryset.values()}


def redaction_on():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ulak.audit_redaction = 'on'")


# --- sources: admin, api, cli, system ----------------------------------------------------------


def test_admin_change_is_recorded_with_admin_source_user_and_address(tenant_a, client):
    workspace, owner = tenant_a.workspace, tenant_a.owner
    client.force_login(owner)

    response = client.post(
        f"/admin/accounts/workspace/{workspace.pk}/change/",
        {"name": "Acme Renamed", "time_zone": "Europe/Istanbul", "event_retention_days": "365", "_save": "Save"},
    )

    assert response.status_code == 302, response.content[:500]
    entry = only(entries_for(workspace, UPDATE))
    assert entry.source == "admin"
    assert entry.actor_id == owner.pk
    assert entry.actor_email == owner.email
    assert entry.workspace_id == workspace.pk
    assert entry.api_key_id is None
    assert entry.remote_addr == "127.0.0.1"
    assert entry.changes["name"] == ["Acme", "Acme Renamed"]
    assert entry.changes["time_zone"] == ["UTC", "Europe/Istanbul"]
    assert "event_retention_days" not in entry.changes  # unchanged fields are not recorded


def test_api_patch_is_recorded_with_api_source_and_the_key_used(tenant_a):
    workspace = tenant_a.workspace

    response = tenant_a.app_client().patch("/v1/workspace", {"name": "Acme API"}, format="json")

    assert response.status_code == 200, response.content
    entry = only(entries_for(workspace, UPDATE))
    assert entry.source == "api"
    assert entry.api_key_id == app_key_row(tenant_a).pk
    assert entry.actor_id is None
    assert entry.actor_email in (None, "")
    assert entry.workspace_id == workspace.pk
    assert entry.remote_addr == "127.0.0.1"
    assert entry.changes == {"name": ["Acme", "Acme API"]}


def test_api_key_created_through_the_api_is_recorded_without_its_secret(tenant_a):
    before = last_entry_id()

    response = tenant_a.app_client().post(
        "/v1/api_keys", {"kind": "app", "name": "ci", "scopes": ["read"]}, format="json"
    )

    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    new_key = ApiKey.unscoped.get(pk=response.json()["id"])
    entry = only(entries_for(new_key, CREATE))
    assert entry.source == "api"
    assert entry.api_key_id == app_key_row(tenant_a).pk
    assert entry.workspace_id == tenant_a.workspace.pk
    assert entry.changes["name"] == [None, "ci"]
    assert "secret_hash" not in entry.changes
    for written in entries_since(before):
        assert secret not in stored_text(written)
        assert new_key.secret_hash not in stored_text(written)


def test_api_key_rotation_through_the_api_records_no_secret(tenant_a):
    old_key = app_key_row(tenant_a)
    other, _ = services.create_api_key(workspace=tenant_a.workspace, kind=ApiKeyKind.CDP, name="cdp 2")
    before = last_entry_id()

    response = tenant_a.app_client().post(f"/v1/api_keys/{other.pk}/rotate", format="json")

    assert response.status_code == 200, response.content
    secret = response.json()["secret"]
    written = list(entries_since(before))
    assert written and {e.source for e in written} == {"api"}
    assert {e.api_key_id for e in written} == {old_key.pk}
    assert only(entries_for(ApiKey.unscoped.get(pk=response.json()["id"]), CREATE))
    for entry in written:
        assert secret not in stored_text(entry)
        assert "secret_hash" not in (entry.changes or {})


def test_management_command_is_recorded_with_cli_source(tenant_a):
    before = last_entry_id()

    call_command("add_member", tenant_a.workspace.slug, "new.analyst@example.test", "--role", "analyst",
                 stdout=StringIO())

    written = list(entries_since(before))
    assert written and {e.source for e in written} == {"cli"}
    assert {e.actor_id for e in written} == {None}
    membership = Membership.unscoped.get(workspace=tenant_a.workspace, user__email="new.analyst@example.test")
    entry = only(entries_for(membership, CREATE))
    assert entry.workspace_id == tenant_a.workspace.pk
    assert entry.changes["role"] == [None, "analyst"]


def test_management_command_records_the_console_user_given_as_actor(tenant_a):
    owner = tenant_a.owner
    before = last_entry_id()

    call_command("add_member", tenant_a.workspace.slug, "new.analyst@example.test", "--role", "analyst",
                 "--actor-email", owner.email.upper(), stdout=StringIO())

    written = list(entries_since(before))
    assert written
    for entry in written:
        assert (entry.source, entry.actor_id, entry.actor_email) == ("cli", owner.pk, owner.email)


def test_code_acting_as_system_is_recorded_as_system_not_as_the_outer_actor(tenant_a):
    workspace, owner = tenant_a.workspace, tenant_a.owner
    with acting_as(Actor(source="admin", user=owner, remote_addr="10.0.0.1")):
        with acting_as(Actor(source="system")):
            services.update_workspace(workspace=workspace, name="By a job")
        services.update_workspace(workspace=workspace, name="By a person")

    by_job, by_person = entries_for(workspace, UPDATE)
    assert (by_job.source, by_job.actor_id, by_job.remote_addr) == ("system", None, None)
    assert (by_person.source, by_person.actor_id) == ("admin", owner.pk)


@celery_app.task(name="default.test_audit_rename_workspace")
def _rename_workspace(workspace_id: int, name: str) -> None:
    from accounts.models import Workspace

    services.update_workspace(workspace=Workspace.objects.get(pk=workspace_id), name=name)


def test_celery_task_changes_are_recorded_as_system(tenant_a):
    task = getattr(_rename_workspace, "_get_current_object", lambda: _rename_workspace)()  # a proxy until the app is finalized
    assert isinstance(task, UlakTask)
    workspace = tenant_a.workspace

    # Even when started from inside an admin request, the task's own writes are the system's.
    with acting_as(Actor(source="admin", user=tenant_a.owner)):
        result = _rename_workspace.apply(args=(workspace.pk, "Renamed by task"))

    assert result.successful(), result.traceback
    entry = only(entries_for(workspace, UPDATE))
    assert (entry.source, entry.actor_id, entry.actor_email) == ("system", None, None)
    assert entry.workspace_id == workspace.pk
    assert entry.changes == {"name": ["Acme", "Renamed by task"]}


# --- personal data -------------------------------------------------------------------------------

PERSONAL = {
    "external_id": "cust-4711-zq",
    "email": "jane.doe.audit@example.test",
    "phone": "+905551112233",
    "attributes": {"first_name": "Janequa", "city": "Kadikoyville"},
}
PERSONAL_UPDATE = {
    "email": "jane.new.audit@example.test",
    "phone": "+905559998877",
    "attributes": {"first_name": "Janetteqa", "city": "Kadikoyville"},
}


def personal_strings(*values: dict) -> list[str]:
    out = []
    for data in values:
        for value in data.values():
            out.extend(value.values() if isinstance(value, dict) else [value])
    return out


def test_profile_create_update_and_delete_record_personal_data_masked(tenant_a):
    workspace = tenant_a.workspace
    with workspace_scope(workspace):
        profile = Profile.unscoped.create(workspace=workspace, **PERSONAL)
        for field, value in PERSONAL_UPDATE.items():
            setattr(profile, field, value)
        profile.save()
        profile_pk = profile.pk
        profile.delete()
        profile.pk = profile_pk

    created, updated = only(entries_for(profile, CREATE)), only(entries_for(profile, UPDATE))
    deleted = only(entries_for(profile, DELETE))
    for field in PERSONAL:
        assert created.changes[field] == [MASK, MASK], field
    for field in PERSONAL_UPDATE:
        assert updated.changes[field] == [MASK, MASK], field
    assert "external_id" not in updated.changes  # unchanged, so not recorded
    for entry in (created, updated, deleted):
        assert entry.workspace_id == workspace.pk
        assert entry.object_repr == f"profile #{profile_pk}"
        text = stored_text(entry)
        for value in personal_strings(PERSONAL, PERSONAL_UPDATE):
            assert value not in text, (entry.get_action_display(), value)


def test_user_creation_masks_email_and_name_and_never_records_the_password(db):
    user = User.objects.create_user("pat.person.audit@example.test", password="S3cret-pass-word!", name="Patqa Person")

    entry = only(entries_for(user, CREATE))
    assert entry.changes["email"] == [MASK, MASK]
    assert entry.changes["name"] == [MASK, MASK]
    assert "password" not in entry.changes
    assert "last_login" not in entry.changes
    assert entry.object_repr == f"user #{user.pk}"
    text = stored_text(entry)
    for value in ("pat.person.audit@example.test", "Patqa Person", "S3cret-pass-word!", user.password):
        assert value not in text


def test_password_change_is_not_recorded(db):
    user = User.objects.create_user("pat.person.audit@example.test", password="S3cret-pass-word!")
    user.set_password("An0ther-pass-word!")
    user.save()

    assert not entries_for(user, UPDATE).exists()


def test_events_and_identities_do_not_reveal_their_person(tenant_a):
    workspace = tenant_a.workspace
    before = last_entry_id()
    with workspace_scope(workspace):
        profile = Profile.unscoped.create(workspace=workspace, **PERSONAL)
        Identity.unscoped.create(workspace=workspace, profile=profile, anonymous_id="anon-cookie-qz81")
        EventFactory(profile=profile, data={"order_email": "order.audit@example.test"})

    written = list(entries_since(before))
    # Events are data-plane rows and not audited at all (compliance/audit.py).
    assert {e.content_type.model for e in written} == {"profile", "identity"}
    for entry in written:
        assert entry.workspace_id == workspace.pk
        text = stored_text(entry)
        for value in [*personal_strings(PERSONAL), "anon-cookie-qz81", "order.audit@example.test"]:
            assert value not in text, (entry.content_type.model, value)


def test_adding_a_member_records_the_new_users_email_nowhere(tenant_a):
    # The User entry masks the email; the Membership entry must not reveal it either.
    email = "new.member.audit@example.test"
    before = last_entry_id()

    services.add_member(workspace=tenant_a.workspace, email=email, role="analyst", name="Newqa Member")

    written = list(entries_since(before))
    assert len(written) == 2  # the user and the membership
    for entry in written:
        text = stored_text(entry)
        assert email not in text, (entry.content_type.model, entry.object_repr)
        assert "Newqa Member" not in text


# --- append-only ---------------------------------------------------------------------------------


def an_entry(tenant) -> AuditEntry:
    return AuditEntry.objects.filter(workspace_id=tenant.workspace.pk).order_by("pk").first()


def test_updating_an_entry_is_refused_by_the_database(tenant_a):
    entry = an_entry(tenant_a)
    original = snapshot(AuditEntry.objects.filter(pk=entry.pk))

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEntry.objects.filter(pk=entry.pk).update(object_repr="tampered", actor_email="x@example.test")
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            entry.changes = {"name": ["forged", "forged"]}
            entry.save()

    assert snapshot(AuditEntry.objects.filter(pk=entry.pk)) == original


def test_deleting_an_entry_is_refused_by_the_database(tenant_a):
    entry = an_entry(tenant_a)
    original = snapshot(AuditEntry.objects.filter(pk=entry.pk))

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEntry.objects.get(pk=entry.pk).delete()

    assert snapshot(AuditEntry.objects.filter(pk=entry.pk)) == original


def test_redaction_switch_allows_an_update_inside_its_transaction(tenant_a):
    entry = an_entry(tenant_a)

    with transaction.atomic():
        redaction_on()
        AuditEntry.objects.filter(pk=entry.pk).update(object_repr="redacted")

    entry.refresh_from_db()
    assert entry.object_repr == "redacted"


@pytest.mark.django_db(transaction=True)
def test_redaction_switch_ends_with_its_transaction(tenant_a):
    entry = an_entry(tenant_a)
    with transaction.atomic():
        redaction_on()
        AuditEntry.objects.filter(pk=entry.pk).update(object_repr="redacted")

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEntry.objects.filter(pk=entry.pk).update(object_repr="tampered")

    entry.refresh_from_db()
    assert entry.object_repr == "redacted"


# --- entries outlive what they mention -----------------------------------------------------------


def test_deleting_the_acting_user_keeps_entries_and_their_email(tenant_a):
    workspace, owner = tenant_a.workspace, tenant_a.owner
    owner_pk, owner_email = owner.pk, owner.email
    with acting_as(Actor(source="admin", user=owner)):
        services.update_workspace(workspace=workspace, name="Renamed by owner")
    before = snapshot(AuditEntry.objects.all())

    owner.delete()

    assert not User.objects.filter(pk=owner_pk).exists()
    after = snapshot(AuditEntry.objects.filter(pk__in=before))
    assert after == before
    entry = only(entries_for(workspace, UPDATE))
    assert (entry.actor_id, entry.actor_email) == (owner_pk, owner_email)


def test_deleting_an_api_key_keeps_the_entries_it_made(tenant_a):
    key = app_key_row(tenant_a)
    assert tenant_a.app_client().patch("/v1/workspace", {"name": "Acme API"}, format="json").status_code == 200
    before = snapshot(AuditEntry.objects.all())

    ApiKey.unscoped.filter(pk=key.pk).delete()

    assert snapshot(AuditEntry.objects.filter(pk__in=before)) == before
    assert only(entries_for(tenant_a.workspace, UPDATE)).api_key_id == key.pk


# --- workspace isolation -------------------------------------------------------------------------


def test_scoped_manager_returns_only_the_workspace_in_scope(two_tenants):
    a, b = two_tenants
    assert AuditEntry.objects.filter(workspace_id=b.workspace.pk).exists()

    with workspace_scope(a.workspace):
        seen = set(AuditEntry.scoped.values_list("workspace_id", flat=True))
        assert not AuditEntry.scoped.filter(workspace_id=b.workspace.pk).exists()

    assert seen == {a.workspace.pk}


def test_scoped_manager_fails_closed_without_a_workspace(tenant_a):
    with pytest.raises(NoWorkspaceInScope):
        list(AuditEntry.scoped.all())


def test_admin_shows_an_owner_only_their_workspaces_entries(two_tenants, client):
    a, b = two_tenants
    client.force_login(a.owner)

    assert client.get(f"/admin/core/auditentry/{an_entry(a).pk}/change/").status_code == 200
    assert client.get(f"/admin/core/auditentry/{an_entry(b).pk}/change/").status_code == 404


@pytest.mark.parametrize(("old", "new", "query"), [
    ("/admin/compliance/auditentry/export/", "/admin/core/auditentry/export/", "format=csv"),
    ("/admin/compliance/suppressedidentifier/", "/admin/profiles/suppressedidentifier/", "kind__exact=id"),
])
def test_admin_pages_of_moved_models_redirect_to_where_they_moved(tenant_a, client, old, new, query):
    # Models moved between apps when the layers were made one-way; bookmarks keep working.
    client.force_login(tenant_a.owner)
    response = client.get(f"{old}?{query}")
    assert response.status_code == 301
    assert response["Location"] == f"{new}?{query}"
    assert client.get(response["Location"]).status_code == 200


# --- no write path -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/{pk}", "/v1/audit_entries/{pk}", "/v1/audit_log/{pk}"])
def test_the_api_has_no_route_that_changes_entries(tenant_a, path):
    entry = an_entry(tenant_a)
    original = snapshot(AuditEntry.objects.filter(pk=entry.pk))
    client = tenant_a.app_client()
    url = path.format(pk=entry.pk)

    assert client.patch(url, {"object_repr": "tampered"}, format="json").status_code in (404, 405)
    assert client.delete(url).status_code in (404, 405)
    assert snapshot(AuditEntry.objects.filter(pk=entry.pk)) == original


def test_the_admin_will_not_change_or_delete_entries_even_for_an_owner(tenant_a, client):
    entry = an_entry(tenant_a)
    original = snapshot(AuditEntry.objects.filter(pk=entry.pk))
    client.force_login(tenant_a.owner)
    base = f"/admin/core/auditentry/{entry.pk}"

    assert client.get(f"{base}/change/").status_code == 200  # an owner may read the log
    assert client.post(f"{base}/change/", {"object_repr": "tampered"}).status_code == 403
    assert client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    assert snapshot(AuditEntry.objects.filter(pk=entry.pk)) == original
