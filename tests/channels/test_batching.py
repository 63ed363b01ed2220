"""Batched sending of campaign and broadcast deliveries (channels/batching.py): the set-based claim
under racing claimers, the same consent decisions as the single-delivery path, scheduling (one
batch task per configuration, the sweep), recovery after a worker died, and the statements a
delivery costs. Real worker processes killed in a batch: test_batch_exactly_once.py; the rate
limit (batch tasks paced by the shared bucket): test_rate_limit.py."""

import base64
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels import batching
from channels.consent import SendAsk, block_reason, decide, load_consent, record_consent, suppress
from channels.deliveries import queue_delivery
from channels.models import ChannelConfig, Delivery, DeliveryEvent, DeliveryStatus, ReportingWebhook, \
    SubscriptionTopic
from channels.sending import deliver
from channels.tasks import sweep_deliveries
from core.context import workspace_scope
from profiles import erasure
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeSmtpServer

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def inbox(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox", is_default=True)


@pytest.fixture
def smtp():
    with FakeSmtpServer() as server:
        yield server


@pytest.fixture
def email(tenant_a, smtp):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", is_default=True,
                                sender="news@acme.test", settings={"host": "127.0.0.1", "port": smtp.port})


def campaign_deliveries(tenant, config, count, *, channel=None, body="Hello {{ customer.id }}", **kwargs):
    people = [ProfileFactory(workspace=tenant.workspace) for _ in range(count)]
    return [queue_delivery(tenant.workspace, channel=channel or config.type, source="campaign", profile=person,
                           source_id="7", channel_config=config,
                           content={"subject": "News", "body": body}, **kwargs)[0] for person in people]


def run_batch(tenant, config, token="batch", **kwargs):
    with workspace_scope(tenant.workspace):
        return batching.send_batch(tenant.workspace, ChannelConfig.unscoped.get(pk=config.pk), token, **kwargs)


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).order_by("pk").values_list("kind", flat=True))


def statuses(deliveries) -> Counter:
    return Counter(Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("status", flat=True))


# --- the claim ------------------------------------------------------------------------------------

def race(work, tokens, *, timeout: float, barrier: bool = True) -> None:
    """Run `work(token)` in a thread per token (each with its own database connection), started
    together; re-raise the first error any of them met."""
    start, errors = threading.Barrier(len(tokens)), []

    def run(token):
        try:
            if barrier:
                start.wait()
            work(token)
        except Exception as exc:  # noqa: BLE001 — re-raised below
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True)
def test_two_racing_claimers_never_take_a_delivery_twice_and_leave_none_behind(tenant_a, inbox):
    deliveries = campaign_deliveries(tenant_a, inbox, 300)
    taken: dict[str, list[int]] = {"one": [], "two": []}

    def claimer(token):
        while True:
            ids, picked = batching.claim(tenant_a.workspace, inbox.pk, token, 7)
            if not picked:
                return
            taken[token] += ids

    race(claimer, list(taken), timeout=60)
    assert taken["one"] and taken["two"], "both claimers took part"
    assert not set(taken["one"]) & set(taken["two"])
    assert sorted(taken["one"] + taken["two"]) == sorted(d.pk for d in deliveries)
    rows = Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])
    assert set(rows.values_list("status", "attempts")) == {(DeliveryStatus.SENDING, 1)}
    for token, ids in taken.items():
        assert set(rows.filter(claim_token=token).values_list("pk", flat=True)) == set(ids)


@pytest.mark.django_db(transaction=True)
def test_two_racing_batches_send_each_delivery_once(tenant_a, inbox):
    deliveries = campaign_deliveries(tenant_a, inbox, 120)

    def sender(token):
        with workspace_scope(tenant_a.workspace):
            config = ChannelConfig.objects.for_workspace(tenant_a.workspace).get(pk=inbox.pk)
            while batching.send_batch(tenant_a.workspace, config, token, size=9).picked:
                pass

    race(sender, ["one", "two"], timeout=120)
    assert statuses(deliveries) == {DeliveryStatus.DELIVERED: 120}
    sent = Counter(DeliveryEvent.unscoped.filter(delivery__in=deliveries, kind="sent").values_list("delivery_id",
                                                                                                  flat=True))
    assert sorted(sent) == sorted(d.pk for d in deliveries) and set(sent.values()) == {1}
    assert set(Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("claim_token", flat=True)) \
        == {"one", "two"}


