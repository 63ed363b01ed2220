"""Reverse ETL against the real PostgreSQL and the real MariaDB: rows staged through the ingest path,
incremental syncs by a cursor, limits, errors (query, connection, SSRF), people deleted at their
request, read-only transactions, the beat sweep and the recovery of lost runs."""

from datetime import datetime, timedelta, timezone as tz

import pytest
import time_machine

from core.crypto import decrypt
from core.errors import Conflict, InvalidInput
from profiles.models import DataSource, InboundOperation, Profile, SuppressedIdentifier, SyncRun
from profiles.sources import services
from profiles.sources.models import RunStatus, RunTrigger
from tests.support import factories_sources as fs
from tests.support.factories_sources import CLOSED_PORT, make_source, people_table

pg_source, maria_source, any_source = fs.pg_source, fs.maria_source, fs.any_source  # fixtures

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=tz.utc)


def at(minutes: int):
    """A cursor time; the tables' timestamps have no zone (read as UTC)."""
    return (T0 + timedelta(minutes=minutes)).replace(tzinfo=None)


def insert(db, table, *rows):
    db.executemany(f"INSERT INTO {table} (id, email, plan, seats, unsubscribed, updated_at) "
                   "VALUES (%s, %s, %s, %s, %s, %s)", rows)


def sync(source, *, chunk_rows: int = 2, **kwargs) -> SyncRun:
    """Queue a sync and run it as the worker would (small chunks: several transactions per run)."""
    run = services.start_sync(source=source, **kwargs)
    return services.run_sync(source.workspace_id, run.pk, chunk_rows=chunk_rows)


def staged(workspace) -> list[dict]:
    return list(InboundOperation.unscoped.filter(workspace=workspace).order_by("pk").values_list("payload", flat=True))


def person(workspace, external_id):
    return Profile.unscoped.filter(workspace=workspace, external_id=external_id).first()


# --- a sync ----------------------------------------------------------------------------------------------

