"""/metrics: Prometheus text format, ingest gauges and the delivery backlog read at scrape time, delivery
events and hand-off times counted in Redis, only for allowed addresses."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from channels import batching, metrics
from channels.deliveries import queue_delivery
from channels.models import ChannelConfig
from channels.sending import deliver
from core.context import workspace_scope

from profiles.ingest.dead_letters import discard_dead_letter, replay_dead_letter
from profiles.ingest.store import stage_operations
from tests.support.dead_letters import failing_op, make_dead_letters
from tests.support.factories import ChannelConfigFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def samples(response) -> dict:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def dead(state):
    return ("ulak_ingest_dead_letters", (("state", state),))


STAGED = ("ulak_ingest_staged_operations", ())


def test_the_gauges_are_totals_over_every_workspace_in_the_text_format(two_tenants, failing,
                                                                       django_assert_num_queries):
    tenant_a, tenant_b = two_tenants
    a1, a2, a3, _ = make_dead_letters(tenant_a.workspace, *(failing_op(n) for n in range(4)))
    make_dead_letters(tenant_b.workspace, failing_op(9))
    replay_dead_letter(dead_letter=a1)  # staged again: one operation in the backlog
    discard_dead_letter(dead_letter=a2)
    discard_dead_letter(dead_letter=a3)
    stage_operations(workspace=tenant_b.workspace, operations=[{"op": "identify", "person": {"id": "x"}}] * 2,
                     source="test")

    with django_assert_num_queries(3):  # dead letters by state, the staged count, the delivery backlog
        response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    text = response.content.decode()
    assert "# TYPE ulak_ingest_dead_letters gauge" in text and "# TYPE ulak_ingest_staged_operations gauge" in text
    values = samples(response)
    assert values[dead("dead")] == 2  # one in A, one in B
    assert values[dead("replayed")] == 1 and values[dead("discarded")] == 2
    assert values[STAGED] == 3
    assert "workspace" not in text


def test_states_without_dead_letters_read_zero(db):
    values = samples(Client().get("/metrics"))
    ingest = {key: value for key, value in values.items() if key[0].startswith("ulak_ingest")}
    assert ingest == {dead("dead"): 0, dead("replayed"): 0, dead("discarded"): 0, STAGED: 0}
    backlog = {key: value for key, value in values.items() if key[0] == "ulak_deliveries_pending"}
    assert len(backlog) == 12 and set(backlog.values()) == {0}  # six channels × queued, sending
    assert not [key for key in values if key[0].startswith("ulak_delivery_")]  # nothing counted yet


# --- deliveries -----------------------------------------------------------------------------------

def _inbox(tenant):
    return ChannelConfigFactory(workspace=tenant.workspace, type="in_app", provider="inbox", is_default=True)


def _queue(tenant, config, source, count, **kwargs):
    return [queue_delivery(tenant.workspace, channel="in_app", source=source, channel_config=config,
                           profile=ProfileFactory(workspace=tenant.workspace), content={"body": "Hi"}, **kwargs)[0]
            for _ in range(count)]


@pytest.mark.django_db(transaction=True)  # counted on commit
def test_delivery_events_handoff_times_and_the_backlog_of_both_paths(two_tenants):
    a, b = two_tenants
    inbox_a, inbox_b = _inbox(a), _inbox(b)
    _queue(a, inbox_a, "broadcast", 3)
    [receipt] = _queue(b, inbox_b, "transactional", 1)
    _queue(a, inbox_a, "transactional", 2, send_at=timezone.now() + timedelta(hours=1))  # waiting
    with workspace_scope(a.workspace):
        assert batching.send_batch(a.workspace, ChannelConfig.unscoped.get(pk=inbox_a.pk), "t").sent == 3
    with workspace_scope(b.workspace):
        assert deliver(receipt.pk).result == "sent"
    metrics.flush()
    values = samples(Client().get("/metrics"))
    events = {labels: value for (name, labels), value in values.items() if name == "ulak_delivery_events_total"}
    assert events == {(("channel", "in_app"), ("kind", "queued")): 6, (("channel", "in_app"), ("kind", "sent")): 4,
                      (("channel", "in_app"), ("kind", "delivered")): 4}
    handoff = {(name, labels): value for (name, labels), value in values.items()
               if name.startswith("ulak_delivery_handoff_seconds")}
    assert handoff[("ulak_delivery_handoff_seconds_count", (("channel", "in_app"),))] == 4
    assert handoff[("ulak_delivery_handoff_seconds_bucket", (("channel", "in_app"), ("le", "+Inf")))] == 4
    assert handoff[("ulak_delivery_handoff_seconds_bucket", (("channel", "in_app"), ("le", "60")))] == 4
    assert 0 <= handoff[("ulak_delivery_handoff_seconds_sum", (("channel", "in_app"),))] < 240
    assert values[("ulak_deliveries_pending", (("channel", "in_app"), ("status", "queued")))] == 2
    assert values[("ulak_deliveries_pending", (("channel", "email"), ("status", "queued")))] == 0


@pytest.mark.django_db(transaction=True)  # counted on commit
def test_a_scheduled_send_counts_its_handoff_from_when_it_was_due(tenant_a):
    inbox = _inbox(tenant_a)
    [later] = _queue(tenant_a, inbox, "transactional", 1, send_at=timezone.now() + timedelta(minutes=10))
    with time_machine.travel(timezone.now() + timedelta(minutes=10, seconds=3)), workspace_scope(tenant_a.workspace):
        assert deliver(later.pk).result == "sent"
    metrics.flush()
    [(counts, total)] = metrics.handoff_histograms().values()
    assert sum(counts) == 1 and 2 <= total < 60  # from its send_at, not from its creation 10 minutes before


@pytest.mark.django_db(transaction=True)  # counted on commit
def test_events_rolled_back_are_not_counted(tenant_a):
    inbox = _inbox(tenant_a)
    with pytest.raises(RuntimeError), transaction.atomic():
        _queue(tenant_a, inbox, "broadcast", 2)
        raise RuntimeError("rolled back")
    _queue(tenant_a, inbox, "broadcast", 1)
    metrics.flush()
    assert metrics.event_counts() == {("in_app", "queued"): 1}


def test_openmetrics_when_the_scraper_asks(db):
    response = Client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_allowed_by_default(db, remote_addr):
    assert Client(REMOTE_ADDR=remote_addr).get("/metrics").status_code == 200


@pytest.mark.parametrize("remote_addr", ["10.0.0.5", "127.0.0.2", "192.168.1.10", "2001:db8::1", "", "not-an-ip"])
def test_other_addresses_get_a_404(db, remote_addr):
    response = Client(REMOTE_ADDR=remote_addr).get("/metrics")
    assert response.status_code == 404
    assert response.json()["meta"]["error"]
    assert b"ulak_ingest" not in response.content


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_a_request_through_a_proxy_is_refused_even_from_loopback(db, header):
    assert Client(REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}).get("/metrics").status_code == 404


def test_the_allowlist_is_configurable(db, settings):
    settings.ULAK_METRICS_ALLOWLIST = ["10.0.0.0/8", "2001:db8::/32"]
    assert Client(REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    settings.ULAK_METRICS_ALLOWLIST = []
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_a_bad_allowlist_entry_is_a_configuration_error(db, settings):
    settings.ULAK_METRICS_ALLOWLIST = ["127.0.0.1/33"]
    with pytest.raises(ImproperlyConfigured, match="ULAK_METRICS_ALLOWLIST"):
        Client(raise_request_exception=True).get("/metrics")


def test_only_get(db):
    assert Client().post("/metrics").status_code == 405
