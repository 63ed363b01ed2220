import csv
import io
import json

from compliance.deletion import request_deletion
from tests.support.factories import ProfileFactory, make_member

URL = "/admin/compliance/deletionrecord/export/"


def requested(tenant):
    person = ProfileFactory(workspace=tenant.workspace)
    return request_deletion(workspace=tenant.workspace, identifiers={"cio_id": person.cio_id}, source="admin",
                            reason="asked by email")


def test_compliance_user_exports_deletion_records_with_dates(client, tenant_a, tenant_b):
    mine, theirs = requested(tenant_a), requested(tenant_b)
    client.force_login(make_member(tenant_a.workspace, "compliance"))
    assert 'compliance/deletionrecord/export/' in client.get("/admin/compliance/deletionrecord/").content.decode()
    day = mine.requested_at.date().isoformat()
    response = client.get(URL, {"since": day, "until": day, "format": "csv"})
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [mine.pk]  # B's record never appears
    assert rows[0]["identifier_hash"] == mine.identifier_hash and "@" not in "".join(rows[0].values())
    assert json.loads(b"".join(client.get(URL, {"until": "2000-01-01"}).streaming_content)) == []
    assert theirs.pk not in [r["id"] for r in json.loads(b"".join(client.get(URL).streaming_content))]


def test_bad_dates_and_roles(client, tenant_a):
    client.force_login(make_member(tenant_a.workspace, "compliance"))
    response = client.get(URL, {"since": "yesterday"})
    assert response.status_code == 400 and response.content.decode().startswith("since: ")
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    assert client.get(URL).status_code == 403