def test_rows_become_people_through_the_ingest_path(tenant_a, any_source, process):
    table = people_table(any_source)
    insert(any_source, table, ("u1", "Ada@Example.com", "pro", 3, False, at(0)), ("u2", None, "free", None, True, at(1)),
           ("u3", "cem@example.com", None, 7, None, at(2)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT * FROM {table} ORDER BY id")

    run = sync(source)

    assert (run.status, run.rows_read, run.rows_applied, run.rows_rejected, run.errors) == (
        RunStatus.SUCCEEDED, 3, 3, 0, [])
    assert run.bytes_read > 0 and run.started_at and run.finished_at and run.duration_seconds is not None
    ops = staged(tenant_a.workspace)
    assert [op["op"] for op in ops] == ["identify"] * 3
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace).first().source == services.SOURCE
    process(tenant_a)
    ada = person(tenant_a.workspace, "u1")
    assert ada.email == "ada@example.com"  # a column named like Track's reserved field sets it
    assert ada.attributes["plan"] == "pro" and ada.attributes["seats"] == 3
    assert ada.attributes["updated_at"] == int(T0.timestamp())  # times become Unix seconds
    assert person(tenant_a.workspace, "u2").unsubscribed is True
    assert "plan" not in person(tenant_a.workspace, "u3").attributes  # NULL: no attribute
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 3


def test_only_the_chosen_columns_become_attributes_and_people_can_be_named_by_email(tenant_a, pg_source, process):
    table = people_table(pg_source)
    insert(pg_source, table, ("u1", "ada@example.com", "pro", 3, False, at(0)))
    source = make_source(tenant_a.workspace, pg_source, query=f"SELECT email, plan, seats, id FROM {table}",
                         identifier_column="email", identifier_kind="email", attribute_columns=["plan", "id"])

    run = sync(source)

    assert run.status == RunStatus.SUCCEEDED
    [op] = staged(tenant_a.workspace)
    assert op["person"] == {"email": "ada@example.com"} and op["attributes"] == {"plan": "pro"}
    assert op["set_id"] == "u1"  # `id` named by email sets the person's id, as an identify body would
    process(tenant_a)
    ada = Profile.unscoped.get(workspace=tenant_a.workspace, email="ada@example.com")
    assert ada.external_id == "u1" and ada.attributes == {"plan": "pro"}


def test_an_incremental_sync_applies_only_rows_changed_since_the_last(tenant_a, any_source, process):
    table = people_table(any_source)
    insert(any_source, table, ("u1", None, "free", 1, False, at(0)), ("u2", None, "free", 1, False, at(1)),
           ("u3", None, "free", 1, False, at(2)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT id, plan, seats, updated_at FROM {table}",
                         cursor_column="updated_at")

    first = sync(source)
    assert (first.status, first.rows_read, first.rows_applied, first.cursor_from) == (RunStatus.SUCCEEDED, 3, 3, None)
    source.refresh_from_db()
    assert source.cursor_value["type"] == "datetime" and first.cursor_to == source.cursor_value
    process(tenant_a)
    assert "updated_at" not in person(tenant_a.workspace, "u1").attributes  # the cursor is not an attribute

    any_source.execute(f"UPDATE {table} SET plan = 'pro', updated_at = %s WHERE id = 'u2'", [at(10)])
    insert(any_source, table, ("u4", None, "team", 9, False, at(11)))
    second = sync(source)

    assert (second.status, second.rows_read, second.rows_applied) == (RunStatus.SUCCEEDED, 2, 2)
    assert second.cursor_from == first.cursor_to
    assert [op["person"]["id"] for op in staged(tenant_a.workspace)] == ["u2", "u4"]
    process(tenant_a)
    assert person(tenant_a.workspace, "u2").attributes["plan"] == "pro"
    assert person(tenant_a.workspace, "u4").attributes["plan"] == "team"

    third = sync(source)
    assert (third.status, third.rows_read) == (RunStatus.SUCCEEDED, 0)
    source.refresh_from_db()
    assert third.cursor_to == second.cursor_to == source.cursor_value

    full = sync(source, full=True)  # ignores the cursor, then sets it again
    assert (full.rows_read, full.cursor_from) == (4, None) and full.cursor_to == second.cursor_to


def test_a_failed_run_keeps_the_previous_cursor(tenant_a, any_source):
    table = people_table(any_source)
    insert(any_source, table, ("u1", None, "free", 1, False, at(0)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT id, plan, updated_at FROM {table}",
                         cursor_column="updated_at")
    first = sync(source)
    source = services.update_source(source=source, data={"query": f"SELECT id, plan, updated_at FROM {table}_gone"})

    failed = sync(source)

    assert failed.status == RunStatus.FAILED and failed.error.startswith("query: ")
    assert f"{table}_gone" in failed.error
    source.refresh_from_db()
    assert source.cursor_value == first.cursor_to == failed.cursor_to


def test_a_query_error_fails_the_run_naming_it(tenant_a, any_source):
    source = make_source(tenant_a.workspace, any_source, query="SELECT id FROM no_such_table_here")

    run = sync(source)

    assert (run.status, run.rows_read, run.rows_applied) == (RunStatus.FAILED, 0, 0)
    assert "no_such_table_here" in run.error and run.finished_at
    assert staged(tenant_a.workspace) == []


def test_a_closed_port_fails_the_run_and_the_test_connection(tenant_a, any_source):
    source = make_source(tenant_a.workspace, any_source, port=CLOSED_PORT)

    run = sync(source)

    assert run.status == RunStatus.FAILED and run.error.startswith("connect: could not connect")
    result = services.check_connection(source=source)
    assert result["ok"] is False and result["stage"] == "connect"
    source.port = any_source.settings["port"]
    assert services.check_connection(source=source)["ok"] is True


def test_a_missing_identifier_column_fails_the_run(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source, query="SELECT 'x' AS customer_id")

    run = sync(source)

    assert run.status == RunStatus.FAILED and run.error.startswith("identifier_column: 'id' is not a column")


# --- what a row may not be ---------------------------------------------------------------------------------

def test_bad_rows_are_rejected_with_their_row_and_column_and_no_values(tenant_a, pg_source):
    table = pg_source.table("odd")
    pg_source.execute(f"CREATE TABLE {table} (n integer, id text, email text, blob bytea)")
    pg_source.execute(f"INSERT INTO {table} VALUES (1, 'u1', 'ok@example.com', NULL), (2, '', NULL, NULL), "
                      f"(3, 'u3', 'not-an-email', NULL), (4, 'u4', NULL, 'secret'::bytea), (5, 'u5', NULL, NULL)")
    source = make_source(tenant_a.workspace, pg_source, query=f"SELECT id, email, blob FROM {table} ORDER BY n")

    run = sync(source)

    assert (run.status, run.rows_read, run.rows_applied, run.rows_rejected) == (RunStatus.SUCCEEDED, 5, 2, 3)
    assert run.errors == [
        {"row": 2, "column": "id", "message": "is empty: the row's id is needed"},
        {"row": 3, "column": "email", "message": "is not a valid email address"},
        {"row": 4, "column": "blob", "message": "is binary: it cannot become an attribute"},
    ]
    assert [op["person"]["id"] for op in staged(tenant_a.workspace)] == ["u1", "u5"]


def test_per_row_errors_are_capped(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source,
                         query="SELECT CASE WHEN g % 2 = 0 THEN '' ELSE 'u' || g END AS id FROM generate_series(1, 300) g")

    run = sync(source, chunk_rows=50)

    assert (run.rows_read, run.rows_applied, run.rows_rejected) == (300, 150, 150)
    assert len(run.errors) == services.MAX_ERRORS and run.errors[-1]["row"] == 200


def test_a_row_naming_a_person_deleted_at_their_request_is_rejected_and_stays_deleted(tenant_a, track, process,
                                                                                        any_source):
    assert track.put("/api/v1/customers/gone", {"email": "gone@example.com", "plan": "pro"}, format="json").status_code == 200
    process(tenant_a)
    assert track.delete("/api/v1/customers/gone").status_code == 200
    process(tenant_a)  # the deletion runs; its identifiers are suppressed
    assert person(tenant_a.workspace, "gone") is None
    table = people_table(any_source)
    insert(any_source, table, ("gone", None, "team", 1, False, at(0)), ("kept", None, "team", 1, False, at(1)),
           ("new-id", "GONE@example.com", "team", 1, False, at(2)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT id, email, plan FROM {table} ORDER BY id")

    run = sync(source)

    assert (run.rows_read, run.rows_applied, run.rows_rejected, run.rows_suppressed) == (3, 1, 2, 2)
    assert {(e["row"], e["column"]) for e in run.errors} == {(1, "id"), (3, "id")}
    assert all("deleted at their request" in e["message"] and "gone" not in e["message"] for e in run.errors)
    process(tenant_a)  # the processor drops them as it drops any identify naming them
    assert person(tenant_a.workspace, "gone") is None and person(tenant_a.workspace, "new-id") is None
    assert person(tenant_a.workspace, "kept") is not None
    assert sum(SuppressedIdentifier.unscoped.filter(workspace=tenant_a.workspace).values_list("dropped", flat=True)) == 2


# --- limits --------------------------------------------------------------------------------------------------

def test_the_row_limit_stops_the_run_and_the_cursor_moves_only_past_complete_values(tenant_a, any_source):
    table = people_table(any_source)
    # u2 and u3 share a cursor value: a run that stops between them must read both again.
    insert(any_source, table, ("u1", None, "a", 1, False, at(0)), ("u2", None, "b", 1, False, at(5)),
           ("u3", None, "c", 1, False, at(5)), ("u4", None, "d", 1, False, at(9)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT id, plan, updated_at FROM {table}",
                         cursor_column="updated_at", max_rows=2)

    first = sync(source)

    assert (first.status, first.limit_hit, first.rows_read, first.rows_applied) == (RunStatus.LIMITED, "rows", 2, 2)
    assert "max_rows" in first.error
    assert datetime.fromisoformat(first.cursor_to["value"]).replace(tzinfo=None) == at(0)
    second = sync(source)
    assert (second.status, second.rows_read) == (RunStatus.LIMITED, 2)  # u2 and u3, then stopped before u4
    assert datetime.fromisoformat(second.cursor_to["value"]).replace(tzinfo=None) == at(5)
    third = sync(source)
    assert (third.status, third.rows_read, third.limit_hit) == (RunStatus.SUCCEEDED, 1, "")
    ids = [op["person"]["id"] for op in staged(tenant_a.workspace)]
    assert ids == ["u1", "u2", "u2", "u3", "u4"]


def test_the_byte_limit_stops_the_run(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source, max_bytes=1024,
                         query="SELECT 'u' || g AS id, repeat('x', 300) AS note FROM generate_series(1, 10) g")

    run = sync(source)

    assert (run.status, run.limit_hit, run.rows_read, run.rows_applied) == (RunStatus.LIMITED, "bytes", 3, 3)
    assert run.bytes_read <= 1024


def test_the_time_limit_stops_a_slow_query_in_postgresql(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source, max_seconds=1,
                         query="SELECT 'u1' AS id FROM pg_sleep(5)")

    run = sync(source)

    assert (run.status, run.limit_hit, run.rows_read) == (RunStatus.LIMITED, "seconds", 0)
    assert "longer than 1 seconds" in run.error
    assert run.duration_seconds < 4


def test_the_time_limit_stops_a_slow_query_in_mariadb(tenant_a, maria_source):
    source = make_source(tenant_a.workspace, maria_source, max_seconds=1,
                         query="SELECT 'u1' AS id FROM (SELECT SLEEP(5) AS s) AS slow")

    run = sync(source)

    assert (run.status, run.limit_hit, run.rows_read) == (RunStatus.LIMITED, "seconds", 0)
    assert run.duration_seconds < 4


# --- read-only, SSRF ------------------------------------------------------------------------------------------

def test_the_query_runs_in_a_read_only_transaction_in_postgresql(tenant_a, pg_source):
    pg_source.execute(f"CREATE SEQUENCE {pg_source.table('seq')}")
    source = make_source(tenant_a.workspace, pg_source, query=f"SELECT nextval('{pg_source.table('seq')}')::text AS id")

    run = sync(source)

    assert run.status == RunStatus.FAILED and "read-only transaction" in run.error
    assert pg_source.execute(f"SELECT last_value, is_called FROM {pg_source.table('seq')}").fetchone() == (1, False)


def test_the_query_runs_in_a_read_only_transaction_in_mariadb(tenant_a, maria_source):
    source = make_source(tenant_a.workspace, maria_source, query="SELECT 'u1' AS id, @@tx_read_only AS read_only")

    [row] = services.preview(source=source)["rows"]

    assert row["values"]["read_only"] == 1


def test_colons_and_percent_signs_in_the_query_are_text(tenant_a, any_source):
    source = make_source(tenant_a.workspace, any_source,
                         query="SELECT 'u:1' AS id, 'a%b :name' AS note WHERE 'x' LIKE '%'")

    [row] = services.preview(source=source)["rows"]

    assert row["person"] == {"id": "u:1"} and row["attributes"] == {"note": "a%b :name"}


def test_a_private_host_is_refused_unless_allow_listed(tenant_a, pg_source, settings):
    source = make_source(tenant_a.workspace, pg_source)  # 127.0.0.1 is allow-listed in the test settings
    settings.ULAK_SSRF_ALLOWLIST = []

    run = sync(source)

    assert run.status == RunStatus.FAILED
    assert run.error == "address: not allowed: 127.0.0.1 is a loopback address"
    assert services.check_connection(source=source) == {
        "ok": False, "stage": "address", "error": "not allowed: 127.0.0.1 is a loopback address"}
    for host, reason in (("10.1.2.3", "private"), ("169.254.169.254", "link-local"), ("localhost", "loopback"),
                         ("0x7f.1", "loopback"), ("[::ffff:127.0.0.1]", "embeds")):
        with pytest.raises(InvalidInput) as refused:
            make_source(tenant_a.workspace, pg_source, host=host)
        assert refused.value.field == "host" and reason in refused.value.message, host


# --- the source itself -----------------------------------------------------------------------------------------

def test_the_password_is_stored_encrypted_and_never_audited(tenant_a, pg_source):
    from core.models import AuditEntry

    source = make_source(tenant_a.workspace, pg_source, password="s3cret-pass")
    stored = DataSource.unscoped.get(pk=source.pk)
    assert "s3cret-pass" not in stored.password_encrypted and decrypt(stored.password_encrypted) == "s3cret-pass"
    services.update_source(source=source, data={"password": "n3w-pass"})
    assert decrypt(DataSource.unscoped.get(pk=source.pk).password_encrypted) == "n3w-pass"
    services.update_source(source=source, data={"name": "renamed"})  # absent: kept
    assert decrypt(DataSource.unscoped.get(pk=source.pk).password_encrypted) == "n3w-pass"
    services.update_source(source=source, data={"password": None})  # null: cleared
    assert DataSource.unscoped.get(pk=source.pk).password_encrypted == ""
    entries = " ".join(str(e.changes) for e in AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk))
    assert "s3cret" not in entries and "n3w" not in entries and "password" not in entries


def test_one_run_at_a_time_and_a_claimed_run_is_not_run_twice(tenant_a, pg_source):
    source = make_source(tenant_a.workspace, pg_source)
    run = services.start_sync(source=source)
    with pytest.raises(Conflict):
        services.start_sync(source=source)
    assert services.run_sync(tenant_a.workspace.pk, run.pk).status == RunStatus.SUCCEEDED
    assert services.run_sync(tenant_a.workspace.pk, run.pk) is None  # over: a second delivery does nothing
    assert services.start_sync(source=source).status == RunStatus.QUEUED


def test_preview_shows_the_first_rows_as_they_would_be_staged(tenant_a, any_source):
    table = people_table(any_source)
    insert(any_source, table, *[(f"u{n}", None, "pro", n, False, at(n)) for n in range(1, 15)], ("", None, "x", 0,
                                                                                               False, at(0)))
    source = make_source(tenant_a.workspace, any_source, query=f"SELECT id, plan, seats FROM {table} ORDER BY seats")

    preview = services.preview(source=source, limit=3)

    assert preview["columns"] == ["id", "plan", "seats"]
    assert preview["rows"][0] == {"values": {"id": "", "plan": "x", "seats": 0},
                                  "error": {"column": "id", "message": "is empty: the row's id is needed"}}
    assert preview["rows"][1] == {"values": {"id": "u1", "plan": "pro", "seats": 1}, "person": {"id": "u1"},
                                  "fields": {}, "attributes": {"plan": "pro", "seats": 1}}
    assert len(preview["rows"]) == 3 and staged(tenant_a.workspace) == []
    assert not SyncRun.unscoped.filter(source=source).exists()
    with pytest.raises(InvalidInput) as bad:
        services.preview(source=services.update_source(source=source, data={"identifier_column": "customer"}))
    assert bad.value.field == "identifier_column"
    with pytest.raises(InvalidInput) as bad:
        services.preview(source=services.update_source(source=source, data={"query": "SELECT nope FROM nowhere"}))
    assert bad.value.field == "query"


# --- the schedule ----------------------------------------------------------------------------------------------

def test_the_beat_sweep_starts_due_sources_once_and_moves_their_next_time(tenant_a, tenant_b, pg_source, broker,
                                                                          django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False) as clock:
        due = make_source(tenant_a.workspace, pg_source, schedule_minutes=60)
        manual = make_source(tenant_a.workspace, pg_source)
        paused = make_source(tenant_b.workspace, pg_source, schedule_minutes=5, enabled=False)
        assert due.next_run_at == T0 and manual.next_run_at is None

        with django_capture_on_commit_callbacks(execute=True):
            assert services.start_due_syncs() == 1
        [run] = SyncRun.unscoped.all()
        assert (run.source_id, run.trigger, run.status) == (due.pk, RunTrigger.SCHEDULE, RunStatus.QUEUED)
        assert broker.llen("default") == 1  # its task was sent
        due.refresh_from_db()
        assert due.next_run_at == T0 + timedelta(minutes=60)
        assert services.start_due_syncs() == 0  # not due again yet

        clock.shift(timedelta(minutes=61))
        assert services.start_due_syncs() == 0  # the previous run is still queued: skipped
        due.refresh_from_db()
        assert due.next_run_at == T0 + timedelta(minutes=121)
        assert services.run_sync(tenant_a.workspace.pk, run.pk).status == RunStatus.SUCCEEDED
        clock.shift(timedelta(minutes=61))
        assert services.start_due_syncs() == 1
        assert not SyncRun.unscoped.filter(source=paused).exists()


def test_lost_runs_are_sent_again_or_failed_keeping_the_cursor(tenant_a, pg_source, broker):
    with time_machine.travel(T0, tick=False) as clock:
        queued = make_source(tenant_a.workspace, pg_source)
        running = make_source(tenant_a.workspace, pg_source, max_seconds=60, cursor_column="id")
        DataSource.unscoped.filter(pk=running.pk).update(cursor_value={"type": "int", "value": 7})
        running.refresh_from_db()
        lost_queued = services.start_sync(source=queued)
        lost_running = services.start_sync(source=running)
        services._claim(tenant_a.workspace.pk, lost_running.pk)  # a worker took it, then died
        broker.flushdb()

        clock.shift(timedelta(minutes=1))
        assert services.recover_runs() == {"requeued": 0, "failed": 0}
        clock.shift(timedelta(minutes=2))
        assert services.recover_runs() == {"requeued": 1, "failed": 0}
        assert broker.llen("default") == 1
        clock.shift(timedelta(minutes=1))
        assert services.recover_runs() == {"requeued": 0, "failed": 1}  # past max_seconds + grace
    lost_running.refresh_from_db()
    assert lost_running.status == RunStatus.FAILED and "worker" in lost_running.error
    assert lost_running.cursor_to == {"type": "int", "value": 7}
    assert SyncRun.unscoped.get(pk=lost_queued.pk).status == RunStatus.QUEUED