@pytest.mark.django_db
def test_the_claim_takes_only_due_batched_deliveries_of_its_configuration(tenant_a, inbox):
    other = ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox")
    mine = campaign_deliveries(tenant_a, inbox, 2)
    campaign_deliveries(tenant_a, other, 1)  # another configuration
    campaign_deliveries(tenant_a, inbox, 1, send_at=timezone.now() + timedelta(hours=1))  # not due
    person = ProfileFactory(workspace=tenant_a.workspace)
    queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                   channel_config=inbox, content={"body": "receipt"})  # has its own task
    broadcast, _ = queue_delivery(tenant_a.workspace, channel="in_app", source="broadcast", profile=person,
                                  channel_config=inbox, content={"body": "all"})
    taken, picked = batching.claim(tenant_a.workspace, inbox.pk, "t", 10)
    assert taken == sorted([d.pk for d in mine] + [broadcast.pk]) and picked == 3


@pytest.mark.django_db
def test_picked_rows_that_may_not_be_taken_fail_as_in_the_single_claim(tenant_a, inbox, settings):
    ok, worn = campaign_deliveries(tenant_a, inbox, 2)
    Delivery.unscoped.filter(pk=worn.pk).update(attempts=settings.ULAK_DELIVERY_MAX_ATTEMPTS)
    taken, picked = batching.claim(tenant_a.workspace, inbox.pk, "t", 10)
    assert taken == [ok.pk] and picked == 2
    worn.refresh_from_db()
    assert worn.status == DeliveryStatus.FAILED
    assert worn.failure_reason == f"gave up after {settings.ULAK_DELIVERY_MAX_ATTEMPTS} attempts that never " \
                                  "reached the provider"
    assert kinds(worn) == ["queued", "failed"]


# --- a batch sent --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_batch_is_sent_and_recorded_as_the_single_path_records_it(tenant_a, email, smtp):
    from channels.models import ReportingWebhookCall
    from profiles.models import Event

    topic = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="news", name="News")
    ReportingWebhook.unscoped.create(workspace=tenant_a.workspace, name="r", url="https://hooks.example.test/r")
    single, *batch = campaign_deliveries(tenant_a, email, 13, topic=topic)
    with workspace_scope(tenant_a.workspace):
        assert deliver(single.pk).result == "sent"
    outcome = run_batch(tenant_a, email, size=20)
    assert (outcome.picked, outcome.sent, outcome.full, outcome.wait) == (12, 12, False, 0)
    assert len(smtp.messages) == 13
    fields = ("status", "attempts", "subject", "failure_reason")

    def shape(delivery):
        delivery.refresh_from_db()
        row = {name: getattr(delivery, name) for name in fields}
        row["provider id"] = delivery.provider_message_id.startswith(f"<{delivery.public_id}@")
        row["body"] = delivery.body_plain == f"Hello {delivery.profile.external_id}"
        row["payload"] = delivery.rendered_payload
        row["times"] = (delivery.sent_at is not None, delivery.send_started_at is not None, bool(delivery.claim_token))
        person_events = list(Event.unscoped.filter(profile=delivery.profile_id).order_by("pk")
                             .values_list("name", "data__source", "data__source_id"))
        calls = list(ReportingWebhookCall.unscoped.filter(delivery=delivery).values_list("payload__metric", flat=True))
        return row, kinds(delivery), person_events, calls

    expected = shape(single)
    assert expected[0]["status"] == DeliveryStatus.SENT and expected[1] == ["queued", "sent"]
    assert expected[2] == [("email_sent", "campaign", "7")] and expected[3] == ["sent"]
    for delivery in batch:
        assert shape(delivery) == expected


