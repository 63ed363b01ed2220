"""The real `segment-analytics-python` client against a live Ulak: every method, checked after processing.

Only `host` changes, as a team moving from Segment would configure it.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from segment.analytics import Client
from segment.analytics import request as segment_request
from segment.analytics.request import APIError

from profiles.ingest.processor import process_pending
from profiles.models import InboundOperation


@pytest.fixture
def segment(live_server, tenant_a):
    """Clients for the tenant's write key; `errors` collects the HTTP status of each failure reported
    through on_error."""
    errors, clients = [], []

    def make(write_key=tenant_a.cdp_key, **options):
        client = Client(write_key, host=f"{live_server.url}/cdp", max_retries=0,
                        on_error=lambda error, batch: errors.append(getattr(error, "status", repr(error))), **options)
        clients.append(client)
        return client

    make.errors = errors
    yield make
    for client in clients:
        if not client.sync_mode:
            client.shutdown()
    close_pooled_connections(segment_request._session)


def close_pooled_connections(session):
    """The client keeps one module-wide session. A kept-alive connection would hold a live-server
    thread and its database session open, and urllib3's `clear()` drops pools without closing them."""
    for adapter in session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            pools[key].close()
    session.close()


def app_get(live_server, tenant, path):
    response = requests.get(f"{live_server.url}{path}", headers={"Authorization": f"Bearer {tenant.app_key}"},
                            timeout=10)
    assert response.status_code == 200, response.content
    return response.json()


def send_every_method(client):
    client.track(anonymous_id="anon-1", event="Viewed Product", properties={"sku": "A1"})
    client.page(anonymous_id="anon-1", category="Docs", name="Pricing", properties={"url": "https://shop.test/pricing"})
    client.identify("u1", {"email": "Ada@Example.com", "plan": "pro", "created_at": datetime(2024, 1, 2, tzinfo=UTC)},
                    anonymous_id="anon-1")
    client.track("u1", "Order Completed", {"total": Decimal("42.5")}, message_id="order-1")
    client.track("u1", "Order Completed", {"total": Decimal("42.5")}, message_id="order-1")  # a retry: stored once
    client.screen("u1", name="Home", properties={"tab": "feed"})
    client.group("u1", "acme", {"name": "Acme", "object_type_id": "2"})
    client.identify(anonymous_id="anon-2", traits={"color": "blue"})
    client.alias("anon-2", "u1")


@pytest.mark.parametrize("options", [{"sync_mode": True, "gzip": True}, {"sync_mode": False}],
                         ids=["sync-gzip", "batched"])
def test_every_method(segment, live_server, tenant_a, options):
    client = segment(**options)
    send_every_method(client)
    if not client.sync_mode:
        client.flush()
    assert segment.errors == []
    assert InboundOperation.unscoped.filter(workspace=tenant_a.workspace, source="cdp").count() == 9
    process_pending(tenant_a.workspace)

    assert app_get(live_server, tenant_a, "/v1/workspace")["site_id"] == tenant_a.site_id
    customer = app_get(live_server, tenant_a, "/v1/customers/u1/attributes")["customer"]
    assert customer["identifiers"]["email"] == "ada@example.com"
    assert {k: customer["attributes"][k] for k in ("plan", "created_at", "color")} == {
        "plan": "pro", "created_at": 1704153600, "color": "blue"}
    activities = app_get(live_server, tenant_a, "/v1/customers/u1/activities?limit=50")["activities"]
    assert sorted((a["type"], a["name"]) for a in activities) == [
        ("event", "Order Completed"), ("event", "Viewed Product"), ("page", "https://shop.test/pricing"),
        ("screen", "Home")]
    assert next(a for a in activities if a["name"] == "Order Completed")["data"] == {"total": 42.5}
    related = app_get(live_server, tenant_a, "/v1/objects/2/acme/relationships")["cio_relationships"]
    assert [r["identifiers"]["id"] for r in related] == ["u1"]
    assert app_get(live_server, tenant_a, "/v1/objects/2/acme")["object"]["attributes"] == {"name": "Acme"}


def test_errors_reach_the_client(segment, tenant_a):
    with pytest.raises(APIError) as wrong_key:
        segment(write_key=tenant_a.track_key, sync_mode=True).track("u1", "Clicked")
    assert wrong_key.value.status == 401

    batched = segment()
    batched.identify("u1", {"phone": "0555"})
    batched.flush()
    assert segment.errors == [400]
    assert InboundOperation.unscoped.count() == 0
