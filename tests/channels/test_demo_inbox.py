"""The demo provider: deliveries through a demo configuration go through the whole send pipeline
(consent, suppression, rate limit, the started marker, batches) and end delivered, stored once in
the demo inbox of their workspace; the person's deletion, data export and retention cover them;
the demo provider is used only by configurations created with it."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from channels.batching import run_batches
from channels.configs import NoChannelConfig, config_for
from channels.consent import suppress
from channels.deliveries import queue_delivery
from channels.demo_inbox import DEMO_CONFIGURATIONS, configure_demo_channels, links_in, shown, summary
from channels.models import ChannelConfig, Delivery, DeliveryEvent, DeliveryStatus, DemoMessage
from channels.providers import get_provider
from channels.providers.base import OutgoingMessage
from channels.providers.demo import DemoProvider
from channels.services import create_channel_config
from compliance.deletion import request_deletion, run_deletion
from compliance.retention import purge_expired_data
from core.context import workspace_scope
from core.models import AuditEntry
from profiles.models import Device, Event
from tests.support.delivering import queue_and_send, send_now
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

HTML = '<p>Hello {{ customer.first_name }}, <a href="https://shop.example/cart">your cart</a></p>'


def demo_config(workspace, channel="email", **data):
    with workspace_scope(workspace):
        return create_channel_config(workspace=workspace, data={
            "type": channel, "provider": "demo", "name": data.pop("name", f"Demo {channel}"),
            "sender": data.pop("sender", "Acme <hello@acme.test>" if channel == "email" else "ACME"),
            "is_default": data.pop("is_default", True), **data})


@pytest.fixture
def ada(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com",
                          phone="+905551234567", attributes={"first_name": "Ada"})


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).order_by("at", "pk").values_list("kind", flat=True))


def test_a_transactional_email_sent_through_the_api_ends_delivered_and_is_stored_once(tenant_a, ada):
    config = demo_config(tenant_a.workspace)
    response = tenant_a.app_client().post("/v1/send/email", {
        "identifiers": {"id": "ada"}, "subject": "Welcome {{ customer.first_name }}", "body": HTML},
        format="json")
    assert response.status_code == 200, response.content
    delivery = Delivery.unscoped.get(public_id=response.json()["delivery_id"])
    assert delivery.channel_config == config

    outcome = send_now(tenant_a, delivery)

    assert outcome.result == "sent" and delivery.status == DeliveryStatus.DELIVERED
    assert kinds(delivery) == ["queued", "sent", "delivered"]
    assert delivery.provider_message_id == f"demo-{delivery.public_id}" and delivery.delivered_at
    assert set(Event.unscoped.filter(profile=ada).values_list("name", flat=True)) >= {"email_sent", "email_delivered"}
    [stored] = DemoMessage.unscoped.filter(workspace=tenant_a.workspace)
    assert (stored.delivery_id, stored.channel, stored.recipient, stored.subject) == (
        delivery.pk, "email", "ada@example.com", "Welcome Ada")
    assert stored.sender == "Acme <hello@acme.test>"
    assert "Hello Ada" in stored.body and "/c/" in stored.body  # tracked: the link goes through Ulak
    assert stored.body_plain.startswith("Hello Ada, your cart")  # made from the HTML, as the email providers do
    assert "List-Unsubscribe" in stored.headers
    assert DeliveryEvent.unscoped.get(delivery=delivery, kind="sent").data == {"demo_message": stored.pk}

    # Sent again (a duplicate task): the claim refuses it, nothing more is stored.
    again = send_now(tenant_a, delivery)
    assert again.result == "skipped" and "already" in again.detail
    assert DemoMessage.unscoped.count() == 1 and kinds(delivery) == ["queued", "sent", "delivered"]
    # No audit entry per message: the demo inbox is data plane, as deliveries are.
    assert not AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk, content_type__model="demomessage").exists()


def test_the_provider_stores_one_copy_per_delivery_even_if_called_twice(tenant_a, ada):
    config = demo_config(tenant_a.workspace)
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="transactional", profile=ada,
                                 content={"subject": "s", "body": "plain text only"})
    message = OutgoingMessage(delivery_id=delivery.public_id, channel="email", recipient="ada@example.com",
                              subject="s", body="plain text only", sender="a@acme.test")
    provider = get_provider(config)
    assert isinstance(provider, DemoProvider)
    first, second = provider.send(message), provider.send(message)
    assert first.status == second.status == "delivered"
    assert second.detail == {"demo_message": first.detail["demo_message"], "already_stored": True}
    [stored] = DemoMessage.unscoped.all()
    assert (stored.body, stored.body_plain) == ("", "plain text only")  # a text-only email has no HTML


def test_a_call_that_started_and_left_no_result_is_never_made_again(tenant_a, ada):
    demo_config(tenant_a.workspace)
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="transactional", profile=ada,
                                 content={"subject": "s", "body": "b"})
    # A worker claimed it, committed the started marker and died before recording the result.
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claim_token="dead-task", attempts=1,
                                                    claimed_at=timezone.now() - timedelta(hours=1),
                                                    send_started_at=timezone.now() - timedelta(hours=1))
    outcome = send_now(tenant_a, delivery)
    assert outcome.result == "skipped" and outcome.detail == "outcome unknown"
    assert delivery.status == DeliveryStatus.FAILED and "outcome unknown" in delivery.failure_reason
    assert not DemoMessage.unscoped.exists()


def test_consent_and_suppression_apply_before_anything_is_stored(tenant_a, ada):
    demo_config(tenant_a.workspace)
    suppress(tenant_a.workspace, channel="email", address="ada@example.com", reason="hard_bounce")
    outcome, delivery = queue_and_send(tenant_a, ada, channel="email", content={"subject": "s", "body": "b"})
    assert outcome.result == "suppressed" and delivery.status == DeliveryStatus.SUPPRESSED

    bob = ProfileFactory(workspace=tenant_a.workspace, email="bob@example.com", unsubscribed=True)
    outcome, delivery = queue_and_send(tenant_a, bob, channel="email", source="campaign",
                                       content={"subject": "s", "body": "b"})
    assert outcome.result == "suppressed" and "unsubscribed" in delivery.failure_reason
    assert not DemoMessage.unscoped.exists()


def test_the_configurations_rate_limit_holds_the_second_message(tenant_a, ada):
    demo_config(tenant_a.workspace, rate_limit_per_second=1)
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, 0, 100_000, tzinfo=UTC), tick=False):
        first, _ = queue_and_send(tenant_a, ada, channel="email", content={"subject": "1", "body": "one"})
        second, delivery = queue_and_send(tenant_a, ada, channel="email", content={"subject": "2", "body": "two"})
    assert first.result == "sent" and second.result == "retry"
    assert delivery.status == DeliveryStatus.QUEUED
    assert list(DemoMessage.unscoped.values_list("subject", flat=True)) == ["1"]


def test_sms_whatsapp_and_push_are_stored_as_their_views_show_them(tenant_a, ada):
    for channel in ("sms", "whatsapp", "push"):
        demo_config(tenant_a.workspace, channel)
    Device.unscoped.create(workspace=tenant_a.workspace, profile=ada, platform="ios", token="tok-1")
    Device.unscoped.create(workspace=tenant_a.workspace, profile=ada, platform="android", token="tok-2")

    sms, sms_delivery = queue_and_send(tenant_a, ada, channel="sms", content={"body": "Code {{ customer.id }}"})
    wa, _ = queue_and_send(tenant_a, ada, channel="whatsapp", content={
        "template": {"name": "order_shipped", "language": "tr", "components": [{"type": "body"}]}})
    push, _ = queue_and_send(tenant_a, ada, channel="push", content={
        "title": "Hi {{ customer.first_name }}", "body": "Your order shipped", "link": "https://shop.example/o/1",
        "custom_data": {"order": 1}})

    assert (sms.result, wa.result, push.result) == ("sent", "sent", "sent")
    assert sms_delivery.status == DeliveryStatus.DELIVERED
    rows = {row.channel: row for row in DemoMessage.unscoped.filter(workspace=tenant_a.workspace)}
    assert (rows["sms"].recipient, rows["sms"].body, rows["sms"].sender) == ("+905551234567", "Code ada", "ACME")
    assert shown(rows["sms"]).kind == "phone" and summary(rows["sms"]) == "Code ada"
    whatsapp = shown(rows["whatsapp"])
    assert whatsapp.kind == "phone" and whatsapp.template["name"] == "order_shipped"
    assert json.loads(whatsapp.template_components) == [{"type": "body"}]
    assert summary(rows["whatsapp"]) == "Template order_shipped"
    card = shown(rows["push"])
    assert (card.kind, card.title, card.text) == ("notification", "Hi Ada", "Your order shipped")
    assert card.extras["devices"] == 2 and card.extras["link"] == "https://shop.example/o/1"
    assert json.loads(card.extras["data"]) == {"order": 1}
    assert rows["push"].payload["tokens"] == ["tok-1", "tok-2"]


def test_a_campaign_batch_goes_through_the_demo_provider(tenant_a):
    config = demo_config(tenant_a.workspace)
    people = [ProfileFactory(workspace=tenant_a.workspace, email=f"p{i}@example.com") for i in range(12)]
    for person in people:
        queue_delivery(tenant_a.workspace, channel="email", source="campaign", profile=person, source_id="9",
                       content={"subject": "News", "body": "<p>Hi</p>"})
    with workspace_scope(tenant_a.workspace):
        result = run_batches(tenant_a.workspace, config.pk, token="batch-task")
    assert result["sent"] == 12
    assert set(Delivery.unscoped.values_list("status", flat=True)) == {"delivered"}
    assert DemoMessage.unscoped.filter(workspace=tenant_a.workspace).count() == 12


def test_each_workspace_sees_only_its_own_messages(two_tenants):
    a, b = two_tenants
    for tenant in (a, b):
        demo_config(tenant.workspace)
        person = ProfileFactory(workspace=tenant.workspace, email="same@example.com")
        queue_and_send(tenant, person, channel="email", content={"subject": tenant.workspace.name, "body": "b"})
    with workspace_scope(a.workspace):
        assert list(DemoMessage.objects.values_list("subject", flat=True)) == ["Acme"]
    assert list(DemoMessage.objects.for_workspace(b.workspace).values_list("subject", flat=True)) == ["Globex"]


# --- never the default by itself ----------------------------------------------------------------------

def test_the_demo_provider_is_used_only_when_a_configuration_is_created_with_it(tenant_a, tenant_b, ada):
    smtp = ChannelConfig.unscoped.create(workspace=tenant_a.workspace, name="Mail", type="email", provider="smtp",
                                         settings={"host": "smtp.acme.test"}, is_default=True)
    demo = demo_config(tenant_a.workspace, is_default=False)
    with workspace_scope(tenant_a.workspace):
        assert config_for(tenant_a.workspace, "email") == smtp
        assert config_for(tenant_a.workspace, "email", demo.pk) == demo
    with pytest.raises(NoChannelConfig):  # a workspace with no configuration gets none, not a demo one
        config_for(tenant_b.workspace, "email")
    # Configuring a workspace's demo inbox leaves an existing default the default.
    with workspace_scope(tenant_a.workspace):
        configure_demo_channels(workspace=tenant_a.workspace)
        assert config_for(tenant_a.workspace, "email") == smtp
        assert config_for(tenant_a.workspace, "sms").provider == "demo"


def test_configure_demo_channels_is_repeatable_and_touches_one_workspace(tenant_a, tenant_b):
    out = io.StringIO()
    call_command("demo_inbox", tenant_a.workspace.slug, stdout=out)
    call_command("demo_inbox", tenant_a.workspace.slug, stdout=out)
    configs = ChannelConfig.unscoped.filter(workspace=tenant_a.workspace)
    assert sorted(configs.values_list("type", "provider", "is_default")) == [
        ("email", "demo", True), ("push", "demo", True), ("sms", "demo", True), ("whatsapp", "demo", True)]
    assert configs.count() == len(DEMO_CONFIGURATIONS)
    assert not ChannelConfig.unscoped.filter(workspace=tenant_b.workspace).exists()
    assert "1 channel" not in out.getvalue() and "4 channel configuration(s) created" in out.getvalue()
    assert "0 channel configuration(s) created" in out.getvalue()


def test_a_demo_configuration_takes_no_settings_or_secrets(tenant_a):
    client = tenant_a.app_client()
    response = client.post("/v1/channels", {"type": "email", "provider": "demo", "name": "Dev",
                                            "settings": {"host": "smtp.example"}, "secrets": {"password": "x"}},
                           format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"settings.host", "secrets.password"}
    response = client.post("/v1/channels", {"type": "webhook", "provider": "demo", "name": "Dev"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "provider"
    assert not ChannelConfig.unscoped.filter(workspace=tenant_a.workspace).exists()
    response = client.post("/v1/channels", {"type": "sms", "provider": "demo", "name": "Dev"}, format="json")
    assert response.status_code == 201 and response.json()["channel"]["provider"] == "demo"


# --- deletion, data export, retention -----------------------------------------------------------------

def test_deleting_a_person_removes_their_demo_messages(tenant_a, ada):
    demo_config(tenant_a.workspace)
    demo_config(tenant_a.workspace, "sms")
    bob = ProfileFactory(workspace=tenant_a.workspace, email="bob@example.com")
    queue_and_send(tenant_a, ada, channel="email", content={"subject": "for ada", "body": "b"})
    queue_and_send(tenant_a, ada, channel="sms", content={"body": "sms for ada"})
    queue_and_send(tenant_a, bob, channel="email", content={"subject": "for bob", "body": "b"})
    assert DemoMessage.unscoped.count() == 3

    record = run_deletion(request_deletion(workspace=tenant_a.workspace, identifiers={"id": "ada"}, source="api"))

    assert record.status == "completed" and record.counts["channels.DemoMessage"] == 2
    assert list(DemoMessage.unscoped.values_list("subject", flat=True)) == ["for bob"]


def test_the_data_export_lists_the_persons_demo_messages(tenant_a, ada):
    demo_config(tenant_a.workspace)
    bob = ProfileFactory(workspace=tenant_a.workspace, email="bob@example.com")
    _, delivery = queue_and_send(tenant_a, ada, channel="email", content={"subject": "for ada", "body": HTML})
    queue_and_send(tenant_a, bob, channel="email", content={"subject": "for bob", "body": "b"})
    from tests.helpers import app_client_with_scopes

    client = app_client_with_scopes(tenant_a, "compliance")
    response = client.post("/v1/compliance/exports", {"identifiers": {"id": "ada"}}, format="json")
    assert response.status_code == 200, response.content
    bundle = json.loads(b"".join(response.streaming_content))
    [copy] = bundle["demo_messages"]
    assert (copy["delivery_id"], copy["subject"], copy["recipient"]) == (delivery.public_id, "for ada",
                                                                        "ada@example.com")
    assert "Hello Ada" in copy["body"]


def test_the_retention_purge_removes_demo_messages_with_their_deliverys_content(tenant_a, ada):
    tenant_a.workspace.event_retention_days = 30
    tenant_a.workspace.save(update_fields=["event_retention_days"])
    demo_config(tenant_a.workspace)
    now = timezone.now()
    _, old = queue_and_send(tenant_a, ada, channel="email", content={"subject": "old", "body": "b"})
    queue_and_send(tenant_a, ada, channel="email", content={"subject": "recent", "body": "b"})
    Delivery.unscoped.filter(pk=old.pk).update(created_at=now - timedelta(days=31))

    counts = purge_expired_data(workspace=tenant_a.workspace, now=now)

    assert counts["delivery_content"] == 1
    assert list(DemoMessage.unscoped.values_list("subject", flat=True)) == ["recent"]


def test_links_are_read_from_the_html():
    html = ('<a href="https://a.example/x">a</a><a href="mailto:x@y">m</a><a href="javascript:alert(1)">j</a>'
            '<a href="https://a.example/x">again</a><a href=" http://b.example/ ">b</a>')
    assert links_in(html) == ["https://a.example/x", "http://b.example/"]
