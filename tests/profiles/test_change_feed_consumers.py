"""Consuming the change feed: in order, nothing skipped, each row applied once (races, redelivered
tasks, a killed worker, a rewound cursor), per workspace; driving by beat; pruning."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from profiles.changefeed import register_consumer, rewind, run_consumer, unregister_consumer
from profiles.changefeed import consumers as consumer_registry
from profiles.changefeed.consumers import SCHEDULE_KEY, drive, horizon, pending_workspaces, prune
from profiles.ingest.processor import process_pending
from profiles.ingest.store import stage_operations
from profiles.models import Change, ChangeFeedCursor
from profiles.services import record_events
from profiles.tasks import consume_change_feed
from tests.helpers import wait_until
from tests.profiles import changefeed_support as support

ROOT = Path(__file__).resolve().parents[2]
T = 1_700_000_000


@pytest.fixture(autouse=True)
def only_this_files_consumers():
    """The consumers the application registers (the journey engine's) are set aside: these tests
    count cursors, drives and prunes of their own consumers only."""
    registered = dict(consumer_registry._consumers)
    consumer_registry._consumers.clear()
    yield
    consumer_registry._consumers.clear()
    consumer_registry._consumers.update(registered)


def event(n, person="u1"):
    return {"op": "event", "person": {"id": person}, "name": f"e{n}", "type": "event", "data": {"n": n},
            "timestamp": T + n}


def ingest(tenant, ops):
    stage_operations(workspace=tenant.workspace, operations=ops, source="test")
    process_pending(tenant.workspace)


def feed_ids(workspace) -> list[int]:
    return list(Change.objects.for_workspace(workspace).order_by("txid", "id").values_list("id", flat=True))


def settled(workspace) -> list[int]:
    """The workspace's row ids, once all of them are below the horizon. Transactions still running
    elsewhere on the server (other test databases) hold the horizon back for a moment."""
    top = Change.objects.for_workspace(workspace).order_by("-txid").values_list("txid", flat=True).first()
    assert wait_until(lambda: top is None or horizon() > top, timeout=60), "the horizon never passed the rows"
    return feed_ids(workspace)


def cursor_of(workspace, name=support.NAME):
    return ChangeFeedCursor.objects.for_workspace(workspace).filter(consumer=name).values_list(
        "txid", "change_id").first()


@pytest.fixture
def feed_tables(transactional_db):
    support.create_tables()
    yield
    support.drop_tables()


@pytest.fixture
def applier(feed_tables):
    consumer = register_consumer(support.NAME, support.make_handler(support.NAME), batch_size=10)
    yield consumer
    unregister_consumer(support.NAME)


@pytest.fixture
def consumer_named():
    names = []

    def register(name, handle=lambda workspace, changes: None, **kwargs):
        names.append(name)
        return register_consumer(name, handle, **kwargs)

    yield register
    for name in names:
        unregister_consumer(name)


# --- order and once ---------------------------------------------------------------------------------------

def test_a_consumer_applies_every_row_once_in_order_and_per_workspace(two_tenants, applier):
    a, b = two_tenants
    ingest(a, [event(n) for n in range(25)])
    ingest(b, [event(n, person="b1") for n in range(4)])
    rows_a, rows_b = settled(a.workspace), settled(b.workspace)
    assert len(rows_a) == 26 and len(rows_b) == 5  # the person created, then the events

    result = run_consumer(a.workspace, support.NAME)
    assert (result.delivered, result.batches) == (26, 3)
    assert support.deliveries() == rows_a  # in (txid, id) order, each once, only this workspace's
    assert cursor_of(b.workspace) is None
    assert run_consumer(a.workspace, support.NAME).delivered == 0  # caught up: nothing again

    run_consumer(b.workspace, support.NAME)
    assert support.deliveries() == rows_a + rows_b
    ingest(a, [event(99)])
    new = [pk for pk in settled(a.workspace) if pk not in rows_a]
    run_consumer(a.workspace, support.NAME)
    assert support.deliveries() == rows_a + rows_b + new and len(new) == 1


def test_rows_committed_out_of_id_order_are_not_skipped(tenant_a, applier):
    ws = tenant_a.workspace
    written, release = threading.Event(), threading.Event()
    errors = []

    def slow_writer():
        try:
            with transaction.atomic():
                record_events(ws, [event(1, person="slow")])
                written.set()
                assert release.wait(30)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert written.wait(30)
        with transaction.atomic():  # a later transaction: higher ids, committed first
            record_events(ws, [event(2, person="fast")])
        committed = feed_ids(ws)
        assert len(committed) == 2  # the fast writer's person and event; the slow one's are not visible yet
        run_consumer(ws, support.NAME)
        # An "id > last seen" reader would have taken these and then skipped the slow writer's lower ids.
        assert support.deliveries() == []
        assert cursor_of(ws)[0] < min(Change.unscoped.filter(pk__in=committed).values_list("txid", flat=True))
    finally:
        release.set()
        thread.join(30)
    assert not errors
    everything = settled(ws)
    assert len(everything) == 4 and min(everything) not in committed  # the slow writer holds the lowest ids
    run_consumer(ws, support.NAME)
    assert support.deliveries() == everything


def test_two_runs_of_one_consumer_take_turns(tenant_a, feed_tables):
    ws = tenant_a.workspace

    def slowly(changes):
        time.sleep(0.1)

    register_consumer("racer", support.make_handler("racer", before=slowly), batch_size=4)
    try:
        ingest(tenant_a, [event(n) for n in range(23)])
        rows = settled(ws)
        results = []

        def run():
            try:
                results.append(run_consumer(ws, "racer"))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        unregister_consumer("racer")
    delivered = support.deliveries("racer")
    assert sorted(delivered) == rows and len(delivered) == len(set(delivered))  # none twice
    assert sum(result.delivered for result in results) == len(rows)
    assert sum(1 for result in results if result.delivered) >= 2  # they did run at the same time


def test_a_redelivered_consume_task_applies_each_row_once(tenant_a, applier, broker):
    ws = tenant_a.workspace
    ingest(tenant_a, [event(n) for n in range(15)])
    rows = settled(ws)
    first = consume_change_feed.apply(kwargs={"workspace_id": ws.pk, "consumer": support.NAME}).get()
    again = consume_change_feed.apply(kwargs={"workspace_id": ws.pk, "consumer": support.NAME}).get()
    assert (first["delivered"], again["delivered"]) == (16, 0)
    assert support.deliveries() == rows == support.applied()


def test_a_rewound_cursor_replays_and_keyed_writes_apply_once(tenant_a, applier):
    ws = tenant_a.workspace
    ingest(tenant_a, [event(n) for n in range(12)])
    rows = settled(ws)
    run_consumer(ws, support.NAME)
    rewind(workspace=ws, consumer=support.NAME, before_change=Change.unscoped.get(pk=rows[5]))
    run_consumer(ws, support.NAME)
    assert support.deliveries() == rows + rows[5:]  # handed over again, from the row named
    assert support.applied() == rows  # applied once: the handler keys its writes by change id


def test_a_failing_handler_rolls_back_its_batch_and_cursor(tenant_a, feed_tables):
    ws = tenant_a.workspace
    failures = [RuntimeError("handler bug")]

    def flaky(changes):
        if failures:
            raise failures.pop()

    register_consumer("flaky", support.make_handler("flaky", before=flaky), batch_size=5)
    try:
        ingest(tenant_a, [event(n) for n in range(7)])
        rows = settled(ws)
        with pytest.raises(RuntimeError):
            run_consumer(ws, "flaky")
        assert support.deliveries("flaky") == [] and cursor_of(ws, "flaky") in (None, (0, 0))
        run_consumer(ws, "flaky")
    finally:
        unregister_consumer("flaky")
    assert support.deliveries("flaky") == rows


@pytest.mark.django_db(transaction=True)
def test_a_consumer_sees_only_its_kinds_and_still_moves_past_the_rest(tenant_a, consumer_named):
    ws = tenant_a.workspace
    seen = []
    consumer_named("people-only", lambda workspace, changes: seen.extend(c.kind for c in changes),
                   kinds={"attributes"})
    ingest(tenant_a, [event(n) for n in range(3)])
    rows = settled(ws)
    run_consumer(ws, "people-only")
    assert seen == ["attributes"]
    assert cursor_of(ws, "people-only") >= (Change.unscoped.get(pk=rows[-1]).txid, rows[-1])
    assert pending_workspaces("people-only") == []


# --- a real worker, killed ------------------------------------------------------------------------------------

def _worker(log: Path, **env):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "ULAK_TEST_CHANGE_FEED_CONSUMER": "1",
        **env,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default", "--pool", "solo",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat",
               "--include", "tests.profiles.changefeed_support"]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=out, stderr=out)


def _kill(worker):
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def test_a_consumer_killed_between_commit_and_consumption_loses_nothing(tenant_a, applier, broker, tmp_path):
    ws = tenant_a.workspace
    ingest(tenant_a, [event(n) for n in range(30)])
    rows = settled(ws)  # committed by the writer
    marker = tmp_path / "in-batch"
    worker = _worker(tmp_path / "worker.log", ULAK_TEST_CHANGE_FEED_BLOCK=str(marker), ULAK_TEST_CHANGE_FEED_BATCH="10")
    try:
        consume_change_feed.apply_async(kwargs={"workspace_id": ws.pk, "consumer": support.NAME}, queue="default")
        assert wait_until(marker.exists, timeout=60), (tmp_path / "worker.log").read_text()[-3000:]
        # The worker has applied a batch and not committed it: nothing of it is visible.
        assert support.deliveries() == [] and cursor_of(ws) in (None, (0, 0))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        _kill(worker)
    assert marker.read_text() == "10"
    assert support.deliveries() == [] and cursor_of(ws) in (None, (0, 0))  # the in-flight batch rolled back
    run_consumer(ws, support.NAME)  # the consumer started again
    assert support.deliveries() == rows  # every row, once
    assert cursor_of(ws) >= (Change.unscoped.get(pk=rows[-1]).txid, rows[-1])


# --- beat: drive ------------------------------------------------------------------------------------------------

def test_drive_schedules_each_consumer_and_workspace_with_rows_once(two_tenants, applier, consumer_named, broker):
    import base64
    import json

    a, b = two_tenants
    consumer_named("journeys-like", queue="journeys")
    ingest(a, [event(1)])
    settled(a.workspace)

    def queued(queue):
        messages = [json.loads(m) for m in broker.lrange(queue, 0, -1)]
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[1]) for m in messages]

    from django.core.cache import cache

    expected_default = [("default.consume_change_feed", {"workspace_id": a.workspace.pk, "consumer": support.NAME})]
    expected_journeys = [("default.consume_change_feed", {"workspace_id": a.workspace.pk,
                                                          "consumer": "journeys-like"})]
    # The ingest batch asked for each consumer as it committed (nudge), once.
    assert queued("default") == expected_default and queued("journeys") == expected_journeys
    assert drive() == 0  # already scheduled
    # Beat's drive is for what a nudge missed: as if those tasks were lost with their worker.
    broker.delete("default", "journeys")
    cache.delete_many([SCHEDULE_KEY.format(name, a.workspace.pk) for name in (support.NAME, "journeys-like")])
    assert pending_workspaces(support.NAME) == [a.workspace.pk]
    assert drive() == 2
    assert queued("default") == [("default.consume_change_feed", {"workspace_id": a.workspace.pk,
                                                                   "consumer": support.NAME})]
    assert queued("journeys") == [("default.consume_change_feed", {"workspace_id": a.workspace.pk,
                                                                    "consumer": "journeys-like"})]
    assert drive() == 0  # already scheduled
    consume_change_feed.apply(kwargs={"workspace_id": a.workspace.pk, "consumer": support.NAME})
    assert pending_workspaces(support.NAME) == [] and pending_workspaces("journeys-like") == [a.workspace.pk]
    assert cache.get(SCHEDULE_KEY.format(support.NAME, a.workspace.pk)) is None  # caught up: beat may schedule again
    assert len(support.deliveries()) == 2 and b.workspace.pk not in pending_workspaces("journeys-like")


# --- pruning ---------------------------------------------------------------------------------------------------

def _rows(tenant, count):
    ingest(tenant, [event(n) for n in range(count - 1)])
    return feed_ids(tenant.workspace)


def _age(ids, hours):
    Change.unscoped.filter(pk__in=ids).update(created_at=timezone.now() - timedelta(hours=hours))


def _at(workspace, name, change_id):
    row = Change.unscoped.get(pk=change_id)
    ChangeFeedCursor.objects.for_workspace(workspace).update_or_create(
        consumer=name, defaults={"workspace_id": workspace.pk, "txid": row.txid, "change_id": row.pk})


@pytest.mark.django_db
def test_pruning_keeps_rows_a_consumer_has_not_passed(two_tenants, consumer_named, settings):
    settings.ULAK_CHANGE_FEED_RETENTION_HOURS = 10
    a, b = two_tenants
    consumer_named("first")
    consumer_named("second")
    rows, other = _rows(a, 10), _rows(b, 4)
    _age(rows[:8] + other, 11)
    _at(a.workspace, "first", rows[5])
    _at(a.workspace, "second", rows[6])
    assert prune(batch_size=2) == 6  # old, and passed by both consumers
    assert feed_ids(a.workspace) == rows[6:]  # old but not passed by "first"; young
    assert feed_ids(b.workspace) == other  # no cursor there yet: nobody has passed anything

    _at(a.workspace, "first", rows[9])
    _at(a.workspace, "second", rows[9])
    assert prune() == 2
    assert feed_ids(a.workspace) == rows[8:]  # passed, but younger than the retention


@pytest.mark.django_db
def test_without_consumers_pruning_follows_the_retention(tenant_a, settings):
    settings.ULAK_CHANGE_FEED_RETENTION_HOURS = 72
    rows = _rows(tenant_a, 12)
    _age(rows[:7], 73)
    _age(rows[7:9], 71)
    assert prune(batch_size=3) == 7
    assert feed_ids(tenant_a.workspace) == rows[7:]
