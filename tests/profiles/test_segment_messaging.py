"""Segment conditions on messaging: "subscribed to topic" (channel condition) and message conditions
(sent/delivered/opened/clicked/converted/bounced/failed), checked in SQL and against the reference;
validation paths, dependencies, live upkeep equal to a full recompute, and workspace isolation."""

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.services import create_transactional_message
from channels.consent import record_consent
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import Delivery, SubscriptionPreference, SubscriptionTopic
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory, WorkspaceFactory
from core.errors import InvalidInput
from profiles.models import SegmentMembership
from profiles.segments import services
from profiles.segments.conditions import depends_on, matching, validate
from profiles.segments.reference import evaluate

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
TIMES = ("sent_at", "delivered_at", "opened_at", "clicked_at", "converted_at", "failed_at")


@pytest.fixture
def ws(db):
    workspace = WorkspaceFactory()
    SubscriptionTopic.unscoped.create(workspace=workspace, key="news", name="News", default_subscribed=True)
    SubscriptionTopic.unscoped.create(workspace=workspace, key="promo", name="Promotions", default_subscribed=False)
    return workspace


def topic(ws, key):
    return SubscriptionTopic.unscoped.get(workspace=ws, key=key)


def prefer(ws, profile, key, subscribed, channel=""):
    SubscriptionPreference.unscoped.create(workspace=ws, profile=profile, channel=channel,
                                           topic=topic(ws, key) if key else None, subscribed=subscribed,
                                           source="api")


def snapshot(ws, profile):
    """The reference evaluator's view of the person: (person, events, objects, memberships) and
    keyword arguments (deliveries, topics)."""
    prefs = SubscriptionPreference.unscoped.filter(workspace=ws, profile=profile, channel="", topic__isnull=False)
    person = {
        "email": profile.email, "phone": profile.phone, "external_id": profile.external_id,
        "cio_id": profile.cio_id, "attributes": profile.attributes, "unsubscribed": profile.unsubscribed,
        "suppressed": profile.suppressed, "created_at": profile.created_at, "devices": 0,
        "topic_preferences": {p.topic.key: p.subscribed for p in prefs.select_related("topic")},
    }
    deliveries = list(Delivery.unscoped.filter(workspace=ws, profile=profile).values(
        "channel", "source", "source_id", "status", *TIMES))
    topics = dict(SubscriptionTopic.unscoped.filter(workspace=ws).values_list("key", "default_subscribed"))
    return (person, [], [], set()), {"deliveries": deliveries, "topics": topics}


def matches(ws, tree, profile, now=NOW):
    """Whether `profile` matches, asserting SQL and the reference agree."""
    in_sql = matching(ws, tree, now=now).filter(pk=profile.pk).exists()
    args, kwargs = snapshot(ws, profile)
    assert in_sql == evaluate(tree, *args, now, **kwargs), f"SQL says {in_sql}, reference disagrees: {tree}"
    return in_sql


def subscribed_to(key):
    return {"channel": {"subscribed_to_topic": key}}


# --- subscribed to topic -------------------------------------------------------------------------

TOPIC_CASES = [
    # (profile fields, preferences [(topic, subscribed, channel)], topic, expected)
    ({}, [], "news", True),                                         # opt-out topic: in until they say no
    ({}, [], "promo", False),                                       # opt-in topic: out until they say yes
    ({}, [("news", False, "")], "news", False),
    ({}, [("promo", True, "")], "promo", True),
    ({}, [("promo", True, ""), ("news", False, "")], "news", False),  # each topic its own preference
    ({}, [("news", False, "email")], "news", True),                 # a channel-specific choice does not count
    ({}, [("promo", True, "sms")], "promo", False),
    ({}, [(None, False, "email")], "news", True),                   # nor does leaving a whole channel
    ({"unsubscribed": True}, [("promo", True, "")], "promo", False),  # unsubscribed from everything
    ({"unsubscribed": True}, [], "news", False),
    ({"suppressed": True}, [], "news", True),                       # suppression is a separate condition
    ({}, [], "gone", False),                                        # no such topic (deleted since): nobody
    ({}, [("news", True, "")], "gone", False),
]


