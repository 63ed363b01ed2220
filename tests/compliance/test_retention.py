"""Retention: expired events are purged per workspace, in batches, audited, from a nightly beat job."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from core.models import AuditEntry
from compliance.retention import purge_expired_events
from compliance.retention_tasks import purge_expired, purge_workspace_events
from config.celery import app as celery_app
from core.context import Actor, acting_as
from tests.support.factories import ProfileFactory
from profiles.models import Event, InboundOperation, Profile

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
# The tasks purge against the real clock; the windows fixture's events are aged from it.
START = datetime.now(UTC)


def add_events(workspace, *ages_in_days, now=NOW, profile=None):
    Event.unscoped.bulk_create(
        Event(workspace=workspace, profile=profile, anonymous_id=None if profile else "anon-1", name="seen",
              timestamp=now - timedelta(days=age))
        for age in ages_in_days
    )


def ages(workspace, now=NOW):
    return sorted(round((now - ts).total_seconds() / 86400, 3)
                  for ts in Event.unscoped.filter(workspace=workspace).values_list("timestamp", flat=True))


def purges(workspace):
    return list(AuditEntry.objects.filter(workspace_id=workspace.pk, changes__action="retention_purge")
                .order_by("pk"))


@pytest.fixture
def windows(tenant_a, tenant_b):
    """tenant_a keeps events 30 days, tenant_b 365; both hold events 10, 40 and 400 days old."""
    for tenant, days in ((tenant_a, 30), (tenant_b, 365)):
        tenant.workspace.event_retention_days = days
        tenant.workspace.save(update_fields=["event_retention_days"])
        add_events(tenant.workspace, 10, 40, 400, now=START)
    return tenant_a.workspace, tenant_b.workspace


def test_events_older_than_the_window_are_deleted_and_newer_kept(windows):
    a, b = windows
    assert purge_expired_events(workspace=a, now=START) == 2
    assert ages(a, START) == [10]
    assert ages(b, START) == [10, 40, 400]  # purging A leaves B untouched

    assert purge_expired_events(workspace=b, now=START) == 1
    assert ages(b, START) == [10, 40]
    assert ages(a, START) == [10]


def test_the_cutoff_itself_is_kept(tenant_a):
    ws = tenant_a.workspace  # 365 days by default
    add_events(ws, 365, 365.0001, 364.9999)
    assert purge_expired_events(workspace=ws, now=NOW) == 1
    assert ages(ws) == [365, 365]  # exactly at the cutoff, and just inside it


def test_only_events_go_not_the_people_nor_staged_operations(tenant_a):
    ws = tenant_a.workspace
    person = ProfileFactory(workspace=ws, external_id="p-1")
    add_events(ws, 500, 1, profile=person)
    InboundOperation.unscoped.create(workspace=ws, source="track", payload={"type": "event"},
                                     received_at=NOW - timedelta(days=900))
    assert purge_expired_events(workspace=ws, now=NOW) == 1
    assert ages(ws) == [1]
    assert Profile.unscoped.filter(pk=person.pk).exists()
    assert InboundOperation.unscoped.filter(workspace=ws).count() == 1


def test_a_large_purge_runs_in_batches(tenant_a):
    ws = tenant_a.workspace
    add_events(ws, *([400] * 50), *([5] * 3))
    with CaptureQueriesContext(connection) as queries:
        assert purge_expired_events(workspace=ws, now=NOW, batch_size=7) == 50
    deletes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 8  # seven full batches of 7, then the last row
    assert all("LIMIT 7" in sql for sql in deletes)
    assert ages(ws) == [5, 5, 5]


def test_a_batch_size_below_one_is_refused(tenant_a):
    add_events(tenant_a.workspace, 400)
    with pytest.raises(ValueError, match="batch_size"):
        purge_expired_events(workspace=tenant_a.workspace, now=NOW, batch_size=0)
    assert ages(tenant_a.workspace) == [400]


def test_each_purge_is_audited_with_counts_and_no_personal_data(windows):
    a, b = windows
    with acting_as(Actor(source="cli")):
        purge_expired_events(workspace=a, now=START)
    [entry] = purges(a)
    assert entry.changes == {"action": "retention_purge", "events": 2, "delivery_content": 0, "retention_days": 30,
                             "cutoff": (START - timedelta(days=30)).isoformat()}
    assert (entry.workspace_id, entry.source, entry.object_pk) == (a.pk, "cli", str(a.pk))
    assert purges(b) == []


def test_running_twice_deletes_nothing_more(windows):
    a, _ = windows
    assert purge_expired_events(workspace=a, now=START) == 2
    assert purge_expired_events(workspace=a, now=START) == 0
    assert ages(a, START) == [10]
    # Every run is recorded, so an empty run proves the job ran.
    assert [e.changes["events"] for e in purges(a)] == [2, 0]


def test_the_workspace_task_purges_its_own_workspace_as_system(windows):
    a, b = windows
    result = purge_workspace_events.apply(kwargs={"workspace_id": a.pk})
    assert result.successful()
    assert result.result == {"events": 2, "delivery_content": 0}  # real clock: 10 days kept, 40 and 400 gone
    assert ages(a, START) == [10] and ages(b, START) == [10, 40, 400]
    [entry] = purges(a)
    assert entry.source == "system"


def test_the_workspace_task_needs_a_workspace_id(windows):
    result = purge_workspace_events.apply(kwargs={})
    assert result.failed() and isinstance(result.result, TypeError)
    assert Event.unscoped.count() == 6


def test_the_nightly_job_is_in_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["retention-nightly"]
    assert entry["task"] == "compliance.purge_expired" == purge_expired.name
    assert purge_expired.name in celery_app.tasks and purge_workspace_events.name in celery_app.tasks
    route = celery_app.conf.task_routes[0]
    assert route(purge_workspace_events.name, (), {}, {}) == {"queue": "compliance"}


@pytest.fixture
def worker(broker):
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["compliance"], shutdown_timeout=10):
        yield
    connections.close_all()


def wait_for_purges(workspaces, count, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(purges(ws)) >= count for ws in workspaces):
            return
        time.sleep(0.05)
    raise AssertionError(f"retention purges did not finish within {timeout}s")


@pytest.mark.django_db(transaction=True)
def test_nightly_job_on_a_real_worker_purges_every_workspace_and_is_safe_to_repeat(windows, worker, broker):
    a, b = windows
    purge_expired.delay()
    wait_for_purges([a, b], 1)
    assert ages(a, START) == [10]
    assert ages(b, START) == [10, 40]
    [entry_a], [entry_b] = purges(a), purges(b)
    assert (entry_a.source, entry_a.workspace_id, entry_a.changes["events"]) == ("system", a.pk, 2)
    assert (entry_b.source, entry_b.workspace_id, entry_b.changes["events"]) == ("system", b.pk, 1)

    purge_expired.delay()  # e.g. beat fired twice, or a redelivered message
    wait_for_purges([a, b], 2)
    assert [e.changes["events"] for e in purges(a)] == [2, 0]
    assert [e.changes["events"] for e in purges(b)] == [1, 0]
    assert Event.unscoped.count() == 3
    assert broker.llen("compliance") == 0
