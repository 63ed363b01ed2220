"""Celery behaviour with a real worker on the real broker (a Redis database per test process)."""

import time
import uuid
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.db import connections, transaction
from django.utils import timezone

from config.celery import app as celery_app
from core.context import current_actor
from accounts.tasks import WorkspaceTask
from core.tasks import TaskDelayTooLong, _check_delay
from tests.support.factories import ProfileFactory
from profiles.models import Profile


@celery_app.task(base=WorkspaceTask, name="default.tests_record_visible_profiles")
def record_visible_profiles(*, workspace_id, marker):
    actor = current_actor()
    cache.set(f"result:{marker}", {
        "ids": sorted(Profile.objects.values_list("external_id", flat=True)),
        "source": actor.source if actor else None,
    }, 60)


@celery_app.task(name="default.tests_record_backend_pid")
def record_backend_pid(*, marker):
    from django.db import connection

    connection.ensure_connection()
    cache.set(f"result:{marker}", connection.connection.info.backend_pid, 60)


def wait_for(marker, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cache.get(f"result:{marker}")
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"task {marker} did not run within {timeout}s")


@pytest.fixture
def worker(broker):
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["default"], shutdown_timeout=10):
        yield
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_worker_runs_workspace_tasks_inside_their_own_scope(two_tenants, worker):
    a, b = two_tenants
    ProfileFactory(workspace=a.workspace, external_id="a-1")
    ProfileFactory(workspace=b.workspace, external_id="b-1")
    record_visible_profiles.delay(workspace_id=a.workspace.pk, marker="a")
    record_visible_profiles.delay(workspace_id=b.workspace.pk, marker="b")
    assert wait_for("a") == {"ids": ["a-1"], "source": "system"}
    assert wait_for("b") == {"ids": ["b-1"], "source": "system"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_across_tasks(worker):
    """CELERY_DB_REUSE_MAX: without it Celery closes the connections around every task, and each
    task pays a new PostgreSQL connection."""
    for marker in ("first", "second", "third"):
        record_backend_pid.delay(marker=marker)
    assert len({wait_for("first"), wait_for("second"), wait_for("third")}) == 1


def test_a_workspace_task_without_workspace_id_fails():
    result = record_visible_profiles.apply(kwargs={"marker": "none"})
    assert result.failed()
    assert isinstance(result.result, TypeError)
    assert cache.get("result:none") is None


@pytest.mark.django_db(transaction=True)
def test_delay_on_commit_publishes_only_after_commit(tenant_a, broker):
    with transaction.atomic():
        record_visible_profiles.delay_on_commit(workspace_id=tenant_a.workspace.pk, marker="later")
        assert broker.llen("default") == 0
    assert broker.llen("default") == 1


@pytest.mark.django_db(transaction=True)
def test_rolled_back_work_is_never_enqueued(tenant_a, broker):
    with pytest.raises(RuntimeError), transaction.atomic():
        record_visible_profiles.delay_on_commit(workspace_id=tenant_a.workspace.pk, marker="never")
        raise RuntimeError
    assert broker.llen("default") == 0


@pytest.mark.django_db(transaction=True)
def test_message_redelivered_after_too_many_lost_workers_is_dropped(tenant_a, worker, settings):
    task_id = str(uuid.uuid4())
    # What a worker killed mid-task leaves behind, ULAK_TASK_MAX_DELIVERIES times over.
    cache.set(f"task-deliveries:{task_id}", settings.ULAK_TASK_MAX_DELIVERIES, 60)
    record_visible_profiles.apply_async(kwargs={"workspace_id": tenant_a.workspace.pk, "marker": "poison"},
                                        task_id=task_id)
    record_visible_profiles.delay(workspace_id=tenant_a.workspace.pk, marker="after")
    wait_for("after")  # the solo worker handles messages in order, so the first one is done
    assert cache.get("result:poison") is None
    assert cache.get(f"task-deliveries:{task_id}") is None


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_below_the_cap_runs_and_clears_its_count(tenant_a, worker):
    task_id = str(uuid.uuid4())
    cache.set(f"task-deliveries:{task_id}", 1, 60)
    record_visible_profiles.apply_async(kwargs={"workspace_id": tenant_a.workspace.pk, "marker": "second"},
                                        task_id=task_id)
    assert wait_for("second")["source"] == "system"
    assert cache.get(f"task-deliveries:{task_id}") is None


def test_long_countdowns_and_etas_are_refused(settings):
    limit = settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS
    with pytest.raises(TaskDelayTooLong):
        record_visible_profiles.apply_async(kwargs={"workspace_id": 1, "marker": "x"}, countdown=limit + 1)
    with pytest.raises(TaskDelayTooLong):
        record_visible_profiles.apply_async(kwargs={"workspace_id": 1, "marker": "x"},
                                            eta=timezone.now() + timedelta(hours=2))
    _check_delay({"countdown": limit, "eta": timezone.now() + timedelta(seconds=limit - 5)})  # allowed


def test_queues_and_delivery_settings():
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    names = {q.name for q in conf.task_queues}
    assert {"ingest", "segments", "journeys", "email", "sms", "whatsapp", "push", "in_app", "webhooks",
            "compliance"} <= names
    route = conf.task_routes[0]
    assert route("email.send_delivery", (), {}, {}) == {"queue": "email"}
    assert route("unknown.thing", (), {}, {}) is None
