"""The delivery pipeline: queue → claim → consent → render → hand-off → record, exactly once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from channels.consent import record_consent, suppress
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import Delivery, DeliveryEvent, DeliveryStatus, SubscriptionTopic
from channels.sending import deliver
from channels.tasks import sweep_deliveries
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from profiles.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox", is_default=True)


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="u1", email="u1@example.test")


def _queue(tenant, person, **kwargs):
    kwargs.setdefault("content", {"body": "Hello {{ customer.id }}"})
    return queue_delivery(tenant.workspace, channel="in_app", source="campaign", profile=person, source_id="7",
                          **kwargs)


def _deliver(tenant, delivery, **kwargs):
    with workspace_scope(tenant.workspace):
        return deliver(delivery.pk, **kwargs)


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


def test_queued_delivery_is_sent_once_and_recorded(tenant_a, inbox, person, django_capture_on_commit_callbacks,
                                                   broker):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        delivery, created = _queue(tenant_a, person)
    assert created and [c.__qualname__.split(".")[0] for c in callbacks] == ["count_event", "enqueue_send"]
    assert broker.llen("in_app") == 1  # the send task waits on the channel's own queue
    assert delivery.status == DeliveryStatus.QUEUED and delivery.recipient == person.cio_id

    outcome = _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert outcome.result == "sent"
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.body == "Hello u1" and delivery.sent_at and delivery.delivered_at
    assert kinds(delivery) == ["queued", "sent", "delivered"]
    names = set(Event.unscoped.filter(profile=person).values_list("name", flat=True))
    assert names == {"in_app_sent", "in_app_delivered"}

    again = _deliver(tenant_a, delivery)
    assert again.result == "skipped" and "already" in again.detail
    assert kinds(delivery) == ["queued", "sent", "delivered"]


def test_idempotency_key_returns_the_first_delivery(tenant_a, inbox, person):
    first, created = _queue(tenant_a, person, idempotency_key="order-1")
    second, created_again = _queue(tenant_a, person, idempotency_key="order-1")
    assert created and not created_again and first.pk == second.pk
    assert Delivery.unscoped.count() == 1


def test_idempotency_keys_are_per_workspace(tenant_a, tenant_b, inbox, person):
    ChannelConfigFactory(workspace=tenant_b.workspace, type="in_app", provider="inbox")
    other = ProfileFactory(workspace=tenant_b.workspace)
    first, _ = _queue(tenant_a, person, idempotency_key="k")
    second, created = _queue(tenant_b, other, idempotency_key="k")
    assert created and first.pk != second.pk


def test_no_channel_configuration_makes_the_delivery_undeliverable(tenant_a, person):
    delivery, _ = _queue(tenant_a, person)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNDELIVERABLE
    assert "no active in_app channel configuration" in delivery.failure_reason


def test_template_error_fails_the_delivery_with_the_reason(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person, content={"body": "Hi {{ customer.nickname }}"})
    outcome = _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert outcome.result == "failed" and delivery.status == DeliveryStatus.FAILED
    assert "nickname" in delivery.failure_reason


def test_suppressed_person_is_recorded_not_sent(tenant_a, inbox, person):
    person.suppressed = True
    person.save(update_fields=["suppressed"])
    delivery, _ = _queue(tenant_a, person)
    outcome = _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert outcome.result == "suppressed" and delivery.status == DeliveryStatus.SUPPRESSED
    assert delivery.sent_at is None and "suppressed" in delivery.failure_reason


def test_topic_opt_out_stops_campaigns_but_not_transactional_sends(tenant_a, inbox, person):
    topic = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="news", name="News")
    record_consent(tenant_a.workspace, person, subscribed=False, source="api", topic=topic)
    campaign, _ = _queue(tenant_a, person, topic=topic, send_to_unsubscribed=True)
    transactional, _ = queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                                      topic=topic, content={"body": "receipt"}, send_to_unsubscribed=True)
    assert _deliver(tenant_a, campaign).result == "suppressed"  # send_to_unsubscribed is for transactional only
    assert _deliver(tenant_a, transactional).result == "sent"


def test_suppression_list_stops_even_transactional_sends(tenant_a, person):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", is_default=True)
    person.phone = "+905551112233"
    person.save(update_fields=["phone"])
    suppress(tenant_a.workspace, channel="sms", address="+90 555 111 22 33", reason="stop")
    delivery, _ = queue_delivery(tenant_a.workspace, channel="sms", source="transactional", profile=person,
                                 content={"body": "code 1234"}, send_to_unsubscribed=True)
    assert _deliver(tenant_a, delivery).result == "suppressed"


def test_a_claim_held_by_a_live_task_is_not_taken(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=timezone.now(), claim_token="other")
    assert _deliver(tenant_a, delivery, token="mine").detail == "claimed by another task"
    # The same task, redelivered after its worker died before the provider call, takes it again.
    assert _deliver(tenant_a, delivery, token="other").result == "sent"


def test_a_stale_claim_without_a_provider_call_is_sent(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    long_ago = timezone.now() - timedelta(hours=1)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=long_ago, claim_token="dead")
    assert _deliver(tenant_a, delivery, token="sweep").result == "sent"


def test_a_started_provider_call_is_never_repeated(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=timezone.now(), claim_token="t",
                                                   send_started_at=timezone.now())
    outcome = _deliver(tenant_a, delivery, token="t")
    delivery.refresh_from_db()
    assert outcome.detail == "outcome unknown"
    assert delivery.status == DeliveryStatus.FAILED and delivery.failure_reason.startswith("outcome unknown")


def test_another_task_never_fails_a_provider_call_in_flight(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=timezone.now(), claim_token="live",
                                                   send_started_at=timezone.now())
    assert _deliver(tenant_a, delivery, token="duplicate").detail == "in flight"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENDING and kinds(delivery) == ["queued"]


def test_an_expired_claim_with_a_started_call_fails_as_unknown(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    long_ago = timezone.now() - timedelta(hours=1)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=long_ago, claim_token="dead",
                                                   send_started_at=long_ago)
    assert _deliver(tenant_a, delivery, token="sweep").detail == "outcome unknown"


def test_a_delivery_whose_workers_keep_dying_gives_up(tenant_a, inbox, person, settings):
    delivery, _ = _queue(tenant_a, person)
    long_ago = timezone.now() - timedelta(hours=1)
    Delivery.unscoped.filter(pk=delivery.pk).update(status="sending", claimed_at=long_ago, claim_token="dead",
                                                   attempts=settings.ULAK_DELIVERY_MAX_ATTEMPTS)
    assert _deliver(tenant_a, delivery, token="sweep").detail == "too many attempts"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "gave up after" in delivery.failure_reason


def test_an_inactive_configuration_stops_its_queued_deliveries(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    inbox.active = False
    inbox.save(update_fields=["active"])
    outcome = _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert outcome.result == "failed" and "inactive" in delivery.failure_reason


def test_without_retention_the_inputs_go_once_sent(tenant_a, inbox, person):
    delivery, _ = queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                                 retain_content=False,
                                 content={"body": "code {{ trigger.code }}"}, message_data={"trigger": {"code": "42"}})
    _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.content == {} and delivery.message_data == {}


def test_in_app_content_is_kept_even_without_retention(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person, retain_content=False)
    _deliver(tenant_a, delivery)
    delivery.refresh_from_db()
    assert delivery.body == "Hello u1"  # the inbox reads the message from the delivery


def test_feedback_from_a_stale_copy_never_moves_the_status_back(tenant_a, inbox, person):
    delivery, _ = _queue(tenant_a, person)
    _deliver(tenant_a, delivery)
    stale = Delivery.unscoped.get(pk=delivery.pk)
    fresh = Delivery.unscoped.get(pk=delivery.pk)
    record_delivery_event(fresh, "clicked", data={"href": "https://x.test"})
    record_delivery_event(stale, "opened")  # read before the click was recorded
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.CLICKED and delivery.opened_at and delivery.clicked_at


def test_scheduled_delivery_waits_for_its_time_and_the_sweep_enqueues_it(tenant_a, inbox, person, broker,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        delivery, _ = _queue(tenant_a, person, send_at=timezone.now() + timedelta(hours=2))
    assert broker.llen("in_app") == 0
    assert _deliver(tenant_a, delivery).detail == "not due yet"
    assert sweep_deliveries() == {"enqueued": 0}
    Delivery.unscoped.filter(pk=delivery.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_deliveries() == {"enqueued": 1}
    assert broker.llen("in_app") == 1
    assert _deliver(tenant_a, delivery).result == "sent"
    assert sweep_deliveries() == {"enqueued": 0}


def test_rate_limit_releases_the_claim_for_a_retry(tenant_a, person):
    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox", rate_limit_per_second=1)
    first, _ = _queue(tenant_a, person, channel_config=config)
    second, _ = _queue(tenant_a, person, channel_config=config)
    outcomes = [_deliver(tenant_a, first).result, _deliver(tenant_a, second).result]
    second.refresh_from_db()
    if outcomes == ["sent", "retry"]:  # both in the same second (almost always)
        assert second.status == DeliveryStatus.QUEUED and second.send_at is not None
        # Waiting for the rate limit is not an attempt and leaves no event (it may recur every second).
        assert second.attempts == 0 and kinds(second) == ["queued"]
    else:
        assert outcomes == ["sent", "sent"]
