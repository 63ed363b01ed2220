"""Delivery metrics reported through the Track API (v1 /metrics, /push/events, v2 delivery)."""

import pytest

from channels.deliveries import queue_delivery
from channels.models import DeliveryEvent, DeliveryStatus
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from profiles.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(tenant_a):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="push", provider="fcm", is_default=True)
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="u1")
    delivery, _ = queue_delivery(tenant_a.workspace, channel="push", source="transactional", profile=person,
                                 content={"title": "Hi"})
    delivery.status = DeliveryStatus.SENT
    delivery.save(update_fields=["status"])
    return delivery


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


def test_v1_metrics_record_the_event_on_the_delivery_and_the_person(track, tenant_a, delivery, process):
    body = {"delivery_id": delivery.public_id, "metric": "clicked", "href": "https://shop.test/x",
            "timestamp": 1700000000}
    assert track.post("/api/v1/metrics", body, format="json").status_code == 200
    process(tenant_a)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.CLICKED
    event = DeliveryEvent.unscoped.get(delivery=delivery, kind="clicked")
    assert event.data == {"source": "track_api", "href": "https://shop.test/x"}
    assert int(event.at.timestamp()) == 1700000000
    assert Event.unscoped.filter(name="push_clicked", profile=delivery.profile).exists()


def test_legacy_push_events_and_v2_delivery_operations(track, tenant_a, delivery, process):
    assert track.post("/push/events", {"delivery_id": delivery.public_id, "event": "delivered",
                                       "device_id": "tok"}, format="json").status_code == 200
    v2 = {"type": "delivery", "action": "event", "identifiers": {"id": delivery.public_id}, "name": "opened"}
    assert track.post("/api/v2/entity", v2, format="json").status_code == 200
    process(tenant_a)
    delivery.refresh_from_db()
    assert kinds(delivery)[-2:] == ["delivered", "opened"]
    assert delivery.status == DeliveryStatus.OPENED


@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/metrics", {"delivery_id": "x", "metric": "exploded"}, "metric"),
    ("/api/v1/metrics", {"metric": "opened"}, "delivery_id"),
    ("/push/events", {"delivery_id": "x", "event": "clicked"}, "event"),
    ("/api/v2/entity", {"type": "delivery", "action": "event", "identifiers": {"id": "x"}, "name": "bounced"}, "name"),
    ("/api/v2/entity", {"type": "delivery", "action": "opened", "identifiers": {"id": "x"}}, "action"),
])
def test_bad_metrics_are_refused_naming_the_field(track, tenant_a, path, body, field, process):
    response = track.post(path, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["meta"]["error"]
    process(tenant_a)
    assert not DeliveryEvent.unscoped.exclude(kind="queued").exists()


def test_another_workspaces_delivery_id_is_ignored(track_b, tenant_b, delivery, process):
    assert track_b.post("/api/v1/metrics", {"delivery_id": delivery.public_id, "metric": "opened"},
                        format="json").status_code == 200
    process(tenant_b)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert kinds(delivery) == ["queued"]
