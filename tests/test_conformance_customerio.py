"""The real `customerio` Track client against a live Ulak: every method, checked in the database.

Only `base_url` changes, as a team switching from Customer.io would configure it.
"""

from datetime import UTC, datetime

import pytest
from customerio import CustomerIO, CustomerIOException

from compliance.deletion import run_deletion
from compliance.models import DeletionRecord
from profiles.ingest.processor import process_pending
from profiles.models import Profile


@pytest.fixture
def cio(live_server, tenant_a):
    client = CustomerIO(tenant_a.site_id, tenant_a.track_key, retries=0)
    client.base_url = f"{live_server.url}/api/v1"
    yield client
    client.close()  # a kept-alive connection would hold the live server's database session open


def applied(tenant):
    """What the ingest and compliance workers do: apply staged operations, run requested deletions."""
    process_pending(tenant.workspace)
    for record in DeletionRecord.unscoped.filter(workspace=tenant.workspace).exclude(status="completed"):
        run_deletion(record)


def attributes(tenant, person_id):
    response = tenant.app_client().get(f"/v1/customers/{person_id}/attributes")
    assert response.status_code == 200, response.content
    return response.json()["customer"]


def test_every_track_method(cio, tenant_a):
    cio.identify(id="ada/1@example.com", email="ada@example.com", plan="pro", created_at=datetime(2024, 1, 2, tzinfo=UTC))
    cio.track(customer_id="ada/1@example.com", name="purchase", data={"total": 42}, id="order-1")
    cio.track(customer_id="ada/1@example.com", name="purchase", data={"total": 42}, id="order-1")  # dedupe
    cio.pageview(customer_id="ada/1@example.com", page="/pricing", referrer="ads")
    cio.backfill(customer_id="ada/1@example.com", name="signed_up", timestamp=datetime(2023, 5, 1, tzinfo=UTC),
                 source="import")
    cio.track_anonymous(anonymous_id="anon-7", name="viewed", data={"page": "/"})
    cio.identify(id="ada/1@example.com", anonymous_id="anon-7")
    cio.add_device(customer_id="ada/1@example.com", device_id="tok-1", platform="ios", last_used=1700000000)
    cio.add_device(customer_id="ada/1@example.com", device_id="tok-2", platform="android")
    cio.delete_device(customer_id="ada/1@example.com", device_id="tok-2")
    cio.identify(id="bob", email="bob@example.com", color="blue")
    cio.track(customer_id="bob", name="opened")
    cio.merge_customers(primary_id_type="id", primary_id="ada/1@example.com",
                        secondary_id_type="email", secondary_id="bob@example.com")
    cio.suppress(customer_id="ada/1@example.com")
    cio.unsuppress(customer_id="ada/1@example.com")
    cio.identify(id="carol", plan="free")
    cio.delete(customer_id="carol")
    applied(tenant_a)

    customer = attributes(tenant_a, "ada%2F1%40example.com")
    assert customer["identifiers"]["id"] == "ada/1@example.com"
    assert customer["identifiers"]["email"] == "ada@example.com"
    assert {k: customer["attributes"][k] for k in ("plan", "created_at", "color")} == {
        "plan": "pro", "created_at": 1704153600, "color": "blue"}
    assert [(d["id"], d["platform"]) for d in customer["devices"]] == [("tok-1", "ios")]
    activities = tenant_a.app_client().get("/v1/customers/ada%2F1%40example.com/activities?limit=50").json()
    by_name = {a["name"]: a for a in activities["activities"]}
    assert sorted(by_name) == ["/pricing", "opened", "purchase", "signed_up", "viewed"]
    assert len(activities["activities"]) == 5  # the duplicate order-1 was stored once
    assert by_name["signed_up"]["timestamp"] == int(datetime(2023, 5, 1, tzinfo=UTC).timestamp())
    assert by_name["/pricing"]["type"] == "page" and by_name["purchase"]["data"] == {"total": 42}
    for gone in ("bob", "carol"):
        assert tenant_a.app_client().get(f"/v1/customers/{gone}/attributes").status_code == 404
    assert not Profile.unscoped.get(workspace=tenant_a.workspace).suppressed


def test_errors_reach_the_client(cio, live_server):
    bad = CustomerIO(cio.site_id, "0" * 40, retries=0)
    bad.base_url = cio.base_url
    with pytest.raises(CustomerIOException, match="401"):
        bad.identify(id="x")
    with pytest.raises(CustomerIOException, match="400"):
        cio.identify(id="x", email="not-an-email")
    bad.close()