@pytest.mark.django_db
def test_person_events_and_reporting_calls_of_a_batch(tenant_a, inbox):
    from channels.models import ReportingWebhookCall
    from profiles.models import Change, Event

    ReportingWebhook.unscoped.create(workspace=tenant_a.workspace, name="r", url="https://hooks.example.test/r",
                                     events=["in_app_sent"])
    deliveries = campaign_deliveries(tenant_a, inbox, 4)
    run_batch(tenant_a, inbox)
    for delivery in deliveries:
        events = Event.unscoped.filter(profile=delivery.profile_id).order_by("pk")
        assert list(events.values_list("name", flat=True)) == ["in_app_sent", "in_app_delivered"]
        assert events[0].data == {"delivery_id": delivery.public_id, "channel": "in_app", "source": "campaign",
                                  "source_id": "7"}
        assert Change.objects.for_workspace(tenant_a.workspace).filter(profile_id=delivery.profile_id,
                                                                        kind="event").count() == 2
        [call] = ReportingWebhookCall.unscoped.filter(delivery=delivery)
        sent = DeliveryEvent.unscoped.get(delivery=delivery, kind="sent")
        assert call.payload["metric"] == "sent" and call.payload["event_id"] == f"{delivery.public_id}-{sent.pk}"


@pytest.mark.django_db
def test_an_inactive_configuration_fails_the_whole_batch(tenant_a, inbox):
    deliveries = campaign_deliveries(tenant_a, inbox, 3)
    ChannelConfig.unscoped.filter(pk=inbox.pk).update(active=False)
    run_batch(tenant_a, inbox)
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.FAILED and "is inactive" in delivery.failure_reason


@pytest.mark.django_db
def test_a_template_error_fails_only_its_delivery(tenant_a, inbox):
    good = campaign_deliveries(tenant_a, inbox, 2)
    [bad] = campaign_deliveries(tenant_a, inbox, 1, body="Hi {{ customer.nickname }}")
    assert run_batch(tenant_a, inbox).sent == 2
    bad.refresh_from_db()
    assert bad.status == DeliveryStatus.FAILED and "nickname" in bad.failure_reason
    assert statuses(good) == {DeliveryStatus.DELIVERED: 2}


@pytest.mark.django_db
def test_a_sub_batch_that_renders_nothing_still_renews_the_claim_of_the_rest(tenant_a, inbox, settings):
    settings.ULAK_SEND_SUB_BATCH_SIZE = 2
    bad = campaign_deliveries(tenant_a, inbox, 2, body="Hi {{ customer.nickname }}")
    good = campaign_deliveries(tenant_a, inbox, 3)
    assert run_batch(tenant_a, inbox).sent == 3
    assert statuses(bad) == {DeliveryStatus.FAILED: 2} and statuses(good) == {DeliveryStatus.DELIVERED: 3}


@pytest.mark.django_db
def test_without_retention_a_batch_keeps_no_inputs_and_in_app_keeps_its_content(tenant_a, inbox, email, smtp):
    mails = campaign_deliveries(tenant_a, email, 2, retain_content=False, body="Hi {{ customer.id }}")
    inbox_messages = campaign_deliveries(tenant_a, inbox, 2, retain_content=False)
    run_batch(tenant_a, email)
    run_batch(tenant_a, inbox)
    for delivery in mails:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SENT
        assert (delivery.content, delivery.message_data, delivery.body, delivery.rendered_payload) == ({}, {}, "", {})
    for delivery in inbox_messages:
        delivery.refresh_from_db()
        assert delivery.content == {} and delivery.body == f"Hello {delivery.profile.external_id}"


@pytest.mark.django_db
def test_a_refused_recipient_is_undeliverable_and_the_batch_goes_on(tenant_a, email, smtp):
    deliveries = campaign_deliveries(tenant_a, email, 3)
    smtp.refuse[deliveries[1].recipient] = "550 no such user"
    assert run_batch(tenant_a, email).sent == 2
    assert statuses(deliveries) == {DeliveryStatus.SENT: 2, DeliveryStatus.UNDELIVERABLE: 1}


@pytest.mark.django_db
def test_a_provider_that_cannot_be_reached_holds_the_rest_back_without_counting_attempts(tenant_a, inbox,
                                                                                          settings):
    from tests.support.fakes import free_port

    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", is_default=True,
                                  sender="news@acme.test", settings={"host": "127.0.0.1", "port": free_port()})
    deliveries = campaign_deliveries(tenant_a, config, 5)
    outcome = run_batch(tenant_a, config)
    assert outcome.sent == 0 and outcome.wait == settings.ULAK_DELIVERY_RETRY_BASE_SECONDS
    rows = {d.pk: d for d in Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])}
    assert {row.status for row in rows.values()} == {DeliveryStatus.QUEUED}
    assert {row.send_started_at for row in rows.values()} == {None}
    # The two that failed are retries (attempt counted, event); the rest were only held back.
    retried = [d for d in deliveries if "retry" in kinds(d)]
    assert [d.pk for d in retried] == [d.pk for d in deliveries[:2]]
    assert {rows[d.pk].attempts for d in retried} == {1}
    assert {rows[d.pk].attempts for d in deliveries[2:]} == {0}
    assert {tuple(kinds(d)) for d in deliveries[2:]} == {("queued",)}


