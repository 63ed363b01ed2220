"""The compliance role: reads and exports its workspace's audit log, changes nothing else."""

import json

import pytest

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope, Membership, Workspace
from accounts.permissions import workspace_permissions
from core.models import AuditEntry
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

URL = "/v1/compliance/audit-log"
CHANGELIST = "/admin/core/auditentry/"
EXPORT = "/admin/core/auditentry/export/"


@pytest.fixture
def officer(tenant_a, client):
    user = make_member(tenant_a.workspace, "compliance")
    client.force_login(user)
    return user


def key_with(tenant, *scopes) -> str:
    _, secret = services.create_api_key(workspace=tenant.workspace, kind=ApiKeyKind.APP, name="x", scopes=list(scopes))
    return secret


def entry_ids(workspace) -> set[int]:
    return set(AuditEntry.objects.filter(workspace_id=workspace.pk).values_list("pk", flat=True))


def streamed_ids(response) -> list[int]:
    assert response.status_code == 200 and response.streaming
    return [row["id"] for row in json.loads(b"".join(response.streaming_content))]


# --- what the role may do --------------------------------------------------------------------------


def test_officer_sees_the_audit_log_and_its_export_form(tenant_a, officer, client):
    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert f'action="{EXPORT}"' in response.content.decode()
    entry = AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk).first()
    assert client.get(f"{CHANGELIST}{entry.pk}/change/").status_code == 200


def test_officer_exports_only_their_workspaces_entries(two_tenants, officer, client):
    a, b = two_tenants
    expected_a, foreign = entry_ids(a.workspace), entry_ids(b.workspace)

    ids = streamed_ids(client.get(EXPORT, {"format": "json"}))

    assert set(ids) == expected_a
    assert not set(ids) & foreign


def test_officer_cannot_open_another_workspaces_entry(two_tenants, officer, client):
    _, b = two_tenants
    foreign = AuditEntry.objects.filter(workspace_id=b.workspace.pk).first()
    assert client.get(f"{CHANGELIST}{foreign.pk}/change/").status_code == 404


def test_roles_without_view_audit_log_get_no_log_and_no_export(tenant_a, client):
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(EXPORT).status_code == 403
    before = AuditEntry.objects.count()
    response = client.post(CHANGELIST, {"action": "export_selected_csv", "index": 0,
                                        "_selected_action": list(entry_ids(tenant_a.workspace))})
    assert response.status_code == 403
    assert AuditEntry.objects.count() == before


# --- what the role may not do ----------------------------------------------------------------------


def test_officer_cannot_change_people(tenant_a, officer, client):
    profile = ProfileFactory(workspace=tenant_a.workspace, email="kept@example.test")
    url = f"/admin/profiles/profile/{profile.pk}/change/"

    assert client.get(url).status_code == 200  # may look (view_people), e.g. to answer a request
    response = client.post(url, {"external_id": profile.external_id, "email": "changed@example.test",
                                 "attributes": "{}", "_save": "Save"})
    assert response.status_code == 403
    assert client.post("/admin/profiles/profile/add/", {"email": "new@example.test"}).status_code == 403
    profile.refresh_from_db()
    assert profile.email == "kept@example.test"


def test_officer_cannot_see_or_change_api_keys(tenant_a, officer, client):
    key = ApiKey.unscoped.filter(workspace=tenant_a.workspace).first()

    assert client.get("/admin/accounts/apikey/").status_code == 403
    assert client.post("/admin/accounts/apikey/add/", {"kind": "app", "name": "x", "scopes": ["compliance"]}).status_code == 403
    response = client.post("/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk], "index": 0,
                                                         "confirmed": "yes"})
    assert response.status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.unscoped.filter(workspace=tenant_a.workspace).count() == 3


def test_officer_cannot_change_members(tenant_a, officer, client):
    own = Membership.unscoped.get(workspace=tenant_a.workspace, user=officer)

    assert client.post(f"/admin/accounts/membership/{own.pk}/change/", {"role": "owner"}).status_code == 403
    assert client.post("/admin/accounts/membership/add/", {"email": "x@example.test", "role": "admin"}).status_code == 403
    own.refresh_from_db()
    assert own.role == "compliance"
    assert Membership.unscoped.filter(workspace=tenant_a.workspace).count() == 2


def test_officer_cannot_change_workspace_settings(tenant_a, officer, client):
    workspace = tenant_a.workspace
    response = client.post(
        f"/admin/accounts/workspace/{workspace.pk}/change/",
        {"name": "Renamed", "time_zone": "UTC", "event_retention_days": "1", "_save": "Save"},
    )

    assert response.status_code == 403
    workspace.refresh_from_db()
    assert (workspace.name, workspace.event_retention_days) != ("Renamed", 1)


def test_officer_holds_no_campaign_permission(tenant_a, officer):
    # No campaign admin exists yet; the grants it will check are already withheld.
    perms = workspace_permissions(officer, tenant_a.workspace)
    assert "view_audit_log" in perms
    assert not perms & {"view_campaigns", "change_campaigns", "change_people", "manage_workspace",
                        "manage_members", "view_api_keys", "manage_api_keys", "manage_channels"}


# --- App API keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scopes", [["read"], ["read", "write"]])
def test_a_key_without_the_compliance_scope_is_refused(tenant_a, scopes):
    client = tenant_a.app_client(key_with(tenant_a, *scopes))
    before = AuditEntry.objects.count()

    response = client.get(URL)

    assert response.status_code == 403
    assert not response.streaming
    assert AuditEntry.objects.count() == before  # no export was recorded either


def test_other_key_kinds_are_refused(tenant_a):
    assert tenant_a.app_client(tenant_a.cdp_key).get(URL).status_code in (401, 403)
    assert tenant_a.app_client("ulk_app_not-a-real-key").get(URL).status_code in (401, 403)


def test_a_compliance_only_key_exports_but_cannot_change_settings(tenant_a):
    client = tenant_a.app_client(key_with(tenant_a, AppScope.COMPLIANCE))

    assert client.get(URL).status_code == 200
    assert client.patch("/v1/workspace", {"name": "Renamed"}, format="json").status_code == 403
    assert Workspace.objects.get(pk=tenant_a.workspace.pk).name == "Acme"


def test_a_compliance_key_of_workspace_b_sees_only_b(two_tenants):
    a, b = two_tenants
    key = key_with(b, AppScope.COMPLIANCE)
    expected_b, foreign = entry_ids(b.workspace), entry_ids(a.workspace)

    ids = streamed_ids(b.app_client(key).get(URL))

    assert set(ids) == expected_b
    assert not set(ids) & foreign
    # Filters cannot reach across either: A's API key id names no entry in B's log.
    a_key = ApiKey.unscoped.filter(workspace=a.workspace, kind=ApiKeyKind.APP).first()
    assert streamed_ids(b.app_client(key).get(URL, {"actor": f"api_key:{a_key.pk}"})) == []