@pytest.mark.parametrize("fields,preferences,key,expected", TOPIC_CASES)
def test_subscribed_to_topic(ws, fields, preferences, key, expected):
    profile = ProfileFactory(workspace=ws, **fields)
    for topic_key, subscribed, channel in preferences:
        prefer(ws, profile, topic_key, subscribed, channel)
    assert matches(ws, subscribed_to(key), profile) is expected
    assert matches(ws, {"not": subscribed_to(key)}, profile) is not expected


def test_a_topics_default_decides_for_everyone_without_a_preference(ws):
    undecided, opted_out = ProfileFactory(workspace=ws), ProfileFactory(workspace=ws)
    prefer(ws, opted_out, "news", False)
    assert set(matching(ws, subscribed_to("news"), now=NOW)) == {undecided}
    SubscriptionTopic.unscoped.filter(workspace=ws, key="news").update(default_subscribed=False)
    assert set(matching(ws, subscribed_to("news"), now=NOW)) == set()
    SubscriptionTopic.unscoped.filter(workspace=ws, key="news").delete()  # preferences go with it
    assert set(matching(ws, {"not": subscribed_to("news")}, now=NOW)) == {undecided, opted_out}


def test_another_workspaces_topic_and_preferences_never_count(ws):
    other = WorkspaceFactory()
    SubscriptionTopic.unscoped.create(workspace=other, key="local", name="Local", default_subscribed=True)
    mine = ProfileFactory(workspace=ws)
    theirs = ProfileFactory(workspace=other)
    # A preference row of the other workspace that wrongly points at my person, for my topic.
    SubscriptionPreference.unscoped.create(workspace=other, profile=mine, channel="", topic=topic(ws, "promo"),
                                           subscribed=True, source="api")
    assert not matches(ws, subscribed_to("promo"), mine)
    assert set(matching(ws, subscribed_to("local"), now=NOW)) == set()  # not a topic of this workspace
    assert set(matching(other, subscribed_to("local"), now=NOW)) == {theirs}


# --- message conditions --------------------------------------------------------------------------

@pytest.fixture
def welcome(ws):
    return create_transactional_message(workspace=ws, name="welcome", channel="email", subject="Hi")


def delivery(profile, *, channel="email", source="transactional", source_id="", status="sent", **fields):
    return Delivery.unscoped.create(workspace=profile.workspace, profile=profile, channel=channel, source=source,
                                    source_id=source_id, status=status, recipient="x",
                                    idempotency_key=f"k{Delivery.unscoped.count()}", **fields)


def msg(action, **spec):
    return {"message": {"action": action, **spec}}


def test_each_action_is_its_timestamp(ws):
    at = NOW - timedelta(days=1)
    sent = delivery(ProfileFactory(workspace=ws), sent_at=at)
    opened = delivery(ProfileFactory(workspace=ws), status="opened", sent_at=at, delivered_at=at, opened_at=at)
    clicked = delivery(ProfileFactory(workspace=ws), status="clicked", sent_at=at, opened_at=at, clicked_at=at)
    converted = delivery(ProfileFactory(workspace=ws), status="converted", sent_at=at, converted_at=at)
    bounced = delivery(ProfileFactory(workspace=ws), status="bounced", sent_at=at, failed_at=at)
    failed = delivery(ProfileFactory(workspace=ws), status="failed", failed_at=at)
    undeliverable = delivery(ProfileFactory(workspace=ws), status="undeliverable", failed_at=at)
    queued = delivery(ProfileFactory(workspace=ws), status="queued")
    rows = (sent, opened, clicked, converted, bounced, failed, undeliverable, queued)

    def who(action):
        return [row for row in rows if matches(ws, msg(action), row.profile)]

    assert who("sent") == [sent, opened, clicked, converted, bounced]
    assert who("delivered") == [opened]
    assert who("opened") == [opened, clicked]
    assert who("clicked") == [clicked]
    assert who("converted") == [converted]
    assert who("bounced") == [bounced]
    assert who("failed") == [failed, undeliverable]
    assert [row for row in rows if matches(ws, {"not": msg("sent")}, row.profile)] == [failed, undeliverable, queued]