# --- consent: the same decisions as the single path ---------------------------------------------

def _subscribed(ws, person, topics):
    return {}


def _address_suppressed(ws, person, topics):
    suppress(ws, channel="email", address=person.email, reason="bounce")


def _address_suppressed_in_another_form(ws, person, topics):
    suppress(ws, channel="email", address=f"  {person.email.upper()} ", reason="complaint")


def _other_channel_suppressed(ws, person, topics):
    suppress(ws, channel="sms", address="+905550001111", reason="stop")
    person.phone = "+905550001111"
    person.save(update_fields=["phone"])


def _person_suppressed(ws, person, topics):
    person.suppressed = True
    person.save(update_fields=["suppressed"])


def _unsubscribed(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api")


def _channel_opt_out(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api", channel="email")


def _other_channel_opt_out(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api", channel="sms")


def _topic_opt_out(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api", topic=topics["news"])


def _topic_opt_out_on_another_channel(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api", channel="sms", topic=topics["news"])


def _topic_opt_out_on_this_channel(ws, person, topics):
    record_consent(ws, person, subscribed=False, source="api", channel="email", topic=topics["news"])


def _opt_in_topic_opted_in(ws, person, topics):
    record_consent(ws, person, subscribed=True, source="api", topic=topics["offers"])


def _channel_in_topic_out(ws, person, topics):
    record_consent(ws, person, subscribed=True, source="api", channel="email")
    record_consent(ws, person, subscribed=False, source="api", topic=topics["news"])


# (name, setup, topic key, expected start of the failure reason; "" = sent)
CONSENT_CASES = [
    ("subscribed", _subscribed, None, ""),
    ("subscribed, topic", _subscribed, "news", ""),
    ("address on the suppression list", _address_suppressed, None, "suppressed: the email address"),
    ("address listed in another form", _address_suppressed_in_another_form, "news", "suppressed: the email address"),
    ("another channel's address listed", _other_channel_suppressed, None, ""),
    ("person suppressed", _person_suppressed, "news", "suppressed: the person is suppressed"),
    ("unsubscribed from everything", _unsubscribed, None, "unsubscribed: the person unsubscribed"),
    ("unsubscribed, topic", _unsubscribed, "news", "unsubscribed: the person unsubscribed"),
    ("opted out of the channel", _channel_opt_out, None, "unsubscribed: the person is not subscribed to the email"),
    ("opted out of the channel, topic", _channel_opt_out, "news", "unsubscribed: the person is not subscribed to topic"),
    ("opted out of another channel", _other_channel_opt_out, "news", ""),
    ("opted out of the topic", _topic_opt_out, "news", "unsubscribed: the person is not subscribed to topic 'news'"),
    ("opted out of the topic, no topic sent", _topic_opt_out, None, ""),
    ("topic opt-out on another channel", _topic_opt_out_on_another_channel, "news", ""),
    ("topic opt-out on this channel", _topic_opt_out_on_this_channel, "news", "unsubscribed: the person is not"),
    ("opt-in topic never opted in", _subscribed, "offers", "unsubscribed: the person is not subscribed to topic"),
    ("opt-in topic opted in", _opt_in_topic_opted_in, "offers", ""),
    ("channel in, topic out", _channel_in_topic_out, "news", "unsubscribed: the person is not subscribed to topic"),
]


@pytest.fixture
def topics(tenant_a):
    return {"news": SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="news", name="News"),
            "offers": SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="offers", name="Offers",
                                                        default_subscribed=False)}


def _case_deliveries(tenant, email, topics, setup, topic_key, count=2):
    person = ProfileFactory(workspace=tenant.workspace)
    setup(tenant.workspace, person, topics)
    return [queue_delivery(tenant.workspace, channel="email", source="campaign", profile=person, source_id="7",
                           channel_config=email, topic=topics[topic_key] if topic_key else None,
                           content={"subject": "News", "body": "Hello"})[0] for _ in range(count)]


def _result(delivery):
    delivery.refresh_from_db()
    return delivery.status, delivery.failure_reason, kinds(delivery)


@pytest.mark.django_db
@pytest.mark.parametrize("name,setup,topic_key,expected", CONSENT_CASES, ids=[case[0] for case in CONSENT_CASES])
def test_a_batch_decides_consent_as_the_single_path(tenant_a, email, smtp, topics, name, setup, topic_key, expected):
    single, batched = _case_deliveries(tenant_a, email, topics, setup, topic_key)
    [control] = campaign_deliveries(tenant_a, email, 1)  # a batch-mate with nothing against it
    with workspace_scope(tenant_a.workspace):
        deliver(single.pk)
    run_batch(tenant_a, email)
    assert _result(batched) == _result(single)
    status, reason, _ = _result(batched)
    assert reason.startswith(expected) and (status == DeliveryStatus.SENT) == (expected == "")
    assert _result(control)[0] == DeliveryStatus.SENT


@pytest.mark.django_db
def test_every_consent_case_in_one_batch_matches_the_single_path(tenant_a, email, smtp, topics):
    pairs = [_case_deliveries(tenant_a, email, topics, setup, topic_key) for _, setup, topic_key, _ in CONSENT_CASES]
    with workspace_scope(tenant_a.workspace):
        for single, _ in pairs:
            deliver(single.pk)
    run_batch(tenant_a, email, size=100)
    for (name, *_), (single, batched) in zip(CONSENT_CASES, pairs):
        assert _result(batched) == _result(single), name


@pytest.mark.django_db
def test_the_bulk_decision_equals_block_reason_for_every_kind_of_ask(tenant_a, topics):
    """The decision for asks only the single path makes (transactional sends to unsubscribed people,
    the STOP confirmation, bare addresses of people deleted from the workspace), loaded together."""
    ws = tenant_a.workspace
    people = {}
    for label, setup in (("plain", _subscribed), ("unsubscribed", _unsubscribed), ("suppressed", _person_suppressed),
                         ("topic out", _topic_opt_out)):
        people[label] = ProfileFactory(workspace=ws)
        setup(ws, people[label], topics)
    suppress(ws, channel="sms", address="+905550000001", reason="stop")
    suppress(ws, channel="sms", address="+905550000002", reason="bounce")
    suppress(ws, channel="email", address="listed@example.test", reason="manual")
    erasure.suppress_identifiers(ws, {"email": "gone@example.test", "phone": "+905550000003"}, deletion_id=None)
    asks = []
    for profile in [None, *people.values()]:
        for channel, address in (("email", "fresh@example.test"), ("email", "LISTED@example.test"),
                                 ("email", "gone@example.test"), ("email", " Gone@Example.test"),
                                 ("sms", "+90 555 000 00 01"), ("sms", "+905550000002"), ("sms", "+905550000003"),
                                 ("whatsapp", "+905550000001"), ("in_app", "someone"), ("email", "")):
            for topic in (None, topics["news"], topics["offers"]):
                for send_to_unsubscribed, opt_out_confirmation in ((False, False), (True, False), (False, True)):
                    asks.append(SendAsk(profile=profile, channel=channel, address=address, topic=topic,
                                        send_to_unsubscribed=send_to_unsubscribed,
                                        opt_out_confirmation=opt_out_confirmation))
    facts = load_consent(ws, asks)
    bulk = [decide(ask, facts) for ask in asks]
    single = [block_reason(ws, **vars(ask)) for ask in asks]
    assert bulk == single
    kinds_of_answer = {reason.split(":")[0] if reason else None for reason in bulk}
    assert kinds_of_answer == {None, "suppressed", "unsubscribed"}
    assert "suppressed: the address belonged to a person deleted from the workspace" in bulk


# --- scheduling -----------------------------------------------------------------------------------

def _published(broker, queue):
    return [json.loads(message)["headers"]["task"] for message in broker.lrange(queue, 0, -1)]


def _published_slots(broker, queue) -> list[int]:
    """The `slot` of each published batch task, oldest first (a Redis list is pushed on the left)."""
    bodies = [json.loads(base64.b64decode(json.loads(message)["body"])) for message in broker.lrange(queue, 0, -1)]
    return sorted(kwargs["slot"] for _, kwargs, _ in bodies)


@pytest.mark.django_db
def test_campaign_deliveries_publish_one_batch_task_per_configuration(tenant_a, inbox, broker,
                                                                      django_capture_on_commit_callbacks):
    other = ChannelConfigFactory(workspace=tenant_a.workspace, type="in_app", provider="inbox")
    person = ProfileFactory(workspace=tenant_a.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        campaign_deliveries(tenant_a, inbox, 5)
        campaign_deliveries(tenant_a, other, 2)
        queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                       content={"body": "receipt"})
    assert sorted(_published(broker, "in_app")) == ["in_app.send_batch", "in_app.send_batch",
                                                    "in_app.send_delivery"]
    with django_capture_on_commit_callbacks(execute=True):
        campaign_deliveries(tenant_a, inbox, 3)  # a batch task of this configuration is on its way
    assert len(_published(broker, "in_app")) == 3


@pytest.mark.django_db
def test_the_batch_task_sends_until_nothing_is_due_then_lets_the_next_one_be_published(tenant_a, inbox, broker,
                                                                                      settings):
    settings.ULAK_SEND_BATCH_SIZE = 4
    deliveries = campaign_deliveries(tenant_a, inbox, 10)
    assert batching.schedule_batch(tenant_a.workspace.pk, inbox.pk, "in_app")
    assert not batching.schedule_batch(tenant_a.workspace.pk, inbox.pk, "in_app")  # one on its way
    with workspace_scope(tenant_a.workspace):
        result = batching.run_batches(tenant_a.workspace, inbox.pk, "task-1")
    assert result == {"rounds": 4, "sent": 10, "recovered": 0}  # 4 + 4 + 2, then nothing claimed
    assert statuses(deliveries) == {DeliveryStatus.DELIVERED: 10}
    # The first one, and the one the full first claim brought in (slot 1, still on its way).
    assert _published_slots(broker, "in_app") == [0, 1]
    assert not batching.schedule_batch(tenant_a.workspace.pk, inbox.pk, "in_app")
    cache.delete(batching.batch_key(inbox.pk, 1))  # that one ran (and found nothing)
    assert batching.schedule_batch(tenant_a.workspace.pk, inbox.pk, "in_app")  # no slot held


@pytest.mark.django_db
def test_a_backlog_brings_in_batch_tasks_up_to_the_limit(tenant_a, inbox, broker, settings):
    settings.ULAK_SEND_BATCH_TASKS = 3
    ws = tenant_a.workspace.pk
    assert batching.schedule_batch(ws, inbox.pk, "in_app")
    for _ in range(4):  # each running task whose claim is full asks for one more: 3 slots in all
        batching.schedule_batch(ws, inbox.pk, "in_app", spread=True)
    assert _published_slots(broker, "in_app") == [0, 1, 2]
    cache.delete(batching.batch_key(inbox.pk, 0))
    # New deliveries publish nothing while any task of the configuration is on its way.
    assert not batching.schedule_batch(ws, inbox.pk, "in_app")
    assert batching.schedule_batch(ws, inbox.pk, "in_app", spread=True)  # a free slot for a backlog
    assert _published_slots(broker, "in_app") == [0, 0, 1, 2]


@pytest.mark.django_db
def test_a_batch_task_out_of_time_publishes_the_next_one(tenant_a, inbox, broker, settings):
    settings.ULAK_SEND_BATCH_SIZE = 3
    settings.ULAK_SEND_BATCH_SECONDS = 0
    deliveries = campaign_deliveries(tenant_a, inbox, 7)
    with workspace_scope(tenant_a.workspace):
        result = batching.run_batches(tenant_a.workspace, inbox.pk, "task-1")
    # The time is checked before every call: one call, then the rest of the claim goes back.
    assert result == {"rounds": 1, "sent": 1, "recovered": 0}
    assert statuses(deliveries) == {DeliveryStatus.DELIVERED: 1, DeliveryStatus.QUEUED: 6}
    assert set(Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries[1:3]]).values_list("attempts", flat=True)) == {0}
    assert _published_slots(broker, "in_app") == [0]  # its own slot is free again: its successor takes it


@pytest.mark.django_db
def test_the_sweep_schedules_one_batch_per_configuration_and_single_tasks_for_the_rest(
        tenant_a, tenant_b, inbox, broker, django_capture_on_commit_callbacks):
    other = ChannelConfigFactory(workspace=tenant_b.workspace, type="in_app", provider="inbox", is_default=True)
    later = timezone.now() + timedelta(minutes=5)
    mine = campaign_deliveries(tenant_a, inbox, 4, send_at=later)
    theirs = campaign_deliveries(tenant_b, other, 2, send_at=later)
    person = ProfileFactory(workspace=tenant_a.workspace)
    receipt, _ = queue_delivery(tenant_a.workspace, channel="in_app", source="transactional", profile=person,
                                content={"body": "receipt"}, send_at=later)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_deliveries() == {"enqueued": 0}
    Delivery.unscoped.filter(pk__in=[d.pk for d in mine + theirs] + [receipt.pk]).update(
        send_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_deliveries() == {"enqueued": 3}
    assert sorted(_published(broker, "in_app")) == ["in_app.send_batch", "in_app.send_batch",
                                                    "in_app.send_delivery"]
    # A dead claim of a batched delivery brings its configuration's batch task too.
    broker.flushdb()
    cache.delete(batching.batch_key(inbox.pk))
    cache.delete(batching.batch_key(other.pk))
    Delivery.unscoped.filter(pk__in=[d.pk for d in theirs]).update(status="sent")
    Delivery.unscoped.filter(pk=receipt.pk).update(status="sent")
    Delivery.unscoped.filter(pk__in=[d.pk for d in mine]).update(
        status="sending", claim_token="dead", claimed_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_deliveries() == {"enqueued": 1}
    assert _published(broker, "in_app") == ["in_app.send_batch"]


# --- after a worker died --------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_redelivered_batch_task_takes_its_own_rows_back_one_at_a_time(tenant_a, inbox, broker):
    deliveries = campaign_deliveries(tenant_a, inbox, 6)
    taken, _ = batching.claim(tenant_a.workspace, inbox.pk, "task-1", 6)
    assert len(taken) == 6
    # The worker died while the second sub-batch's provider calls were under way.
    Delivery.unscoped.filter(pk__in=taken[:2]).update(send_started_at=timezone.now())
    with workspace_scope(tenant_a.workspace):
        result = batching.run_batches(tenant_a.workspace, inbox.pk, "task-1")
    assert result["recovered"] == 6
    rows = {row.pk: row for row in Delivery.unscoped.filter(pk__in=taken)}
    for pk in taken[:2]:
        assert rows[pk].status == DeliveryStatus.FAILED and rows[pk].failure_reason.startswith("outcome unknown")
        assert rows[pk].attempts == 1
    for pk in taken[2:]:
        assert rows[pk].status == DeliveryStatus.DELIVERED and rows[pk].attempts == 2
    assert statuses(deliveries) == {DeliveryStatus.DELIVERED: 4, DeliveryStatus.FAILED: 2}


@pytest.mark.django_db
def test_a_live_batch_claim_is_never_taken_by_another_task(tenant_a, inbox):
    deliveries = campaign_deliveries(tenant_a, inbox, 3)
    batching.claim(tenant_a.workspace, inbox.pk, "live", 3)
    with workspace_scope(tenant_a.workspace):
        result = batching.run_batches(tenant_a.workspace, inbox.pk, "another")
    assert result == {"rounds": 1, "sent": 0, "recovered": 0}
    assert statuses(deliveries) == {DeliveryStatus.SENDING: 3}


@pytest.mark.django_db
def test_long_batches_renew_their_claim_per_sub_batch(tenant_a, inbox, settings):
    settings.ULAK_SEND_SUB_BATCH_SIZE = 2
    deliveries = campaign_deliveries(tenant_a, inbox, 5)
    with time_machine.travel(T0, tick=False):
        taken, _ = batching.claim(tenant_a.workspace, inbox.pk, "t", 5)
    later = T0 + timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS - 1)
    with time_machine.travel(later, tick=False):
        from channels.sending import mark_started

        started, held = mark_started(tenant_a.workspace.pk, "t", taken[:2], holding=taken[2:])
    assert started == set(taken[:2]) and held == set(taken[2:])
    claimed = set(Delivery.unscoped.filter(pk__in=taken).values_list("claimed_at", flat=True))
    assert claimed == {later}
    assert statuses(deliveries) == {DeliveryStatus.SENDING: 5}


@pytest.mark.django_db
def test_sent_events_carry_the_providers_answer_time_not_the_next_sub_batchs(tenant_a, inbox, settings):
    """A sub-batch's results are written with the next sub-batch's started marker (one commit);
    their time is still when the provider answered each call."""
    settings.ULAK_SEND_SUB_BATCH_SIZE = 2
    deliveries = campaign_deliveries(tenant_a, inbox, 4)
    run_batch(tenant_a, inbox)
    rows = list(Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).order_by("pk"))
    assert [row.status for row in rows] == [DeliveryStatus.DELIVERED] * 4
    next_marker = rows[2].send_started_at
    for row in rows[:2]:
        assert row.send_started_at <= row.sent_at < next_marker
    for row in rows:
        event = DeliveryEvent.unscoped.get(delivery=row, kind="sent")
        assert event.at == row.sent_at


@pytest.mark.django_db
def test_a_batch_reads_the_workspaces_snippets_once(tenant_a, inbox):
    from channels.content.services import create_snippet

    create_snippet(workspace=tenant_a.workspace, name="sign", value="-- {{ customer.id }}'s team")
    deliveries = campaign_deliveries(tenant_a, inbox, 5, body="Hello {{ snippets.sign }}")
    with CaptureQueriesContext(connection) as queries:
        run_batch(tenant_a, inbox)
    assert len([q for q in queries if '"channels_snippet"' in q["sql"] or "campaigns_snippet" in q["sql"]]) == 1
    bodies = dict(Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("profile__external_id",
                                                                                           "body"))
    assert bodies == {pid: f"Hello -- {pid}'s team" for pid in bodies} and len(bodies) == 5


@pytest.mark.django_db
def test_batch_feedback_refuses_a_delivery_of_another_workspace_and_writes_nothing(tenant_a, tenant_b):
    """The batch's rows are locked by primary key alone (planner-proof); their workspace is checked."""
    from channels.feedback import EventEntry, record_delivery_events

    other = ChannelConfigFactory(workspace=tenant_b.workspace, type="in_app", provider="inbox", is_default=True)
    [theirs] = campaign_deliveries(tenant_b, other, 1)
    with pytest.raises(ValueError, match="not in workspace"):
        record_delivery_events(tenant_a.workspace, [EventEntry(theirs, "failed", {"reason": "wrong workspace"})])
    assert Delivery.unscoped.get(pk=theirs.pk).status == DeliveryStatus.QUEUED
    assert not DeliveryEvent.unscoped.filter(delivery=theirs, kind="failed").exists()


# --- what a delivery costs ------------------------------------------------------------------------

def _statements(callable_) -> int:
    with CaptureQueriesContext(connection) as captured:
        callable_()
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_a_batched_delivery_costs_far_fewer_statements_than_a_single_one(tenant_a, email, smtp):
    topic = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="news", name="News")
    ReportingWebhook.unscoped.create(workspace=tenant_a.workspace, name="r", url="https://hooks.example.test/r")
    singles = campaign_deliveries(tenant_a, email, 10, topic=topic)

    def send_singles():
        with workspace_scope(tenant_a.workspace):
            for delivery in singles:
                assert deliver(delivery.pk).result == "sent"

    per_single = _statements(send_singles) / len(singles)
    per_batch = {}
    for size in (10, 50):
        deliveries = campaign_deliveries(tenant_a, email, size, topic=topic)
        per_batch[size] = _statements(lambda: run_batch(tenant_a, email, size=size)) / size
        assert statuses(deliveries) == {DeliveryStatus.SENT: size}
    print(f"statements per delivery: single {per_single:.1f}, batch of 10 {per_batch[10]:.1f}, "
          f"batch of 50 {per_batch[50]:.1f}")
    assert per_single >= 10
    assert per_batch[10] <= 4 and per_batch[10] <= per_single / 3
    assert per_batch[50] <= 2.5 and per_batch[50] <= per_single / 5
