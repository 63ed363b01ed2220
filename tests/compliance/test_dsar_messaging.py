"""Data subject export of messaging data: deliveries with their events, inbound messages, the
consent ledger, current preferences and suppressions of the person's addresses."""

import json

import pytest
from django.utils import timezone

from channels.consent import record_consent, suppress
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import Delivery, DeliveryEvent, InboundMessage, SubscriptionTopic
from tests.compliance import test_dsar
from tests.compliance.test_dsar import bundle_of, compliance_client, export, queries_to_export
from tests.support.factories import ChannelConfigFactory, ProfileFactory

ann, bystanders = test_dsar.ann, test_dsar.bystanders  # fixtures: a person built through Track, and others


def configs(workspace):
    email = ChannelConfigFactory(workspace=workspace, type="email", provider="smtp", is_default=True)
    sms = ChannelConfigFactory(workspace=workspace, type="sms", provider="twilio", is_default=True)
    return email, sms


def rendered(delivery, subject):
    Delivery.unscoped.filter(pk=delivery.pk).update(subject=subject, body=f"<p>{subject}</p>",
                                                    body_plain=subject, rendered_payload={"subject": subject})
    delivery.refresh_from_db()
    return delivery


@pytest.fixture
def messaging(tenant_a, tenant_b, ann, bystanders):
    """Ann's messaging history, Bob's in the same workspace, and her namesake's in another."""
    bob, namesake = bystanders
    ws = tenant_a.workspace
    _, sms = configs(ws)
    configs(tenant_b.workspace)
    welcome, _ = queue_delivery(ws, channel="email", source="transactional", profile=ann,
                                message_data={"trigger": {"coupon": "coupon-ann"}})
    welcome = rendered(welcome, "Welcome Ann")
    record_delivery_event(welcome, "sent")
    record_delivery_event(welcome, "opened", data={"user_agent": "ua-ann"})
    bare, _ = queue_delivery(ws, channel="email", source="transactional", recipient="ANN@example.com")
    rendered(bare, "To the bare address")
    InboundMessage.unscoped.create(workspace=ws, channel_config=sms, channel="sms", profile=ann,
                                   from_address="+905551112233", to_address="+15550000000", body="hello-ann",
                                   provider_message_id="SM1", keyword="")
    InboundMessage.unscoped.create(workspace=ws, channel_config=sms, channel="sms", from_address="+905551112233",
                                   body="STOP", provider_message_id="SM2", keyword="STOP")
    news = SubscriptionTopic.unscoped.create(workspace=ws, key="news", name="News")
    record_consent(ws, ann, subscribed=False, source="preferences_page", topic=news, evidence={"ip": "ip-ann"})
    record_consent(ws, ann, subscribed=True, source="api", channel="sms")
    suppress(ws, channel="sms", address="+90 555 111 22 33", reason="stop", note="note-ann")
    suppress(ws, channel="push", address="tok-ann", reason="invalid")
    # Others: Bob in the same workspace, and Ann's namesake in workspace B.
    theirs, _ = queue_delivery(ws, channel="email", source="transactional", profile=bob)
    rendered(theirs, "subject-bob")
    record_consent(ws, bob, subscribed=False, source="api", evidence={"ip": "ip-bob"})
    suppress(ws, channel="email", address="bob@example.com", reason="complaint", profile=bob, note="note-bob")
    InboundMessage.unscoped.create(workspace=ws, channel_config=sms, channel="sms", from_address="+905559999999",
                                   body="body-stranger", provider_message_id="SM3")
    other, _ = queue_delivery(tenant_b.workspace, channel="email", source="transactional", profile=namesake)
    rendered(other, "subject-other-ws")
    record_consent(tenant_b.workspace, namesake, subscribed=False, source="api", evidence={"ip": "ip-other-ws"})
    return welcome, bare