def test_which_message(ws, welcome):
    at = NOW - timedelta(hours=2)
    other_message = create_transactional_message(workspace=ws, name="reset", channel="email")
    got_welcome = delivery(ProfileFactory(workspace=ws), source_id=str(welcome.pk), sent_at=at)
    got_reset = delivery(ProfileFactory(workspace=ws), source_id=str(other_message.pk), sent_at=at)
    campaign_7 = delivery(ProfileFactory(workspace=ws), source="campaign", source_id="7", sent_at=at)
    broadcast_7 = delivery(ProfileFactory(workspace=ws), source="broadcast", source_id="7", sent_at=at)
    rows = (got_welcome, got_reset, campaign_7, broadcast_7)

    def who(tree):
        return [row for row in rows if matches(ws, tree, row.profile)]

    assert who(msg("sent", transactional_message_id=welcome.pk)) == [got_welcome]
    assert who(msg("sent", campaign_id=7)) == [campaign_7]          # the number is the id's text
    assert who(msg("sent", campaign_id="7")) == [campaign_7]
    assert who(msg("sent", broadcast_id="7")) == [broadcast_7]
    assert who(msg("sent", campaign_id="8")) == []
    assert who(msg("sent")) == list(rows)                             # any message
    # A transactional message is the delivery's source and source_id: a campaign with the same id is not it.
    same_id = delivery(ProfileFactory(workspace=ws), source="campaign", source_id=str(welcome.pk), sent_at=at)
    assert not matches(ws, msg("sent", transactional_message_id=welcome.pk), same_id.profile)
    assert matches(ws, msg("sent", campaign_id=welcome.pk), same_id.profile)


def test_channel_and_window(ws):
    person = ProfileFactory(workspace=ws)
    delivery(person, channel="sms", status="delivered", sent_at=NOW - timedelta(days=3),
             delivered_at=NOW - timedelta(days=3))
    delivery(person, channel="email", sent_at=NOW - timedelta(minutes=30))
    assert matches(ws, msg("delivered", channel="sms"), person)
    assert not matches(ws, msg("delivered", channel="email"), person)
    assert matches(ws, msg("sent", within={"value": 1, "unit": "hours"}), person)
    assert not matches(ws, msg("sent", channel="sms", within={"value": 2, "unit": "days"}), person)
    assert matches(ws, msg("sent", channel="sms", within={"value": 3, "unit": "days"}), person)  # inclusive
    assert not matches(ws, msg("delivered", within={"value": 20, "unit": "minutes"}), person)


def test_a_future_timestamp_is_not_within_a_window(ws):
    person = ProfileFactory(workspace=ws)
    delivery(person, sent_at=NOW + timedelta(hours=1))
    assert not matches(ws, msg("sent", within={"value": 7, "unit": "days"}), person)
    assert matches(ws, msg("sent"), person)


def test_deliveries_of_no_one_or_of_another_workspace_never_count(ws):
    person = ProfileFactory(workspace=ws)
    other = WorkspaceFactory()
    Delivery.unscoped.create(workspace=ws, profile=None, channel="email", source="transactional",
                             recipient=person.email or "x", sent_at=NOW, idempotency_key="k1")
    # A corrupt row: workspace B's delivery pointing at this workspace's person.
    Delivery.unscoped.create(workspace=other, profile=person, channel="email", source="transactional",
                             recipient="x", sent_at=NOW, idempotency_key="k2")
    assert not matches(ws, msg("sent"), person)
    assert set(matching(other, msg("sent"), now=NOW)) == set()


