"""The ingest processor: ordered, exactly-once application, surviving a killed worker."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connection, connections
from rest_framework.test import APIClient

from config.celery import app as celery_app
from compliance.deletion import run_deletion
from compliance.models import DeletionRecord
from profiles.ingest.processor import apply_operations, process_pending
from profiles.ingest.store import stage_operations
from profiles.models import Event, InboundOperation, Profile
from tests.helpers import basic_auth, wait_until

ROOT = Path(__file__).resolve().parents[2]


def event(n, person="u1", **extra):
    return {"op": "event", "person": {"id": person}, "name": f"e{n}", "type": "event", "data": {"n": n},
            "timestamp": 1700000000 + n, **extra}


def test_operations_apply_in_order_and_leave_the_queue_empty(tenant_a):
    ops = [
        {"op": "identify", "person": {"id": "u1"}, "ts": 1.0, "attributes": {"plan": "a"}},
        event(1),
        {"op": "identify", "person": {"id": "u1"}, "ts": 2.0, "attributes": {"plan": "b"}},
        {"op": "delete", "person": {"id": "u1"}},
        event(2, person="u2"),
    ]
    stage_operations(workspace=tenant_a.workspace, operations=ops, source="test")
    assert process_pending(tenant_a.workspace) == 5
    run_deletion(DeletionRecord.unscoped.get())  # the delete became a compliance deletion request
    assert list(Profile.unscoped.values_list("external_id", flat=True)) == ["u2"]
    assert list(Event.unscoped.values_list("name", flat=True)) == ["e2"]
    assert not InboundOperation.unscoped.exists()


def test_one_broken_operation_is_skipped_not_blocking(tenant_a, caplog):
    ops = [event(1), {"op": "no-such-op"}, event(2), {"op": "merge", "primary": {"id": "u1"}}]
    apply_operations(tenant_a.workspace, ops)
    assert Event.unscoped.count() == 2
    assert "ingest operation failed" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_posts_store_one_event(tenant_a):
    body = {"name": "purchase", "id": "same-id", "data": {"total": 1}}

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_a.track_key))
        results.append(client.post("/api/v1/customers/u1/events", body, format="json").status_code)
        connections.close_all()

    results: list[int] = []
    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    process_pending(tenant_a.workspace)
    assert Event.unscoped.filter(dedupe_id="same-id").count() == 1


@pytest.mark.django_db(transaction=True)
def test_staged_data_is_applied_by_a_real_worker_after_commit(tenant_a, broker):
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["ingest"], shutdown_timeout=10):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=basic_auth(tenant_a.site_id, tenant_a.track_key))
        assert client.put("/api/v1/customers/u1", {"plan": "pro"}, format="json").status_code == 200
        assert client.post("/api/v1/customers/u1/events", {"name": "purchase"}, format="json").status_code == 200
        assert wait_until(lambda: Event.unscoped.filter(profile__external_id="u1").exists())
    assert Profile.unscoped.get().attributes == {"plan": "pro"}
    assert wait_until(lambda: not InboundOperation.unscoped.exists())
    connections.close_all()


def _worker_process():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "ULAK_INGEST_BATCH_SIZE": "200",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "ingest", "--pool", "solo",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(tenant_a, broker):
    total = 6000
    # No dedupe ids: applying any operation twice would show up as an extra event.
    ops = [event(n, person=f"u{n % 50}") for n in range(total)]
    stage_operations(workspace=tenant_a.workspace, operations=ops, source="test")
    worker = _worker_process()
    try:
        from profiles.tasks import process_inbound

        process_inbound.delay(workspace_id=tenant_a.workspace.pk)
        started = wait_until(lambda: InboundOperation.unscoped.count() < total, timeout=60, interval=0.01)
        assert started, "the worker never applied a batch"
        os.killpg(worker.pid, signal.SIGKILL)  # mid-way: some batches committed, one in flight
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
    left = InboundOperation.unscoped.count()
    assert 0 < left < total, f"kill landed outside the run (left={left})"
    assert Event.unscoped.count() == total - left  # committed batches only, the in-flight one rolled back
    process_pending(tenant_a.workspace)  # what the next worker (or the sweeper) does
    assert Event.unscoped.count() == total
    assert sorted(Event.unscoped.values_list("data__n", flat=True)) == list(range(total))
    assert not InboundOperation.unscoped.exists()