def test_deliveries_with_their_events_and_content(tenant_a, ann, messaging):
    welcome, bare = messaging
    bundle = bundle_of(export(compliance_client(tenant_a), {"id": "ann"}))
    assert [d["id"] for d in bundle["deliveries"]] == [welcome.public_id, bare.public_id]  # oldest first
    first = bundle["deliveries"][0]
    assert {k: first[k] for k in ("channel", "source", "status", "recipient", "subject", "body", "body_plain",
                                  "payload", "message_data")} == {
        "channel": "email", "source": "transactional", "status": "opened", "recipient": "ann@example.com",
        "subject": "Welcome Ann", "body": "<p>Welcome Ann</p>", "body_plain": "Welcome Ann",
        "payload": {"subject": "Welcome Ann"}, "message_data": {"trigger": {"coupon": "coupon-ann"}}}
    assert [(e["kind"], e["data"]) for e in first["events"]] == [
        ("queued", {}), ("sent", {}), ("opened", {"user_agent": "ua-ann"})]
    welcome.refresh_from_db()
    assert first["sent_at"] == welcome.sent_at.isoformat() and first["opened_at"] == welcome.opened_at.isoformat()
    assert first["content_purged_at"] is None and first["clicked_at"] is None
    # A message to her address that named no person is hers too (the deletion removes it as well).
    assert (bundle["deliveries"][1]["recipient"], bundle["deliveries"][1]["subject"]) == (
        "ANN@example.com", "To the bare address")


def test_consent_preferences_suppressions_and_inbound_messages(tenant_a, ann, messaging):
    bundle = bundle_of(export(compliance_client(tenant_a), {"email": "ann@example.com"}))
    assert [(c["channel"], c["topic"], c["action"], c["source"], c["evidence"]) for c in bundle["consent"]] == [
        ("", "news", "opt_out", "preferences_page", {"ip": "ip-ann"}), ("sms", "", "opt_in", "api", {})]
    assert [(p["channel"], p["topic"], p["subscribed"]) for p in bundle["subscription_preferences"]] == [
        ("", "news", False), ("sms", None, True)]
    assert sorted((s["channel"], s["address"], s["reason"], s["note"]) for s in bundle["suppressions"]) == [
        ("push", "tok-ann", "invalid", ""), ("sms", "+905551112233", "stop", "note-ann")]
    assert [(m["channel"], m["from"], m["body"], m["keyword"]) for m in bundle["inbound_messages"]] == [
        ("sms", "+905551112233", "hello-ann", ""), ("sms", "+905551112233", "STOP", "STOP")]
    assert bundle["not_yet_collected"] == [] and bundle["journeys"] == []


def test_nothing_of_anyone_elses_messaging_is_in_the_bundle(tenant_a, ann, messaging):
    raw = b"".join(export(compliance_client(tenant_a), {"cio_id": ann.cio_id}).streaming_content).decode()
    json.loads(raw)
    for other in ("subject-bob", "ip-bob", "note-bob", "bob@example.com", "body-stranger", "subject-other-ws",
                  "ip-other-ws"):
        assert other not in raw
    assert "Welcome Ann" in raw and "ip-ann" in raw


def test_a_person_without_messaging_has_empty_sections(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, external_id="quiet", email=None, phone=None, attributes={})
    bundle = bundle_of(export(compliance_client(tenant_a), {"id": "quiet"}))
    for section in ("deliveries", "inbound_messages", "consent", "subscription_preferences", "suppressions"):
        assert bundle[section] == [], section


def test_many_deliveries_stream_with_one_query_per_batch_for_their_events(tenant_a, django_assert_max_num_queries):
    from compliance import dsar

    ws = tenant_a.workspace
    email, _ = configs(ws)
    client = compliance_client(tenant_a)
    people = {name: ProfileFactory(workspace=ws, external_id=name, email=f"{name}@example.test")
              for name in ("small", "large")}
    for name, n in (("small", 3), ("large", 2 * dsar.DELIVERIES_PER_WRITE + 50)):
        Delivery.unscoped.bulk_create(
            Delivery(workspace=ws, profile=people[name], channel="email", channel_config=email, source="campaign",
                     recipient=people[name].email, idempotency_key=f"{name}-{i}", public_id=f"{name}-{i}",
                     subject=f"n{i}")
            for i in range(n))
        DeliveryEvent.unscoped.bulk_create(
            DeliveryEvent(workspace=ws, delivery=d, kind="sent", at=timezone.now(), data={"i": d.subject})
            for d in Delivery.unscoped.filter(profile=people[name]))
    client.get("/v1/workspace")  # the key is cached from here on, as in steady state
    small_queries, _ = queries_to_export(client, "small")
    with django_assert_max_num_queries(small_queries + 2):  # two more batches of deliveries
        response = export(client, {"id": "large"})
        deliveries = json.loads(b"".join(response.streaming_content))["deliveries"]
    assert len(deliveries) == 2 * dsar.DELIVERIES_PER_WRITE + 50
    assert all(d["events"] == [{"kind": "sent", "at": d["events"][0]["at"], "data": {"i": d["subject"]}}]
               for d in deliveries)
