"""A worker killed in the middle of a batch of campaign deliveries: every message arrives at most
once, every message whose provider call had not started arrives exactly once, and the rest (at
most one sub-batch) fail as "outcome unknown". A delivery that kills every worker that takes it
does not use up its batch-mates' attempts. Real worker processes on the real broker, a real SMTP
server (tests/channels/crashing_worker.py)."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from tests.helpers import stop_worker, wait_until
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer

ROOT = Path(__file__).resolve().parents[2]
SUB_BATCH = 10

pytestmark = pytest.mark.django_db(transaction=True)


def _worker(point: str, marker: Path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "ULAK_SEND_BATCH_SIZE": "100",
        "ULAK_SEND_SUB_BATCH_SIZE": str(SUB_BATCH),
    }
    command = [sys.executable, "-m", "tests.channels.crashing_worker", point, str(marker),
               "-A", "config", "worker", "-Q", "email", "--pool", "prefork", "--concurrency", "1",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _queue_campaign(tenant, config, bodies: list[str]) -> list[Delivery]:
    """Queue the deliveries in one transaction: on commit, one batch task for all of them."""
    people = [ProfileFactory(workspace=tenant.workspace, email=f"p{n}@example.test") for n in range(len(bodies))]
    with transaction.atomic():
        return [queue_delivery(tenant.workspace, channel="email", source="campaign", profile=person, source_id="7",
                               channel_config=config, content={"subject": "News", "body": body})[0]
                for person, body in zip(people, bodies)]


def _settled(deliveries, *, but=()) -> bool:
    return not Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries if d.pk not in but],
                                        status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]).exists()


def test_a_worker_killed_in_a_batch_of_100_sends_nothing_twice_and_everything_not_started_once(
        tenant_a, broker, tmp_path):
    marker = tmp_path / "die-once"
    marker.write_text("1")
    with FakeSmtpServer() as smtp:
        config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp",
                                      sender="news@acme.test", is_default=True,
                                      settings={"host": "127.0.0.1", "port": smtp.port})
        worker = _worker("data:37", marker)  # dies right after the server accepted the 37th message
        try:
            deliveries = _queue_campaign(tenant_a, config, ["Hello {{ customer.email }}"] * 100)
            assert wait_until(lambda: _settled(deliveries), timeout=120), Counter(
                Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("status", flat=True))
        finally:
            stop_worker(worker)
        connections.close_all()
        arrived = Counter(recipient for _, recipients, _ in smtp.messages for recipient in recipients)
    assert not marker.exists(), "the worker never reached the crash point"
    rows = {row.recipient: row for row in Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])}
    # At most once: no message arrived twice.
    assert arrived and max(arrived.values()) == 1
    sent = {address for address, row in rows.items() if row.status == DeliveryStatus.SENT}
    unknown = {address for address, row in rows.items() if row.status == DeliveryStatus.FAILED}
    assert sent | unknown == set(rows), Counter(row.status for row in rows.values())
    # Every delivery recorded sent arrived, exactly once; the rest failed as "outcome unknown":
    # their provider calls had started when the worker died, at most one sub-batch of them.
    assert sent <= set(arrived)
    assert 0 < len(unknown) <= SUB_BATCH
    assert {rows[address].failure_reason.split(":")[0] for address in unknown} == {"outcome unknown"}
    assert set(arrived) - sent <= unknown  # some of the started ones had reached the server
    assert 37 <= len(arrived) and len(sent) >= 100 - SUB_BATCH
    # Those claimed by the killed batch but not started were taken back one at a time by the
    # redelivered task and sent: claimed twice, sent once.
    again = {address for address in sent if rows[address].attempts == 2}
    assert again and {rows[address].attempts for address in sent - again} == {1}
    for row in rows.values():
        events = list(DeliveryEvent.unscoped.filter(delivery=row).values_list("kind", flat=True))
        assert events == (["queued", "sent"] if row.recipient in sent else ["queued", "failed"])


def test_a_delivery_that_kills_every_worker_does_not_use_up_its_batch_mates_attempts(tenant_a, broker, tmp_path):
    with FakeSmtpServer() as smtp:
        config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp",
                                      sender="news@acme.test", is_default=True,
                                      settings={"host": "127.0.0.1", "port": smtp.port})
        worker = _worker("poison:POISON", tmp_path / "unused")
        try:
            bodies = ["Hello"] * 12
            bodies[3] = "Hello POISON"
            deliveries = _queue_campaign(tenant_a, config, bodies)
            poison = deliveries[3]
            assert wait_until(lambda: _settled(deliveries, but={poison.pk}), timeout=120), list(
                Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("status", "attempts"))
        finally:
            stop_worker(worker)
        connections.close_all()
        arrived = Counter(recipient for _, recipients, _ in smtp.messages for recipient in recipients)
    mates = Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries if d.pk != poison.pk])
    assert set(mates.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert sorted(arrived) == sorted(mates.values_list("recipient", flat=True)) and set(arrived.values()) == {1}
    # Each was claimed by the batch and once more alone after the first crash, never again.
    assert set(mates.values_list("attempts", flat=True)) == {2}
    poison.refresh_from_db()
    assert poison.recipient not in arrived and poison.attempts >= 2
