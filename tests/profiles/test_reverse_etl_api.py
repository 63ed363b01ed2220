"""App API of reverse ETL (/v1/data_sources) and its console pages: CRUD with a write-only password,
test connection, preview, sync now and runs; scopes and roles; another workspace's rows are 404s;
bad input names the field."""

import pytest
from django.urls import reverse

from accounts.roles import Role
from profiles.models import DataSource, SyncRun
from profiles.sources import services
from tests.helpers import app_client_with_scopes
from tests.support import factories_sources as fs
from tests.support.factories import make_member
from tests.support.factories_sources import CLOSED_PORT, make_source, people_table

pytestmark = pytest.mark.django_db
pg_source, maria_source = fs.pg_source, fs.maria_source  # fixtures

U = "/v1/data_sources"


def body(db, **overrides) -> dict:
    return {"name": "Warehouse", **db.settings, "query": "SELECT 'u1' AS id, 'pro' AS plan", "identifier_column": "id", **overrides}


def create(client, db, **overrides) -> dict:
    response = client.post(U, body(db, **overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()["data_source"]


# --- CRUD -----------------------------------------------------------------------------------------------

def test_create_read_change_and_delete_with_the_password_write_only(tenant_a, pg_source):
    client = tenant_a.app_client()
    created = create(client, pg_source, password="s3cret", schedule_minutes=60, cursor_column="id")
    assert created["password_set"] is True and "password" not in created and "s3cret" not in str(created)
    assert (created["kind"], created["port"], created["identifier_kind"], created["max_rows"]) == (
        "postgresql", pg_source.settings["port"], "id", 100_000)
    assert created["next_run_at"] and created["last_run"] is None and created["cursor_value"] is None

    listed = client.get(U)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["data_sources"]] == [created["id"]]
    assert "s3cret" not in listed.content.decode() and "password_encrypted" not in listed.content.decode()
    detail = client.get(f"{U}/{created['id']}")
    assert detail.status_code == 200 and detail.json()["data_source"] == listed.json()["data_sources"][0]

    changed = client.patch(f"{U}/{created['id']}", {"name": "Renamed", "max_seconds": 30}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["data_source"]["name"] == "Renamed" and changed.json()["data_source"]["password_set"]
    cleared = client.patch(f"{U}/{created['id']}/", {"password": None}, format="json")
    assert cleared.json()["data_source"]["password_set"] is False

    assert client.delete(f"{U}/{created['id']}").status_code == 204
    assert not DataSource.unscoped.filter(pk=created["id"]).exists()
    assert client.get(f"{U}/{created['id']}").status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"color": "red"}, "color"),
    ({"kind": "oracle"}, "kind"),
    ({"query": None}, "query"),
    ({"query": "DELETE FROM people"}, "query"),
    ({"query": "SELECT 1 AS id; DROP TABLE people"}, "query"),
    ({"port": 70000}, "port"),
    ({"port": "5432"}, "port"),
    ({"host": "10.0.0.8"}, "host"),
    ({"host": "db.example.com/x"}, "host"),
    ({"identifier_kind": "phone"}, "identifier_kind"),
    ({"attribute_columns": ["plan", 3]}, "attribute_columns.1"),
    ({"attribute_columns": ["id"]}, "attribute_columns.0"),
    ({"schedule_minutes": 1}, "schedule_minutes"),
    ({"max_rows": 0}, "max_rows"),
    ({"max_seconds": 7200}, "max_seconds"),
    ({"require_tls": "maybe"}, "require_tls"),
])
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(tenant_a, pg_source, change, field):
    response = tenant_a.app_client().post(U, body(pg_source, **change), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    assert not DataSource.unscoped.exists()


def test_a_duplicate_name_or_a_bad_change_is_refused_and_changes_nothing(tenant_a, pg_source):
    client = tenant_a.app_client()
    first = create(client, pg_source)
    second = create(client, pg_source, name="Other")
    assert client.post(U, body(pg_source), format="json").json()["errors"][0]["field"] == "name"
    refused = client.patch(f"{U}/{second['id']}", {"name": "Warehouse"}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "name"
    refused = client.patch(f"{U}/{first['id']}", {"kind": "mysql", "name": "x"}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "kind"
    assert DataSource.unscoped.get(pk=first["id"]).name == "Warehouse"


# --- test, preview, sync, runs -------------------------------------------------------------------------------

def test_test_connection_answers_whether_it_worked(tenant_a, pg_source, maria_source):
    client = tenant_a.app_client()
    good = create(client, pg_source)
    maria = create(client, maria_source, name="Maria")
    closed = create(client, pg_source, name="Closed", port=CLOSED_PORT)

    ok = client.post(f"{U}/{good['id']}/test")
    assert ok.status_code == 200 and ok.json()["ok"] is True and ok.json()["server_version"]
    assert client.post(f"{U}/{maria['id']}/test").json()["ok"] is True
    refused = client.post(f"{U}/{closed['id']}/test").json()
    assert refused["ok"] is False and refused["stage"] == "connect" and "could not connect" in refused["error"]


def test_preview_shows_rows_and_a_query_error_is_a_400_naming_the_query(tenant_a, maria_source):
    client = tenant_a.app_client()
    source = create(client, maria_source, query="SELECT 'u1' AS id, 'pro' AS plan UNION ALL SELECT 'u2', 'free'")

    preview = client.post(f"{U}/{source['id']}/preview", {"limit": 1}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json() == {"columns": ["id", "plan"], "rows": [
        {"values": {"id": "u1", "plan": "pro"}, "person": {"id": "u1"}, "fields": {}, "attributes": {"plan": "pro"}}]}
    assert client.post(f"{U}/{source['id']}/preview", {"limit": 500}, format="json").json()["errors"][0]["field"] == "limit"

    client.patch(f"{U}/{source['id']}", {"query": "SELECT id FROM no_table_like_this"}, format="json")
    bad = client.post(f"{U}/{source['id']}/preview")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "query"
    assert "no_table_like_this" in bad.json()["errors"][0]["message"]


def test_sync_now_queues_a_run_and_the_runs_show_what_it_did(tenant_a, pg_source, broker,
                                                             django_capture_on_commit_callbacks):
    table = people_table(pg_source)
    pg_source.execute(f"INSERT INTO {table} VALUES ('u1', NULL, 'pro', 1, false, now()), ('', NULL, 'x', 1, false, now())")
    client = tenant_a.app_client()
    source = create(client, pg_source, query=f"SELECT id, plan FROM {table}")

    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(f"{U}/{source['id']}/sync", {}, format="json")
    assert queued.status_code == 202, queued.content
    run = queued.json()["run"]
    assert (run["status"], run["trigger"], run["full"]) == ("queued", "manual", False)
    assert broker.llen("default") == 1  # the run's task was sent
    again = client.post(f"{U}/{source['id']}/sync")
    assert again.status_code == 409
    assert client.delete(f"{U}/{source['id']}").status_code == 409  # not while a run is queued

    services.run_sync(tenant_a.workspace.pk, run["id"])  # the worker
    detail = client.get(f"{U}/{source['id']}/runs/{run['id']}").json()["run"]
    assert (detail["status"], detail["rows_read"], detail["rows_applied"], detail["rows_rejected"]) == (
        "succeeded", 2, 1, 1)
    assert detail["errors"] == [{"row": 2, "column": "id", "message": "is empty: the row's id is needed"}]
    assert detail["duration_seconds"] is not None and detail["finished_at"]
    assert client.get(f"{U}/{source['id']}").json()["data_source"]["last_run"]["id"] == run["id"]

    second = client.post(f"{U}/{source['id']}/sync", {"full": True}, format="json").json()["run"]
    page = client.get(f"{U}/{source['id']}/runs", {"limit": 1}).json()
    assert [r["id"] for r in page["runs"]] == [second["id"]] and page["next"]
    rest = client.get(f"{U}/{source['id']}/runs", {"limit": 1, "start": page["next"]}).json()
    assert [r["id"] for r in rest["runs"]] == [run["id"]] and rest["next"] == ""
    assert client.post(f"{U}/{source['id']}/sync", {"full": "yes"}, format="json").json()["errors"][0]["field"] == "full"


# --- scopes and workspaces -----------------------------------------------------------------------------------

def test_reads_need_read_and_everything_else_write(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source)
    reader = app_client_with_scopes(tenant_a, "read")
    writer = app_client_with_scopes(tenant_a, "write")
    one = f"{U}/{source.pk}"

    for path in (U, one, f"{one}/runs"):
        assert reader.get(path).status_code == 200, path
        assert writer.get(path).status_code == 403, path
    for method, path in (("post", U), ("patch", one), ("delete", one), ("post", f"{one}/test"),
                         ("post", f"{one}/preview"), ("post", f"{one}/sync")):
        assert getattr(reader, method)(path, {}, format="json").status_code == 403, (method, path)
    assert writer.post(f"{one}/test").status_code == 200
    assert not SyncRun.unscoped.exists() and DataSource.unscoped.get(pk=source.pk).name == source.name


def test_another_workspaces_source_and_runs_are_404s(tenant_a, tenant_b, pg_source):
    source = make_source(tenant_a.workspace, pg_source)
    run = services.start_sync(source=source)
    other = tenant_b.app_client()
    one = f"{U}/{source.pk}"

    assert other.get(U).json() == {"data_sources": []}
    for method, path in (("get", one), ("patch", one), ("delete", one), ("post", f"{one}/test"),
                         ("post", f"{one}/preview"), ("post", f"{one}/sync"), ("get", f"{one}/runs"),
                         ("get", f"{one}/runs/{run.pk}")):
        assert getattr(other, method)(path, {}, format="json").status_code == 404, (method, path)
    own = make_source(tenant_b.workspace, pg_source)
    assert other.get(f"{U}/{own.pk}/runs/{run.pk}").status_code == 404  # A's run under B's source
    assert SyncRun.unscoped.filter(source=source).count() == 1 and DataSource.unscoped.filter(pk=source.pk).exists()


# --- console ----------------------------------------------------------------------------------------------------

def admin_url(view, *args):
    return reverse(f"admin:profiles_datasource_{view}", args=args)


def inline_data(client, source) -> dict:
    """What the change page's read-only run history posts back (its formset's management form)."""
    [inline] = client.get(admin_url("change", source.pk)).context["inline_admin_formsets"]
    formset = inline.formset
    data = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    for form in formset.forms:
        data[f"{form.prefix}-id"], data[f"{form.prefix}-source"] = form.instance.pk, source.pk
    return data


def test_the_console_adds_a_source_tests_previews_and_syncs_it(client, tenant_a, pg_source,
                                                               django_capture_on_commit_callbacks):
    client.force_login(tenant_a.owner)
    form = {**{k: v for k, v in body(pg_source).items() if k != "password"}, "password": "s3cret",
            "identifier_kind": "id", "attribute_columns": "plan", "max_rows": 1000, "max_bytes": 1048576,
            "max_seconds": 60, "enabled": "on"}
    added = client.post(admin_url("add"), form)
    assert added.status_code == 302, added.content.decode()[:3000]
    source = DataSource.unscoped.get(workspace=tenant_a.workspace)
    assert source.attribute_columns == ["plan"] and services.password_of(source) == "s3cret"

    page = client.get(admin_url("change", source.pk))
    assert page.status_code == 200
    text = page.content.decode()
    assert "s3cret" not in text and source.password_encrypted not in text
    assert admin_url("test", source.pk) in text and admin_url("preview", source.pk) in text

    tested = client.post(admin_url("test", source.pk), follow=True)
    assert "Connected" in tested.content.decode()
    preview = client.get(admin_url("preview", source.pk))
    assert preview.status_code == 200 and "pro" in preview.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        synced = client.post(admin_url("sync", source.pk), follow=True)
    assert "Sync queued" in synced.content.decode()
    run = SyncRun.unscoped.get(source=source)
    services.run_sync(tenant_a.workspace.pk, run.pk)
    history = client.get(admin_url("change", source.pk)).content.decode()
    assert "Succeeded" in history  # the run history, inline

    kept = client.post(admin_url("change", source.pk), {**form, **inline_data(client, source), "password": "",
                                                        "name": "Renamed"})
    assert kept.status_code == 302
    source.refresh_from_db()
    assert source.name == "Renamed" and services.password_of(source) == "s3cret"  # empty keeps it


def test_the_console_refuses_bad_settings_naming_the_field(client, tenant_a, pg_source):
    client.force_login(tenant_a.owner)
    form = {**body(pg_source), "query": "DELETE FROM x", "identifier_kind": "id", "max_rows": 10,
            "max_bytes": 4096, "max_seconds": 10}
    response = client.post(admin_url("add"), form)
    assert response.status_code == 200 and "must be a SELECT" in response.content.decode()
    assert not DataSource.unscoped.exists()


def test_console_roles_and_another_workspace(client, tenant_a, tenant_b, pg_source):
    source = make_source(tenant_a.workspace, pg_source)
    analyst = make_member(tenant_a.workspace, Role.ANALYST)
    client.force_login(analyst)
    assert client.get(admin_url("changelist")).status_code == 200
    assert client.get(admin_url("change", source.pk)).status_code == 200
    for view in ("test", "sync"):
        assert client.post(admin_url(view, source.pk)).status_code == 403, view
    assert client.get(admin_url("preview", source.pk)).status_code == 403
    assert client.get(admin_url("add")).status_code == 403
    assert not SyncRun.unscoped.exists()

    client.force_login(tenant_b.owner)
    for view in ("change", "preview"):
        assert client.get(admin_url(view, source.pk)).status_code == 404, view
    for view in ("test", "sync"):
        assert client.post(admin_url(view, source.pk)).status_code == 404, view
    assert not SyncRun.unscoped.exists()
