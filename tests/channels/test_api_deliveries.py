"""App API deliveries: GET /v1/deliveries/{id} with its events, the filtered list with cursor
paging in a constant number of queries, and Customer.io's /v1/messages view of the same rows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.services import create_transactional_message
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import Delivery
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.helpers import app_client_with_scopes, warm

pytestmark = pytest.mark.django_db

D = "/v1/deliveries"


@pytest.fixture
def setup(tenant_a):
    ws = tenant_a.workspace
    ChannelConfigFactory(workspace=ws, type="email", provider="smtp", name="Mail", is_default=True)
    ChannelConfigFactory(workspace=ws, type="in_app", provider="inbox", name="Inbox")
    ada = ProfileFactory(workspace=ws, external_id="ada", email="ada@example.com")
    bob = ProfileFactory(workspace=ws, external_id="bob", email="bob@example.com")
    message = create_transactional_message(workspace=ws, name="receipt", channel="email", subject="s", body="b")
    return {"ada": ada, "bob": bob, "message": message}


def queue(tenant, person, channel="email", source="transactional", **kwargs):
    delivery, _ = queue_delivery(tenant.workspace, channel=channel, source=source, profile=person,
                                 content={"body": "x"}, **kwargs)
    return delivery


def test_one_delivery_with_its_events(tenant_a, setup):
    delivery = queue(tenant_a, setup["ada"], message_content=setup["message"].content, source_id=str(setup["message"].pk))
    delivery.subject, delivery.body = "Receipt", "<p>Thanks</p>"
    delivery.save(update_fields=["subject", "body"])
    record_delivery_event(delivery, "sent", data={"message_id": "<m1>"})
    record_delivery_event(delivery, "opened")
    response = tenant_a.app_client().get(f"{D}/{delivery.public_id}")
    assert response.status_code == 200, response.content
    body = response.json()["delivery"]
    assert body["id"] == delivery.public_id and body["status"] == "opened" and body["channel"] == "email"
    assert body["source"] == "transactional" and body["transactional_message_id"] == setup["message"].pk
    assert body["customer"] == {"id": "ada", "email": "ada@example.com", "cio_id": setup["ada"].cio_id}
    assert body["recipient"] == "ada@example.com" and body["failure_reason"] is None
    assert body["sent_at"] and body["opened_at"] and body["created_at"] and body["delivered_at"] is None
    assert [event["kind"] for event in body["events"]] == ["queued", "sent", "opened"]
    assert body["events"][1]["data"] == {"message_id": "<m1>"} and isinstance(body["events"][1]["at"], int)
    assert body["content"]["subject"] == "Receipt"

    failed = queue(tenant_a, setup["bob"], retain_content=False)
    record_delivery_event(failed, "failed", data={"reason": "recipient refused"})
    body = tenant_a.app_client().get(f"{D}/{failed.public_id}/").json()["delivery"]
    assert body["status"] == "failed" and body["failure_reason"] == "recipient refused" and body["content"] is None


def test_unknown_and_another_workspace_delivery_is_not_found(two_tenants, setup):
    tenant_a, tenant_b = two_tenants
    delivery = queue(tenant_a, setup["ada"])
    for client, path in ((tenant_b.app_client(), f"{D}/{delivery.public_id}"),
                         (tenant_b.app_client(), f"/v1/messages/{delivery.public_id}"),
                         (tenant_a.app_client(), f"{D}/nope")):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["meta"]["error"]
    assert tenant_b.app_client().get(D).json() == {"deliveries": [], "next": ""}


def test_filters(tenant_a, setup):
    ada, bob, message = setup["ada"], setup["bob"], setup["message"]
    receipt = queue(tenant_a, ada, message_content=message.content, source_id=str(message.pk))
    campaign = queue(tenant_a, bob, source="campaign", source_id="9")
    in_app = queue(tenant_a, ada, channel="in_app", source="campaign")
    record_delivery_event(campaign, "sent")
    old = timezone.now() - timedelta(days=10)
    Delivery.unscoped.filter(pk=receipt.pk).update(created_at=old)
    client = tenant_a.app_client()

    def ids(**params):
        response = client.get(D, params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["deliveries"]]

    assert ids() == [in_app.public_id, campaign.public_id, receipt.public_id]  # newest first
    assert ids(status="sent") == [campaign.public_id]
    assert ids(channel="in_app") == [in_app.public_id]
    assert ids(source="transactional") == [receipt.public_id]
    assert ids(transactional_message_id=message.pk) == [receipt.public_id]
    assert ids(customer_id="ada") == [in_app.public_id, receipt.public_id]
    assert ids(email="BOB@example.com") == [campaign.public_id]
    assert ids(cio_id=ada.cio_id) == [in_app.public_id, receipt.public_id]
    assert ids(created_before=(old + timedelta(days=1)).isoformat()) == [receipt.public_id]
    assert ids(created_after=int((old + timedelta(days=1)).timestamp())) == [in_app.public_id, campaign.public_id]
    assert ids(created_after=old.date().isoformat(), created_before=old.date().isoformat()) == [receipt.public_id]
    assert ids(customer_id="nobody") == []


@pytest.mark.parametrize("params, field", [
    ({"status": "lost"}, "status"),
    ({"channel": "fax"}, "channel"),
    ({"source": "magic"}, "source"),
    ({"transactional_message_id": "abc"}, "transactional_message_id"),
    ({"transactional_message_id": "99999999999999999999"}, "transactional_message_id"),
    ({"customer_id": "a", "email": "a@example.com"}, "email"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2024-13-01"}, "created_before"),
    ({"created_after": "2024-02-01", "created_before": "2024-01-01"}, "created_before"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"start": "not-a-cursor"}, "start"),
])
def test_bad_filters_name_the_parameter(tenant_a, setup, params, field):
    response = tenant_a.app_client().get(D, params)
    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_paging_in_constant_queries(tenant_a, setup, django_assert_max_num_queries):
    created = [queue(tenant_a, setup["ada"] if i % 2 else setup["bob"]) for i in range(7)]
    client = warm(tenant_a.app_client())
    seen, cursor = [], None
    while True:
        with django_assert_max_num_queries(2):
            page = client.get(D, {"limit": 3, **({"start": cursor} if cursor else {})}).json()
        seen += [row["id"] for row in page["deliveries"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == [d.public_id for d in reversed(created)]
    with django_assert_max_num_queries(2):
        assert len(client.get("/v1/messages", {"limit": 50}).json()["messages"]) == 7
    with django_assert_max_num_queries(3):  # the delivery, then its events
        assert client.get(f"{D}/{created[0].public_id}").status_code == 200


def test_customerio_messages_view(tenant_a, setup):
    delivery = queue(tenant_a, setup["ada"], message_content=setup["message"].content, source_id=str(setup["message"].pk))
    delivery.subject = "Receipt"
    delivery.save(update_fields=["subject"])
    record_delivery_event(delivery, "sent")
    record_delivery_event(delivery, "delivered")
    bounced = queue(tenant_a, setup["bob"], channel="in_app", source="campaign", source_id="12")
    record_delivery_event(bounced, "bounced", data={"reason": "mailbox full"})
    client = tenant_a.app_client()
    message = client.get(f"/v1/messages/{delivery.public_id}").json()["message"]
    assert message["id"] == delivery.public_id and message["type"] == "email"
    assert message["customer_id"] == "ada" and message["customer_identifiers"]["email"] == "ada@example.com"
    assert message["transactional_message_id"] == setup["message"].pk == message["message_template_id"]
    assert set(message["metrics"]) == {"sent", "delivered"} and message["subject"] == "Receipt"
    assert message["created"] == int(delivery.created_at.timestamp()) and message["forgotten"] is False
    listed = client.get("/v1/messages", {"type": "in_app"}).json()
    assert [m["id"] for m in listed["messages"]] == [bounced.public_id] and listed["next"] == ""
    only = listed["messages"][0]
    assert only["campaign_id"] == 12 and "bounced" in only["metrics"] and only["failure_message"] == "mailbox full"


def test_scopes(tenant_a, setup):
    delivery = queue(tenant_a, setup["ada"])
    client = app_client_with_scopes(tenant_a, "write")
    for path in (D, f"{D}/{delivery.public_id}", "/v1/messages", f"/v1/messages/{delivery.public_id}"):
        response = client.get(path)
        assert response.status_code == 403 and response.json()["meta"]["error"]
    assert app_client_with_scopes(tenant_a, "read").get(D).status_code == 200