def test_messages_topics_and_everything_else_are_one_query(ws, welcome):
    reader = ProfileFactory(workspace=ws, attributes={"plan": "pro"})
    delivery(reader, source_id=str(welcome.pk), status="opened", sent_at=NOW, opened_at=NOW)
    tree = {"and": [{"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
                    msg("opened", transactional_message_id=welcome.pk, within={"value": 1, "unit": "days"}),
                    {"not": msg("clicked")}, subscribed_to("news"), {"not": subscribed_to("promo")}]}
    with CaptureQueriesContext(connection) as queries:
        found = list(matching(ws, tree, now=NOW))
    assert len(queries) == 1 and found == [reader]


# --- validation and dependencies -------------------------------------------------------------------

@pytest.mark.parametrize("tree,path", [
    ({"message": {}}, "conditions.message.action"),
    (msg("read"), "conditions.message.action"),
    (msg("sent", campaign_id="1", broadcast_id="2"), "conditions.message.broadcast_id"),
    (msg("sent", transactional_message_id="abc"), "conditions.message.transactional_message_id"),
    (msg("sent", transactional_message_id=0), "conditions.message.transactional_message_id"),
    (msg("sent", transactional_message_id=True), "conditions.message.transactional_message_id"),
    (msg("sent", campaign_id=""), "conditions.message.campaign_id"),
    (msg("sent", campaign_id=["7"]), "conditions.message.campaign_id"),
    (msg("sent", campaign_id="x" * 65), "conditions.message.campaign_id"),
    (msg("sent", channel="fax"), "conditions.message.channel"),
    (msg("sent", within={"value": 0, "unit": "days"}), "conditions.message.within.value"),
    (msg("sent", within={"value": 1, "unit": "weeks"}), "conditions.message.within.unit"),
    (msg("sent", within=3), "conditions.message.within"),
    (msg("sent", message_id=3), "conditions.message.message_id"),
    ({"and": [{"not": msg("clicked", operator="not_performed")}]}, "conditions.and.0.not.message.operator"),
    ({"message": "sent"}, "conditions.message"),
    ({"channel": {"subscribed_to_topic": ""}}, "conditions.channel.subscribed_to_topic"),
    ({"channel": {"subscribed_to_topic": "has space"}}, "conditions.channel.subscribed_to_topic"),
    ({"channel": {"subscribed_to_topic": ["news"]}}, "conditions.channel.subscribed_to_topic"),
    ({"channel": {"subscribed_to_topic": "news", "has": "email"}}, "conditions.channel"),
    ({"channel": {"topic": "news"}}, "conditions.channel.topic"),
])
def test_validation_errors_name_the_path(tree, path):
    with pytest.raises(InvalidInput) as caught:
        validate(tree)
    assert caught.value.field == path


def test_topics_and_transactional_messages_must_exist_in_the_workspace(ws, welcome):
    other = WorkspaceFactory()
    foreign = create_transactional_message(workspace=other, name="theirs", channel="email")
    SubscriptionTopic.unscoped.create(workspace=other, key="local", name="Local")
    cases = [
        ({"or": [subscribed_to("news"), subscribed_to("nope")]}, "conditions.or.1.channel.subscribed_to_topic"),
        (subscribed_to("local"), "conditions.channel.subscribed_to_topic"),
        ({"not": msg("sent", transactional_message_id=foreign.pk)}, "conditions.not.message.transactional_message_id"),
    ]
    for tree, path in cases:
        with pytest.raises(InvalidInput, match="no (subscription topic|transactional message)") as caught:
            validate(tree, workspace=ws)
        assert caught.value.field == path
        with workspace_scope(ws), pytest.raises(InvalidInput):  # the workspace in scope is used by default
            validate(tree)
        validate(tree)  # no workspace anywhere: only the form is checked
    assert validate(msg("sent", transactional_message_id=str(welcome.pk)), workspace=ws) == msg(
        "sent", transactional_message_id=welcome.pk)
    with pytest.raises(InvalidInput) as caught:
        services.create_segment(workspace=ws, name="Readers", kind="data", conditions=subscribed_to("nope"))
    assert caught.value.field == "conditions.channel.subscribed_to_topic"


def test_validate_normalizes():
    assert validate(msg("clicked", campaign_id=12, channel="email")) == msg("clicked", campaign_id="12",
                                                                            channel="email")
    assert validate(msg("sent", within={"value": 2, "unit": "days", "extra": 1})) == msg(
        "sent", within={"value": 2, "unit": "days"})
    assert validate(subscribed_to("news")) == subscribed_to("news")


def test_depends_on():
    assert depends_on(validate(msg("opened"))) == {"messages"}
    assert depends_on(validate(msg("opened", within={"value": 1, "unit": "days"}))) == {"messages", "time"}
    assert depends_on(validate({"and": [subscribed_to("news"), {"not": subscribed_to("promo")}]})) == {
        "channels", "topics:news", "topics:promo"}


# --- live upkeep -------------------------------------------------------------------------------------

def members(segment) -> set[int]:
    return set(SegmentMembership.unscoped.filter(segment=segment, exited_at__isnull=True).values_list(
        "profile_id", flat=True))


def full_recompute(segment) -> set[int]:
    segment.refresh_from_db()
    return set(matching(segment.workspace, segment.conditions).values_list("pk", flat=True))


def data_segment(ws, name, tree):
    segment = services.create_segment(workspace=ws, name=name, kind="data", conditions=tree)
    services.recompute(segment)
    return segment


def test_consent_and_delivery_feedback_keep_segments_live_as_a_full_recompute_would(ws, welcome):
    ChannelConfigFactory(workspace=ws, type="email", provider="smtp", is_default=True)
    ann = ProfileFactory(workspace=ws, email="ann@example.test")
    bob = ProfileFactory(workspace=ws, email="bob@example.test")
    segments = [
        data_segment(ws, "News readers", subscribed_to("news")),
        data_segment(ws, "Promo", subscribed_to("promo")),
        data_segment(ws, "Opened welcome", msg("opened", transactional_message_id=welcome.pk)),
        data_segment(ws, "Sent, never clicked", {"and": [msg("sent"), {"not": msg("clicked")}]}),
        data_segment(ws, "Opened this week", msg("opened", within={"value": 7, "unit": "days"})),
    ]
    news, promo, opened_welcome, unclicked, opened_recently = segments

    def check():
        for segment in segments:
            assert members(segment) == full_recompute(segment), segment.name

    assert members(news) == {ann.pk, bob.pk} and members(promo) == set()
    record_consent(ws, ann, subscribed=False, source="preferences_page", topic=topic(ws, "news"))
    record_consent(ws, bob, subscribed=True, source="preferences_page", topic=topic(ws, "promo"))
    assert members(news) == {bob.pk} and members(promo) == {bob.pk}
    check()
    record_consent(ws, bob, subscribed=False, source="unsubscribe_link")  # from everything
    assert members(news) == members(promo) == set()
    check()

    sent, _ = queue_delivery(ws, channel="email", source="transactional", profile=ann, source_id=welcome.pk)
    assert members(unclicked) == set()  # queued is not sent
    record_delivery_event(sent, "sent")
    assert members(unclicked) == {ann.pk} and members(opened_welcome) == set()
    record_delivery_event(sent, "opened")
    assert members(opened_welcome) == members(opened_recently) == {ann.pk}
    record_delivery_event(sent, "clicked", data={"href": "https://example.test"})
    assert members(unclicked) == set()
    check()


def test_a_change_to_a_topic_itself_recomputes_the_segments_using_it(ws, broker, django_capture_on_commit_callbacks):
    ann = ProfileFactory(workspace=ws)
    news = data_segment(ws, "News", subscribed_to("news"))
    data_segment(ws, "Promo", subscribed_to("promo"))
    data_segment(ws, "Email", {"channel": {"has": "email"}})
    assert members(news) == {ann.pk}
    with django_capture_on_commit_callbacks(execute=True):
        scheduled = services.recompute_dependents(ws, "topics:news")
    assert scheduled == [news.pk]
    [message] = broker.lrange("segments", 0, -1)
    body = json.loads(base64.b64decode(json.loads(message)["body"]))
    assert body[1] == {"workspace_id": ws.pk, "segment_id": news.pk, "version": news.version}
    # What that recompute then finds, once the topic became opt-in:
    SubscriptionTopic.unscoped.filter(workspace=ws, key="news").update(default_subscribed=False)
    services.recompute(news)
    assert members(news) == set()
