"""Audit coverage beyond test_audit.py: time on every source, workspace tasks, logins, API key
lifecycle actions. (Append-only, masking and per-source actors are tested in test_audit.py.)"""

import importlib
import json
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.utils import timezone

import core.signals  # noqa: F401  connects login auditing (CoreConfig.ready() imports it too)
from accounts import services
from accounts.models import ApiKey, ApiKeyKind, User
from core.models import AuditEntry
from config.celery import app as celery_app
from core.context import Actor, acting_as, current_workspace
from accounts.tasks import WorkspaceTask

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # UserFactory's


def last_entry_id() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def entries_since(entry_id: int, **filters):
    return AuditEntry.objects.filter(pk__gt=entry_id, **filters).order_by("pk")


def actions_since(entry_id: int) -> list[tuple[str, str]]:
    """(action verb, object_pk) of the record_action entries written since `entry_id`."""
    return [
        (e.changes["action"], e.object_pk)
        for e in entries_since(entry_id, action=AuditEntry.Action.ACCESS)
    ]


def app_key_row(tenant) -> ApiKey:
    return ApiKey.unscoped.get(workspace=tenant.workspace, prefix=tenant.app_key[:12])


# --- every source: actor, workspace, time, address -------------------------------------------------


@celery_app.task(base=WorkspaceTask, name="default.test_audit_sources_add_member")
def _add_member_in_workspace(*, workspace_id: int, email: str) -> None:
    services.add_member(workspace=current_workspace(), email=email, role="analyst")


def test_each_source_records_actor_workspace_time_and_address(tenant_a, client):
    workspace, owner = tenant_a.workspace, tenant_a.owner
    client.force_login(owner)
    before, started = last_entry_id(), timezone.now()

    assert client.post(
        f"/admin/accounts/workspace/{workspace.pk}/change/",
        {"name": "By admin", "time_zone": "UTC", "event_retention_days": "365", "_save": "Save"},
        REMOTE_ADDR="198.51.100.7",
    ).status_code == 302
    assert tenant_a.app_client().patch("/v1/workspace", {"name": "By API"}, format="json",
                                       REMOTE_ADDR="198.51.100.8").status_code == 200
    call_command("add_member", workspace.slug, "cli.member@example.test", "--role", "analyst", stdout=StringIO())
    # A job started from a console request still acts as the system, in the job's workspace.
    with acting_as(Actor(source="admin", user=owner, remote_addr="198.51.100.7")):
        result = _add_member_in_workspace.apply(kwargs={"workspace_id": workspace.pk, "email": "job@example.test"})
    assert result.successful(), result.traceback
    finished = timezone.now()

    # The last entry of each source: the workspace, the API's patch, and the two memberships.
    by_source = {entry.source: entry for entry in entries_since(before)}
    key = app_key_row(tenant_a)
    seen = {
        source: (e.actor_id, e.api_key_id, e.remote_addr, e.workspace_id)
        for source, e in by_source.items()
    }
    assert seen == {
        "admin": (owner.pk, None, "198.51.100.7", workspace.pk),
        "api": (None, key.pk, "198.51.100.8", workspace.pk),
        "cli": (None, None, None, workspace.pk),
        "system": (None, None, None, workspace.pk),
    }
    for entry in by_source.values():
        assert started <= entry.timestamp <= finished


def test_a_workspace_task_puts_its_workspace_on_rows_that_have_none(tenant_a, tenant_b):
    # A User has no workspace column: the entry takes the workspace the task works in.
    result = _add_member_in_workspace.apply(kwargs={"workspace_id": tenant_b.workspace.pk, "email": "job@example.test"})
    assert result.successful(), result.traceback

    user = User.objects.get(email="job@example.test")
    entry = AuditEntry.objects.get(
        content_type=ContentType.objects.get_for_model(User), object_pk=str(user.pk), action=AuditEntry.Action.CREATE
    )
    assert (entry.source, entry.workspace_id) == ("system", tenant_b.workspace.pk)


# --- logins ----------------------------------------------------------------------------------------


