"""A worker killed around the provider call: the person gets the message exactly once (or, when
the call may have happened, at most once), never twice. Real worker processes on the real broker,
a real SMTP server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer
from tests.helpers import stop_worker, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _crashing_worker(point: str, marker: Path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    command = [sys.executable, "-m", "tests.channels.crashing_worker", point, str(marker),
               "-A", "config", "worker", "-Q", "email", "--pool", "prefork", "--concurrency", "1",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _send_through_crashing_worker(tenant, point, tmp_path):
    marker = tmp_path / "die-once"
    marker.write_text("1")
    with FakeSmtpServer() as smtp:
        ChannelConfigFactory(workspace=tenant.workspace, type="email", provider="smtp", sender="shop@example.test",
                             is_default=True, settings={"host": "127.0.0.1", "port": smtp.port})
        person = ProfileFactory(workspace=tenant.workspace, email="ada@example.test")
        worker = _crashing_worker(point, marker)
        try:
            delivery, _ = queue_delivery(tenant.workspace, channel="email", source="transactional", profile=person,
                                         content={"subject": "Receipt", "body": "<p>Thanks</p>"})
            finished = wait_until(lambda: Delivery.unscoped.get(pk=delivery.pk).status not in (
                DeliveryStatus.QUEUED, DeliveryStatus.SENDING), timeout=60)
            assert finished, f"delivery still {Delivery.unscoped.get(pk=delivery.pk).status}"
        finally:
            stop_worker(worker)
        connections.close_all()
        assert not marker.exists(), "the worker never reached the crash point"
        delivery.refresh_from_db()
        return delivery, list(smtp.messages)


@pytest.mark.django_db(transaction=True)
def test_worker_killed_between_claim_and_send_sends_exactly_once(tenant_a, broker, tmp_path):
    delivery, messages = _send_through_crashing_worker(tenant_a, "render", tmp_path)
    assert len(messages) == 1, (delivery.status, delivery.failure_reason, list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", "data")))
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 2
    assert messages[0][2]["Subject"] == "Receipt"


@pytest.mark.django_db(transaction=True)
def test_worker_killed_after_the_provider_accepted_never_sends_again(tenant_a, broker, tmp_path):
    delivery, messages = _send_through_crashing_worker(tenant_a, "data", tmp_path)
    assert len(messages) == 1
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason.startswith("outcome unknown")
