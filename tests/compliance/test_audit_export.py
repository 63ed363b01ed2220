"""The audit-log export: `GET /v1/compliance/audit-log` and the admin's export, streamed JSON/CSV."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import ApiKey, Workspace
from compliance.api.audit_views import COLUMNS
from core.models import AuditEntry
from core.context import Actor, acting_as
from tests.support.factories import make_member

pytestmark = pytest.mark.django_db

URL = "/v1/compliance/audit-log"
ADMIN_EXPORT = "/admin/core/auditentry/export/"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------------


def body(response) -> str:
    assert response.streaming, "the export must be streamed"
    return b"".join(response.streaming_content).decode()


def json_rows(response) -> list[dict]:
    assert response["Content-Type"] == "application/json"
    return json.loads(body(response))


def csv_rows(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(body(response)))
    assert tuple(reader.fieldnames) == COLUMNS
    return list(reader)


def add_entry(workspace, *, at: datetime, model=Workspace, pk=None, **fields) -> AuditEntry:
    """An update entry at a chosen time (auditlog lets the writer set `timestamp`)."""
    pk = str(pk or workspace.pk)
    fields.setdefault("object_repr", f"{model._meta.verbose_name} #{pk}")
    return AuditEntry.objects.create(
        workspace_id=workspace.pk, content_type=ContentType.objects.get_for_model(model), object_pk=pk,
        action=AuditEntry.Action.UPDATE, changes={"name": ["old", "new"]}, timestamp=at, **fields,
    )


def export_ids(client, **params) -> list[int]:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content if not response.streaming else ""
    return [row["id"] for row in json_rows(response)]


def exports_recorded(workspace):
    return AuditEntry.objects.filter(workspace_id=workspace.pk, changes__action="audit_log_exported")


def key_row(tenant) -> ApiKey:
    return ApiKey.unscoped.get(workspace=tenant.workspace, prefix=tenant.app_key[:12])


# --- JSON and CSV ----------------------------------------------------------------------------------


def test_json_export_streams_the_workspaces_entries_oldest_first(tenant_a):
    client = tenant_a.app_client()
    assert client.patch("/v1/workspace", {"name": "Acme API"}, format="json").status_code == 200
    expected = list(
        AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk).order_by("timestamp", "id").values_list("id", flat=True)
    )

    response = client.get(URL)

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="audit-log-{tenant_a.workspace.slug}-')
    rows = json_rows(response)
    assert [row["id"] for row in rows] == expected
    assert all(tuple(row) == COLUMNS for row in rows)
    patch = rows[-1]
    key = key_row(tenant_a)
    assert patch == {
        "id": patch["id"], "timestamp": patch["timestamp"], "source": "api", "action": "update",
        "actor_email": None, "api_key_id": key.pk, "remote_addr": "127.0.0.1", "model": "accounts.workspace",
        "object_pk": str(tenant_a.workspace.pk), "object_repr": patch["object_repr"],
        "changes": {"name": ["Acme", "Acme API"]},
    }
    assert datetime.fromisoformat(patch["timestamp"]) == AuditEntry.objects.get(pk=patch["id"]).timestamp


def test_record_action_entries_are_exported_with_their_verb_as_action(tenant_a):
    services.create_api_key(workspace=tenant_a.workspace, kind="cdp", name="extra")

    rows = json_rows(tenant_a.app_client().get(URL, {"model": "accounts.apikey"}))

    created = [row for row in rows if row["action"] == "api_key_created"]
    assert created and created[-1]["changes"]["action"] == "api_key_created"
    assert {row["action"] for row in rows} >= {"create", "api_key_created"}


def test_csv_export_has_a_header_a_filename_and_json_encoded_changes(tenant_a):
    client = tenant_a.app_client()
    client.patch("/v1/workspace", {"name": "=cmd|' /C calc'!A0"}, format="json")

    response = client.get(URL, {"format": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.csv"')
    rows = csv_rows(response)
    json_export = json_rows(client.get(URL))
    assert [int(row["id"]) for row in rows] == [row["id"] for row in json_export if row["action"] != "audit_log_exported"]
    last = rows[-1]
    assert json.loads(last["changes"]) == {"name": ["Acme", "=cmd|' /C calc'!A0"]}
    assert (last["source"], last["action"], last["model"], last["actor_email"]) == ("api", "update", "accounts.workspace", "")
    assert datetime.fromisoformat(last["timestamp"])


def test_csv_neutralizes_cells_a_spreadsheet_would_run_as_formulas(tenant_a):
    add_entry(tenant_a.workspace, at=T0, object_repr='=HYPERLINK("http://evil.test")')

    rows = csv_rows(tenant_a.app_client().get(URL, {"format": "csv", "until": "2024-03-01"}))

    assert [row["object_repr"] for row in rows] == ["'=HYPERLINK(\"http://evil.test\")"]


def test_an_export_is_itself_recorded_and_not_part_of_its_own_output(tenant_a):
    key = key_row(tenant_a)

    ids = export_ids(tenant_a.app_client(), since="2000-01-01", model="accounts.workspace")

    record = exports_recorded(tenant_a.workspace).get()
    assert record.id not in ids
    assert (record.source, record.api_key_id, record.remote_addr) == ("api", key.pk, "127.0.0.1")
    assert record.changes == {
        "action": "audit_log_exported", "format": "json", "since": "2000-01-01T00:00:00+00:00",
        "until": None, "actor": None, "model": "accounts.workspace",
    }
    # The next export includes the first one's record.
    assert record.id in export_ids(tenant_a.app_client())


def test_the_export_record_never_holds_the_email_filtered_on(tenant_a):
    export_ids(tenant_a.app_client(), actor=tenant_a.owner.email)

    record = exports_recorded(tenant_a.workspace).get()
    assert record.changes["actor"] == "email"
    assert tenant_a.owner.email not in json.dumps(record.changes)


# --- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def timeline(tenant_a):
    """Entries on 1, 2 and 3 March 2024 at noon UTC, and nothing else in the range."""
    return [add_entry(tenant_a.workspace, at=T0 + timedelta(days=n)) for n in range(3)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2024-03-02", "until": "2024-03-02"}, [1]),  # a date covers the whole day
        ({"since": "2024-03-02T12:00:00Z"}, [1, 2]),  # inclusive
        ({"until": "2024-03-02T12:00:00+00:00"}, [0, 1]),
        ({"since": "2024-03-02T15:00:00+03:00", "until": "2024-03-03T11:59:59Z"}, [1]),
        ({"since": str(int((T0 + timedelta(days=1)).timestamp())), "until": "2024-03-31"}, [1, 2]),  # Unix seconds
        ({"since": "2024-03-02 12:00:01", "until": "2024-03-31"}, [2]),  # naive is UTC
        ({"since": "2024-03-02 12:00", "until": "2024-03-03 12:00"}, [1, 2]),
    ],
)
def test_since_and_until(tenant_a, timeline, params, expected):
    params.setdefault("since", "2024-01-01")
    params.setdefault("until", "2024-12-31")
    assert export_ids(tenant_a.app_client(), **params) == [timeline[n].pk for n in expected]


def test_an_unencoded_plus_in_an_offset_is_understood(tenant_a, timeline):
    client = tenant_a.app_client()
    ids = export_ids(client, since="2024-03-02T15:00:00 03:00", until="2024-12-31")  # "+" sent unencoded
    assert ids == [timeline[1].pk, timeline[2].pk]


def test_the_last_representable_day_is_a_valid_until(tenant_a, timeline):
    ids = export_ids(tenant_a.app_client(), since="2024-03-02", until="9999-12-31")
    assert ids[:2] == [timeline[1].pk, timeline[2].pk]


def test_actor_filter_by_email_and_by_api_key(tenant_a):
    owner, key = tenant_a.owner, key_row(tenant_a)
    with acting_as(Actor(source="admin", user=owner)):
        services.update_workspace(workspace=tenant_a.workspace, name="By owner")
    client = tenant_a.app_client()
    client.patch("/v1/workspace", {"name": "By key"}, format="json")

    by_owner = json_rows(client.get(URL, {"actor": owner.email.upper()}))
    by_key = json_rows(client.get(URL, {"actor": f"api_key:{key.pk}"}))

    assert by_owner and {row["actor_email"] for row in by_owner} == {owner.email}
    assert [r["changes"].get("name") for r in by_owner if r["model"] == "accounts.workspace"] == [["Acme", "By owner"]]
    assert by_key and {row["api_key_id"] for row in by_key} == {key.pk}
    assert ["By owner", "By key"] in [r["changes"].get("name") for r in by_key]


def test_model_filter(tenant_a):
    services.create_api_key(workspace=tenant_a.workspace, kind="cdp", name="extra")

    rows = json_rows(tenant_a.app_client().get(URL, {"model": "accounts.ApiKey"}))

    assert rows and {row["model"] for row in rows} == {"accounts.apikey"}
    assert len(rows) == AuditEntry.objects.filter(
        workspace_id=tenant_a.workspace.pk, content_type=ContentType.objects.get_for_model(ApiKey)
    ).count()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-02-30"}, "since"),
        ({"until": "2024-13-01T00:00:00Z"}, "until"),
        ({"until": "-5"}, "until"),
        ({"until": "999999999999"}, "until"),  # Unix seconds beyond year 9999
        ({"since": "2024-03-02", "until": "2024-03-01"}, "until"),
        ({"actor": "bob"}, "actor"),
        ({"actor": "api_key:abc"}, "actor"),
        ({"actor": "api_key:\u00b2"}, "actor"),  # a digit to str.isdigit, not to int()
        ({"actor": "api_key:99999999999999999999"}, "actor"),
        ({"model": "profiles"}, "model"),
        ({"model": "nope.nothing"}, "model"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_records_nothing(tenant_a, params, field):
    before = AuditEntry.objects.count()

    response = tenant_a.app_client().get(URL, params)

    assert response.status_code == 400
    assert not response.streaming
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["meta"]["error"].startswith(f"{field}: ")
    assert AuditEntry.objects.count() == before


def test_the_endpoint_only_reads(tenant_a):
    client = tenant_a.app_client()
    before = AuditEntry.objects.count()
    for method in (client.post, client.put, client.patch, client.delete, client.head):
        assert method(URL).status_code == 405
    assert AuditEntry.objects.count() == before


# --- memory-safe streaming -------------------------------------------------------------------------


def bulk_entries(workspace, count: int) -> None:
    content_type = ContentType.objects.get_for_model(Workspace)
    AuditEntry.objects.bulk_create(
        AuditEntry(
            workspace_id=workspace.pk, content_type=content_type, object_pk=str(n), object_repr=f"workspace #{n}",
            action=AuditEntry.Action.UPDATE, changes={"n": [n, n + 1]}, timestamp=T0 + timedelta(seconds=n),
        )
        for n in range(count)
    )


def consume_counting_queries(response) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        text = body(response)
    return text, len(queries)


def test_five_thousand_rows_stream_through_a_server_side_cursor_with_constant_queries(tenant_a):
    client = tenant_a.app_client()
    params = {"since": "2024-03-01", "until": "2024-03-31"}
    bulk_entries(tenant_a.workspace, 10)
    small, small_queries = consume_counting_queries(client.get(URL, params))
    bulk_entries(tenant_a.workspace, 4990)

    response = client.get(URL, params)
    first_chunks = [next(response.streaming_content) for _ in range(2)]  # "[" and the first rows
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
        open_cursors = cursor.fetchone()[0]
    rest, rest_queries = consume_counting_queries(response)

    assert open_cursors == 1, "rows must be read through a server-side cursor, chunk by chunk"
    rows = json.loads(b"".join(first_chunks).decode() + rest)
    assert len(json.loads(small)) == 10
    assert len({row["id"] for row in rows}) == 5000
    assert [row["timestamp"] for row in rows] == sorted(row["timestamp"] for row in rows)
    assert rest_queries <= small_queries  # no query per row or per chunk


def test_csv_of_five_thousand_rows_is_complete(tenant_a):
    bulk_entries(tenant_a.workspace, 5000)

    rows = csv_rows(tenant_a.app_client().get(URL, {"format": "csv", "since": "2024-03-01", "until": "2024-03-31"}))

    assert len(rows) == 5000
    assert json.loads(rows[4999]["changes"]) == {"n": [4999, 5000]}


# --- admin export ----------------------------------------------------------------------------------


def test_changelist_links_to_the_date_filtered_export(tenant_a, client):
    client.force_login(make_member(tenant_a.workspace, "compliance"))

    response = client.get("/admin/core/auditentry/")

    assert response.status_code == 200
    assert f'action="{ADMIN_EXPORT}"' in response.content.decode()


def test_admin_export_streams_the_same_format_as_the_api(tenant_a, timeline, client):
    member = make_member(tenant_a.workspace, "compliance")
    client.force_login(member)

    response = client.get(ADMIN_EXPORT, {"since": "2024-03-02", "until": "2024-03-03", "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.csv"')
    assert [int(row["id"]) for row in csv_rows(response)] == [timeline[1].pk, timeline[2].pk]
    api = json_rows(tenant_a.app_client().get(URL, {"since": "2024-03-02", "until": "2024-03-03"}))
    admin_json = json_rows(client.get(ADMIN_EXPORT, {"since": "2024-03-02", "until": "2024-03-03"}))
    assert admin_json == api
    record = exports_recorded(tenant_a.workspace).order_by("pk").first()
    assert (record.source, record.actor_id, record.remote_addr) == ("admin", member.pk, "127.0.0.1")


def test_admin_export_refuses_bad_input_naming_the_field(tenant_a, client):
    client.force_login(tenant_a.owner)
    response = client.get(ADMIN_EXPORT, {"since": "not-a-date"})
    assert response.status_code == 400
    assert response.content.decode().startswith("since: ")


@pytest.mark.parametrize(("action", "fmt"), [("export_selected_csv", "csv"), ("export_selected_json", "json")])
def test_admin_action_exports_the_selected_entries(tenant_a, timeline, client, action, fmt):
    client.force_login(make_member(tenant_a.workspace, "compliance"))
    selected = [timeline[0].pk, timeline[2].pk]

    response = client.post(
        "/admin/core/auditentry/", {"action": action, "_selected_action": selected, "index": 0}
    )

    assert response.status_code == 200
    rows = csv_rows(response) if fmt == "csv" else json_rows(response)
    assert [int(row["id"]) for row in rows] == selected


def test_admin_action_cannot_export_another_workspaces_entries(two_tenants, client):
    a, b = two_tenants
    client.force_login(make_member(a.workspace, "compliance"))
    foreign = AuditEntry.objects.filter(workspace_id=b.workspace.pk).values_list("pk", flat=True)[:3]

    response = client.post(
        "/admin/core/auditentry/",
        {"action": "export_selected_json", "_selected_action": list(foreign), "index": 0},
    )

    # The action only ever gets the changelist's (workspace-scoped) queryset: the export is empty.
    assert response.status_code == 200
    assert json_rows(response) == []