def login(client, email, password, address="203.0.113.9"):
    return client.post("/admin/login/", {"username": email, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address)


def test_a_console_login_is_recorded_without_a_workspace(tenant_a, client):
    owner = tenant_a.owner
    before, started = last_entry_id(), timezone.now()

    response = login(client, owner.email, PASSWORD)

    assert response.status_code == 302
    entry = entries_since(before, changes__action="login").get()
    assert entry.content_type == ContentType.objects.get_for_model(User)
    assert entry.object_pk == str(owner.pk)
    assert entry.changes == {"action": "login"}
    assert (entry.source, entry.actor_id, entry.actor_email) == ("admin", owner.pk, owner.email)
    assert (entry.remote_addr, entry.workspace_id) == ("203.0.113.9", None)
    assert started <= entry.timestamp <= timezone.now()


@pytest.mark.parametrize("who", ["wrong password", "unknown email"])
def test_a_failed_login_is_recorded_without_what_was_typed(tenant_a, client, who):
    email = tenant_a.owner.email if who == "wrong password" else "nobody.qz@example.test"
    typed_password = "Typed-Secret-Qz9"
    before = last_entry_id()

    response = login(client, email, typed_password)

    assert response.status_code == 200  # the form again, with an error
    entry = entries_since(before).get()
    assert entry.changes == {"action": "login_failed", "reason": "invalid_credentials"}
    assert entry.content_type == ContentType.objects.get_for_model(User)
    assert (entry.object_pk, entry.actor_id, entry.workspace_id) == ("", None, None)
    assert (entry.source, entry.remote_addr) == ("admin", "203.0.113.9")
    stored = json.dumps([entry.changes, entry.object_repr, entry.serialized_data, entry.actor_email, entry.changes_text])
    assert email not in stored and typed_password not in stored


def test_a_login_over_an_existing_session_is_not_filed_under_its_workspace(two_tenants, client):
    a, b = two_tenants
    client.force_login(a.owner)
    before = last_entry_id()

    assert login(client, b.owner.email, PASSWORD).status_code == 302

    entry = entries_since(before, changes__action="login").get()
    assert (entry.actor_id, entry.workspace_id) == (b.owner.pk, None)


def test_importing_the_receivers_again_does_not_record_twice(tenant_a, client):
    importlib.reload(core.signals)
    before = last_entry_id()

    assert login(client, tenant_a.owner.email, PASSWORD).status_code == 302

    assert entries_since(before, changes__action="login").count() == 1


# --- API key lifecycle -----------------------------------------------------------------------------


def test_api_key_lifecycle_through_the_api(tenant_a):
    client = tenant_a.app_client()
    acting = app_key_row(tenant_a)
    before = last_entry_id()

    created = client.post("/v1/api_keys", {"kind": "app", "name": "ci", "scopes": ["read"]}, format="json").json()
    rotated = client.post(f"/v1/api_keys/{created['id']}/rotate", format="json").json()
    client.post(f"/v1/api_keys/{rotated['id']}/revoke", format="json")
    client.post(f"/v1/api_keys/{rotated['id']}/revoke", format="json")  # already revoked: nothing new

    first, second = str(created["id"]), str(rotated["id"])
    assert actions_since(before) == [
        ("api_key_created", first),
        ("api_key_created", second), ("api_key_rotated", first), ("api_key_revoked", first),
        ("api_key_revoked", second),
    ]
    for entry in entries_since(before, action=AuditEntry.Action.ACCESS):
        key = ApiKey.unscoped.get(pk=entry.object_pk)
        assert entry.changes == {"action": entry.changes["action"], "kind": "app", "prefix": key.prefix}
        assert (entry.source, entry.api_key_id, entry.workspace_id) == ("api", acting.pk, tenant_a.workspace.pk)
        assert created["secret"] not in json.dumps(entry.changes)
        assert rotated["secret"] not in json.dumps(entry.changes)


def test_api_key_actions_from_the_console_name_the_user(tenant_a, client):
    key, _ = services.create_api_key(workspace=tenant_a.workspace, kind=ApiKeyKind.CDP, name="cdp 2")
    client.force_login(tenant_a.owner)
    before = last_entry_id()

    response = client.post("/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk], "index": 0,
                                                         "confirmed": "yes"})

    assert response.status_code == 302
    entry = entries_since(before, changes__action="api_key_revoked").get()
    assert entry.changes == {"action": "api_key_revoked", "kind": "cdp", "prefix": key.prefix}
    assert (entry.source, entry.actor_id, entry.workspace_id) == ("admin", tenant_a.owner.pk, tenant_a.workspace.pk)


def test_api_key_actions_from_the_cli(tenant_a):
    before = last_entry_id()

    out = StringIO()
    call_command("api_key", "create", tenant_a.workspace.slug, "--kind", "track", "--name", "site", stdout=out)
    key_id = json.loads(out.getvalue())["id"]
    call_command("api_key", "rotate", tenant_a.workspace.slug, "--key", str(key_id), stdout=StringIO())

    actions = actions_since(before)
    assert [verb for verb, _ in actions] == ["api_key_created", "api_key_created", "api_key_rotated", "api_key_revoked"]
    assert actions[0] == ("api_key_created", str(key_id))
    assert {e.source for e in entries_since(before)} == {"cli"}
