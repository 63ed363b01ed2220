"""App API and admin for deletions and suppressions: scope, isolation, bad input, exports."""

import csv
import io
import json

import pytest
from django.urls import reverse

from accounts.services import create_api_key
from compliance import deletion
from compliance.models import DeletionRecord
from profiles.models import SuppressedIdentifier
from tests.support.factories import ProfileFactory, make_member

D = "/v1/compliance/deletions"
S = "/v1/compliance/suppressions"
EMAIL = "forget.me@example.com"


def key_with(tenant, *scopes):
    _, secret = create_api_key(workspace=tenant.workspace, kind="app", name="x", scopes=list(scopes))
    return tenant.app_client(secret)


@pytest.fixture
def compliance_api(tenant_a):
    return key_with(tenant_a, "compliance")


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_request_status_and_export(tenant_a, compliance_api):
    ProfileFactory(workspace=tenant_a.workspace, email=EMAIL, external_id="forget-id")
    response = compliance_api.post(D, {"identifiers": {"email": EMAIL}, "reason": "art. 17 request"}, format="json")
    assert response.status_code == 202, response.content
    created = response.json()["deletion"]
    assert set(created) == {"id", "status", "requested_at"} and created["status"] == "pending"
    record = DeletionRecord.unscoped.get(pk=created["id"])
    assert record.source == "api" and record.api_key.scopes == ["compliance"]

    deletion.run_deletion(record)
    detail = compliance_api.get(f"{D}/{record.pk}").json()["deletion"]
    assert detail["status"] == "completed" and detail["counts"]["profiles.Profile"] == 1

    as_json = compliance_api.get(D, {"format": "json"})
    rows = json.loads(body_of(as_json))
    assert [row["id"] for row in rows] == [record.pk] and rows[0]["reason"] == "art. 17 request"
    as_csv = compliance_api.get(D, {"format": "csv"})
    assert as_csv["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body_of(as_csv).decode())))
    assert [int(row["id"]) for row in table] == [record.pk]
    assert json.loads(table[0]["counts"]) == detail["counts"]
    for raw in (body_of(as_json), body_of(as_csv), compliance_api.get(f"{D}/{record.pk}").content,
                compliance_api.get(S).content):
        assert b"forget" not in raw  # neither the email nor the id


def test_export_filters_by_date(tenant_a, compliance_api):
    record = deletion.request_deletion(workspace=tenant_a.workspace, identifiers={"id": "x"}, source="api")
    stamp = record.requested_at.timestamp()
    assert json.loads(body_of(compliance_api.get(D, {"since": stamp + 1}))) == []
    assert len(json.loads(body_of(compliance_api.get(D, {"until": stamp + 1})))) == 1
    assert len(json.loads(body_of(compliance_api.get(D, {"since": record.requested_at.isoformat()})))) == 1


@pytest.mark.parametrize("body, field", [
    ({"identifiers": {}}, "identifiers"),
    ({"identifiers": {"id": "a", "email": "a@example.com"}}, "identifiers"),
    ({"identifiers": {"anonymous_id": "a"}}, "identifiers"),
    ({"identifiers": "a@example.com"}, "identifiers"),
    ({}, "identifiers"),
    ({"identifiers": {"email": "not-an-email"}}, "identifiers.email"),
    ({"identifiers": {"phone": "12"}}, "identifiers.phone"),
    ({"identifiers": {"id": "x" * 151}}, "identifiers.id"),
    ({"identifiers": {"id": "a"}, "reason": {"x": 1}}, "reason"),
])
def test_bad_requests_name_the_field_and_store_nothing(compliance_api, body, field):
    response = compliance_api.post(D, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["meta"]["error"].startswith(f"{field}:")
    assert not DeletionRecord.unscoped.exists() and not SuppressedIdentifier.unscoped.exists()


@pytest.mark.parametrize("params, field", [({"format": "xml"}, "format"), ({"since": "yesterday"}, "since"),
                                           ({"until": "2024-13-45"}, "until")])
def test_bad_export_parameters(compliance_api, params, field):
    response = compliance_api.get(D, params)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("scopes", [("read",), ("write",), ("read", "write")])
def test_the_compliance_scope_is_required(tenant_a, scopes):
    record = deletion.request_deletion(workspace=tenant_a.workspace, identifiers={"id": "x"}, source="api")
    client = key_with(tenant_a, *scopes)
    assert client.post(D, {"identifiers": {"id": "y"}}, format="json").status_code == 403
    for path in (D, f"{D}/{record.pk}", S):
        assert client.get(path).status_code == 403
    assert client.post(f"{S}/{SuppressedIdentifier.unscoped.get(deletion_id=record.pk).pk}/lift").status_code == 403
    assert DeletionRecord.unscoped.count() == 1 and SuppressedIdentifier.unscoped.get().lifted_at is None


def test_another_workspace_is_invisible(tenant_a, tenant_b, compliance_api):
    theirs = deletion.request_deletion(workspace=tenant_b.workspace, identifiers={"id": "x"}, source="api")
    suppression = SuppressedIdentifier.unscoped.get(deletion_id=theirs.pk)
    assert compliance_api.get(f"{D}/{theirs.pk}").status_code == 404
    assert compliance_api.post(f"{S}/{suppression.pk}/lift").status_code == 404
    assert json.loads(body_of(compliance_api.get(D))) == []
    assert compliance_api.get(S).json()["results"] == []
    suppression.refresh_from_db()
    assert suppression.lifted_at is None
    assert compliance_api.get(f"{D}/999999999").status_code == 404


def test_suppressions_list_and_lift(tenant_a, compliance_api):
    record = deletion.request_deletion(workspace=tenant_a.workspace, identifiers={"email": EMAIL}, source="api")
    [row] = compliance_api.get(S).json()["results"]
    assert row["kind"] == "email" and len(row["hash"]) == 64 and row["dropped"] == 0
    assert row["deletion_id"] == record.pk and row["lifted_at"] is None
    response = compliance_api.post(f"{S}/{row['id']}/lift")
    assert response.status_code == 200 and response.json()["suppression"]["lifted_at"]
    lifted = SuppressedIdentifier.unscoped.get()
    assert lifted.lifted_by_api_key is not None
    assert compliance_api.post(f"{S}/{row['id']}/lift").status_code == 200  # lifting again changes nothing
    assert SuppressedIdentifier.unscoped.get().lifted_at == lifted.lifted_at


# --- admin ---------------------------------------------------------------------------------------

def admin_url(model, view="changelist", *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_compliance_member_requests_a_deletion_in_the_admin(client, tenant_a):
    officer = make_member(tenant_a.workspace, "compliance")
    client.force_login(officer)
    assert client.get(admin_url(DeletionRecord, "add")).status_code == 200
    bad = client.post(admin_url(DeletionRecord, "add"), {"identifier_type": "email", "identifier": "nope"})
    assert bad.status_code == 200 and "identifier" in bad.context["adminform"].form.errors
    assert not DeletionRecord.unscoped.exists()

    response = client.post(admin_url(DeletionRecord, "add"),
                           {"identifier_type": "email", "identifier": EMAIL, "reason": "asked"})
    assert response.status_code == 302
    record = DeletionRecord.unscoped.get()
    assert (record.source, record.requested_by, record.reason) == ("admin", officer, "asked")
    assert client.get(admin_url(DeletionRecord)).status_code == 200
    page = client.get(admin_url(DeletionRecord, "change", record.pk))
    assert page.status_code == 200 and EMAIL.encode() not in page.content

    suppression = SuppressedIdentifier.unscoped.get(deletion_id=record.pk)
    client.post(admin_url(SuppressedIdentifier), {"action": "lift", "_selected_action": [suppression.pk], "confirmed": "yes"})
    suppression.refresh_from_db()
    assert suppression.lifted_by == officer


@pytest.mark.parametrize("role, can_view, can_act", [("analyst", False, False), ("marketer", False, False),
                                                     ("admin", True, True)])
def test_admin_role_gates(client, tenant_a, role, can_view, can_act):
    record = deletion.request_deletion(workspace=tenant_a.workspace, identifiers={"id": "x"}, source="api")
    client.force_login(make_member(tenant_a.workspace, role))
    assert (client.get(admin_url(DeletionRecord)).status_code == 200) is can_view
    assert (client.get(admin_url(SuppressedIdentifier)).status_code == 200) is can_view
    client.post(admin_url(DeletionRecord, "add"), {"identifier_type": "id", "identifier": "y"})
    suppression = SuppressedIdentifier.unscoped.get(deletion_id=record.pk)
    client.post(admin_url(SuppressedIdentifier), {"action": "lift", "_selected_action": [suppression.pk], "confirmed": "yes"})
    assert DeletionRecord.unscoped.filter(source="admin").exists() is can_act
    suppression.refresh_from_db()
    assert (suppression.lifted_at is not None) is can_act


def test_records_cannot_be_changed_or_deleted_in_the_admin(client, tenant_a):
    record = deletion.request_deletion(workspace=tenant_a.workspace, identifiers={"id": "x"}, source="api")
    client.force_login(tenant_a.owner)
    client.post(admin_url(DeletionRecord, "change", record.pk), {"reason": "changed"})
    assert client.post(admin_url(DeletionRecord, "delete", record.pk), {"post": "yes"}).status_code == 403
    record.refresh_from_db()
    assert record.reason == ""


def test_admin_hides_another_workspaces_records(client, tenant_a, tenant_b):
    theirs = deletion.request_deletion(workspace=tenant_b.workspace, identifiers={"id": "x"}, source="api")
    client.force_login(tenant_a.owner)
    assert client.get(admin_url(DeletionRecord, "change", theirs.pk)).status_code == 404
    suppression = SuppressedIdentifier.unscoped.get(deletion_id=theirs.pk)
    assert client.get(admin_url(SuppressedIdentifier, "change", suppression.pk)).status_code == 404
    assert theirs.pk not in {r.pk for r in client.get(admin_url(DeletionRecord)).context["cl"].result_list}
    client.post(admin_url(SuppressedIdentifier), {"action": "lift", "_selected_action": [suppression.pk], "confirmed": "yes"})
    assert SuppressedIdentifier.unscoped.get().lifted_at is None
