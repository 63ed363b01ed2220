"""Journeys exactly once: a worker SIGKILLed in the middle of a tick, two ticks racing, a redelivered
tick, the same trigger event ingested twice and a change replayed by a rewound cursor. Nothing is
sent twice, no step is skipped, no second run appears where one is allowed.

The crash test runs a real Celery worker on the real broker; its tick is held inside its batch
transaction by a webhook step whose receiver (a local FakeHttpServer) does not answer until the
test has killed the worker.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from campaigns import tasks
from campaigns.journeys import engine
from campaigns.journeys.triggers import CONSUMER
from campaigns.models import Journey, JourneyStep
from channels.models import Delivery
from profiles.changefeed import rewind, run_consumer
from tests.campaigns.journeys.conftest import campaign, event, feed, identify, runs_of, step_log, tick
from tests.helpers import wait_until
from tests.support.fakes import FakeHttpServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]


# --- helpers shared by the journeys' exactly-once, reply/webhook and end-to-end tests ----------------------











def journey_deliveries(workspace) -> list[str]:
    return sorted(Delivery.objects.for_workspace(workspace).filter(source="campaign")
                  .values_list("idempotency_key", flat=True))


class Gate:
    """A webhook receiver that holds the `hold_at`-th request (1-based) until released; every other
    request is answered 200 at once. `held` is set when the held request has arrived."""

    def __init__(self, hold_at: int):
        self.hold_at = hold_at
        self.held, self.release = threading.Event(), threading.Event()
        self.count = 0
        self.lock = threading.Lock()
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        with self.lock:
            self.count += 1
            mine = self.count == self.hold_at
        if mine:
            self.held.set()
            self.release.wait(30)
        return Reply(200, {"ok": True})

    def keys(self) -> list[str]:
        return [request.headers["idempotency-key"] for request in self.server.requests]

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.__exit__(*exc)


def workflow(url: str) -> dict:
    return {"start": "hello", "steps": {
        "hello": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Welcome"},
                  "next": "notify"},
        "notify": {"type": "webhook", "url": f"{url}/crm", "body": {"email": "{{ customer.email }}"},
                   "next": "bye"},
        "bye": {"type": "send", "channel": "email", "content": {"subject": "Bye", "body": "See you"}},
    }}


def start_runs(tenant, track, made, count: int) -> list[Journey]:
    for n in range(count):
        identify(track, f"p{n}", email=f"p{n}@example.test")
        event(track, f"p{n}", "signed_up")
    feed(tenant.workspace)
    runs = runs_of(made)
    assert len(runs) == count and {run.step for run in runs} == {"hello"}
    return runs


def assert_each_run_completed_once(runs, workspace):
    """Every run finished its three steps exactly once: contiguous step log, one delivery per send
    step under the key journey:<run>:<seq>."""
    expected_keys = []
    for run in runs:
        run.refresh_from_db()
        assert run.state == "completed", (run.pk, run.state, run.exit_reason)
        assert step_log(run) == [(1, "hello", "sent"), (2, "notify", "called"), (3, "bye", "sent")]
        expected_keys += [f"journey:{run.pk}:1", f"journey:{run.pk}:3"]
    assert journey_deliveries(workspace) == sorted(expected_keys)


def claimable(count_of) -> int:
    """How many of the runs another tick could claim now (FOR UPDATE SKIP LOCKED, rolled back)."""
    with transaction.atomic():
        claimed = len(list(Journey.unscoped.filter(pk__in=[run.pk for run in count_of])
                           .select_for_update(skip_locked=True)))
        transaction.set_rollback(True)
    return claimed


# --- a worker killed mid-tick ---------------------------------------------------------------------------------

def _journeys_worker(log: Path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "journeys", "--pool", "solo",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=out, stderr=out)


def test_a_worker_killed_inside_the_tick_batch_loses_no_step_and_doubles_none(tenant_a, track, email_config,
                                                                               broker, tmp_path):
    ws = tenant_a.workspace
    with Gate(hold_at=3) as gate:
        made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=workflow(gate.server.url))
        runs = start_runs(tenant_a, track, made, 4)
        log = tmp_path / "worker.log"
        worker = _journeys_worker(log)
        try:
            tasks.tick.apply_async()
            # The worker's tick has advanced two runs (two sends and a webhook each) and the third up
            # to its webhook, all in one uncommitted batch: it now waits for the receiver's answer.
            assert gate.held.wait(60), log.read_text()[-3000:]
            assert claimable(runs) == 0 and tick() == 0  # another tick finds every run of the batch held
            assert journey_deliveries(ws) == [] and not JourneyStep.objects.for_workspace(ws).exists()
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
        gate.release.set()
        # The killed worker's transaction rolled back: the runs are due where they were.
        assert wait_until(lambda: claimable(runs) == 4, timeout=30)
        for run in runs:
            run.refresh_from_db()
            assert (run.state, run.step, run.seq) == ("active", "hello", 0)
        assert journey_deliveries(ws) == [] and not JourneyStep.objects.for_workspace(ws).exists()
        killed_calls = gate.keys()
        assert len(killed_calls) == 3

        assert tick() == 4  # the next tick does the whole batch again
        assert tick() == 0
    assert_each_run_completed_once(runs, ws)
    # The webhook is the one step that reached outside before the commit: called again after the
    # crash (at least once), under the same Idempotency-Key, so the receiver can drop the repeat.
    keys = gate.keys()
    assert len(keys) == 7 and set(killed_calls) <= set(keys[3:])
    assert sorted(keys[3:]) == sorted(f"journey-{run.pk}-2" for run in runs)


# --- two ticks racing, a redelivered tick --------------------------------------------------------------------

def test_two_ticks_racing_advance_every_run_once(tenant_a, track, email_config, broker):
    ws = tenant_a.workspace
    with Gate(hold_at=1) as gate:
        made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=workflow(gate.server.url))
        runs = start_runs(tenant_a, track, made, 6)
        results, errors = {}, []

        def ticking(name):
            try:
                results[name] = engine.tick(batch_size=2)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        first = threading.Thread(target=ticking, args=("first",))
        first.start()
        try:
            assert gate.held.wait(30)  # the first tick holds its batch of two, inside its first webhook call
            second = threading.Thread(target=ticking, args=("second",))
            second.start()
            second.join(30)
            assert not second.is_alive()
        finally:
            gate.release.set()
            first.join(30)
        assert not errors and not first.is_alive()
        # The second tick skipped the two runs the first one held and took the other four.
        assert results == {"first": 2, "second": 4}
        assert tick() == 0
    assert_each_run_completed_once(runs, ws)
    assert sorted(gate.keys()) == sorted(f"journey-{run.pk}-2" for run in runs)  # one call per run


def test_a_redelivered_tick_task_changes_nothing(tenant_a, track, email_config, broker):
    ws = tenant_a.workspace
    with FakeHttpServer() as receiver:
        made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=workflow(receiver.url))
        runs = start_runs(tenant_a, track, made, 2)
        assert tasks.tick.apply().get() == 2
        assert tasks.tick.apply().get() == 0  # the same task delivered again
        assert len(receiver.requests) == 2
    assert_each_run_completed_once(runs, ws)


# --- the same trigger event twice -----------------------------------------------------------------------------

ONE_STEP = {"start": "mark", "steps": {"mark": {"type": "update_attributes", "attributes": {"welcomed": "yes"}}}}


def test_the_same_event_ingested_twice_starts_one_run(tenant_a, track):
    ws = tenant_a.workspace
    # Re-entry "always": only the event's identity, not a rule, can keep a second run out.
    made = campaign(ws, trigger={"type": "event", "name": "ordered"}, re_entry={"mode": "always"}, workflow=ONE_STEP)
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "ordered", {"order_id": 7}, id="order-7")
    feed(ws)
    assert tick() == 1  # the run completes, so a live run keeps nothing out either
    event(track, "ada", "ordered", {"order_id": 7}, id="order-7")  # the client retried
    feed(ws)
    assert tick() == 0
    assert [run.state for run in runs_of(made)] == ["completed"]

    event(track, "ada", "ordered", {"order_id": 8}, id="order-8")  # a new order does start a run
    feed(ws)
    assert tick() == 1
    assert [run.state for run in runs_of(made)] == ["completed", "completed"]


def test_a_replayed_change_starts_no_second_run(tenant_a, track):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "ordered"}, re_entry={"mode": "always"}, workflow=ONE_STEP)
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "ordered", {"order_id": 7})
    identify(track, "bob", email="bob@example.test")
    event(track, "bob", "ordered", {"order_id": 9})
    feed(ws)
    assert tick() == 2
    before = [(run.pk, run.trigger_ref) for run in runs_of(made)]
    assert len(before) == 2 and all(ref.startswith("change:") for _, ref in before)

    rewind(workspace=ws, consumer=CONSUMER)  # every retained change is offered again
    replayed = run_consumer(ws, CONSUMER)
    assert replayed.delivered >= 4
    assert [(run.pk, run.trigger_ref) for run in runs_of(made)] == before
    assert tick() == 0
