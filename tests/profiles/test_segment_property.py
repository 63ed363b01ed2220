"""Property: on random small data and random condition trees, the SQL evaluation (`matching`) finds
exactly the people the plain-Python reference (profiles/segments/reference.py) accepts.

Each example writes six people (attributes, channels, events, relationships, memberships, topic
preferences, deliveries) plus noise in a second workspace inside a transaction that is rolled back
afterwards."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.services import create_transactional_message
from channels.models import Delivery, SubscriptionPreference, SubscriptionTopic
from tests.support.factories import WorkspaceFactory
from profiles.models import CustomObject, Device, Event, ObjectType, Profile, Relationship, Segment, SegmentMembership
from profiles.segments.conditions import matching
from profiles.segments.reference import evaluate

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
NOW_S = int(NOW.timestamp())
DAY = 86400

FIELDS = ["plan", "age", "seen", "tags"]
VALUES = [
    "pro", "basic", "", "Pro plan", "30", "x", 30, 2.5, -1, 0, True, False, ["a", "b"], ["b"], {"k": 1},
    NOW_S - 3 * DAY, NOW_S + 2 * DAY, "2026-06-10", "2026-06-15T10:00:00+02:00", "1990-06-15", "2026-02-30",
]
CONDITION_VALUES = {
    "eq": ["pro", "", 30, "30", True, 2.5], "neq": ["pro", 30, False],
    "contains": ["a", "pro", "b"], "starts_with": ["Pro", "3", "2026-06"],
    "gt": [0, 29.5, "2026-06-01", NOW_S], "gte": [30, -1], "lt": [1, "2026-06-14T00:00:00Z"], "lte": [2.5, 0],
    "in": [["pro", "basic"], [30, "x"], [True, 0]],
    "within_last_days": [1, 7], "within_next_days": [3], "exists": [None], "not_exists": [None], "anniversary": [None],
}
# A delivery's status and its action times (as offsets before NOW; negative is in the future).
DELIVERY_STATES = {
    "queued": {},
    "sent": {"sent_at": timedelta(minutes=5)},
    "opened": {"sent_at": timedelta(days=2), "delivered_at": timedelta(days=2), "opened_at": timedelta(hours=3)},
    "clicked": {"sent_at": timedelta(days=20), "opened_at": timedelta(days=20), "clicked_at": -timedelta(hours=1)},
    "bounced": {"sent_at": timedelta(days=2), "failed_at": timedelta(hours=20)},
    "undeliverable": {"failed_at": timedelta(minutes=5)},
    "converted": {"sent_at": timedelta(hours=3), "converted_at": timedelta(hours=2)},
}
DELIVERY_TIMES = ("sent_at", "delivered_at", "opened_at", "clicked_at", "converted_at", "failed_at")
EVENT_NAMES = ["buy", "view"]
DATA_FIELDS = ["total", "kind"]
OFFSETS = [timedelta(minutes=5), timedelta(hours=3), timedelta(days=2), timedelta(days=20), -timedelta(hours=1)]


def filter_spec(fields):
    return st.sampled_from(sorted(CONDITION_VALUES)).flatmap(lambda op: st.builds(
        lambda field, value: {"field": field, "operator": op, **({} if value is None else {"value": value})},
        st.sampled_from(fields), st.sampled_from(CONDITION_VALUES[op])))


attribute_leaf = filter_spec(FIELDS + ["email", "id"]).map(lambda spec: {"attribute": spec})
event_leaf = st.builds(
    lambda name, operator, count, window, filters: {"event": {
        "name": name, "operator": operator, "count": count, "filters": filters, **window}},
    st.sampled_from(EVENT_NAMES), st.sampled_from(["performed", "not_performed"]),
    st.sampled_from([{"operator": "at_least", "value": 1}, {"operator": "at_least", "value": 2},
                     {"operator": "at_most", "value": 1}, {"operator": "exactly", "value": 0}]),
    st.sampled_from([{}, {"within": {"value": 1, "unit": "days"}}, {"within": {"value": 90, "unit": "minutes"}},
                     {"between": ["2026-06-01", "2026-06-14T00:00:00Z"]}]),
    st.lists(filter_spec(DATA_FIELDS), max_size=2),
)
object_leaf = st.builds(
    lambda type_id, filters, rel: {"object": {"object_type_id": type_id, "filters": filters,
                                              "relationship_filters": rel}},
    st.sampled_from(["1", "2"]), st.lists(filter_spec(["size"]), max_size=1),
    st.lists(filter_spec(["role"]), max_size=1),
)
segment_leaf = st.sampled_from(["member", "not_member"]).map(lambda op: {"segment": {"id": "SEGMENT", "operator": op}})
channel_leaf = st.sampled_from([{"channel": {"has": "email"}}, {"channel": {"has": "push_device"}},
                                {"channel": {"subscribed": True}}, {"channel": {"not_suppressed": True}}])
topic_leaf = st.sampled_from(["news", "promo", "gone"]).map(lambda key: {"channel": {"subscribed_to_topic": key}})
message_leaf = st.builds(
    lambda action, selector, channel, window: {"message": {"action": action, **selector, **channel, **window}},
    st.sampled_from(["sent", "delivered", "opened", "clicked", "converted", "bounced", "failed"]),
    st.sampled_from([{}, {"transactional_message_id": "TM"}, {"campaign_id": "7"}, {"campaign_id": 8},
                     {"broadcast_id": "7"}]),
    st.sampled_from([{}, {"channel": "email"}, {"channel": "sms"}]),
    st.sampled_from([{}, {"within": {"value": 1, "unit": "days"}}, {"within": {"value": 90, "unit": "minutes"}}]),
)
trees = st.recursive(
    st.one_of(attribute_leaf, attribute_leaf, event_leaf, object_leaf, segment_leaf, channel_leaf, topic_leaf,
              message_leaf),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"and": xs}),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"or": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=6,
)
# Trees of mostly messaging leaves, so their combinations are explored more often.
messaging_trees = st.recursive(
    st.one_of(topic_leaf, message_leaf, message_leaf, channel_leaf),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"and": xs}),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"or": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=4,
)


def people(min_deliveries=0):
    """Six people; with `min_deliveries`, each has at least that many deliveries."""
    return st.lists(st.fixed_dictionaries({
        "attributes": st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(VALUES), max_size=4),
        "email": st.sampled_from([None, "pro", "Other"]),
        "unsubscribed": st.booleans(), "suppressed": st.booleans(), "device": st.booleans(),
        "events": st.lists(st.tuples(st.sampled_from(EVENT_NAMES), st.sampled_from(OFFSETS),
                                     st.dictionaries(st.sampled_from(DATA_FIELDS), st.sampled_from(VALUES),
                                                     max_size=2)),
                           max_size=4),
        "objects": st.lists(st.tuples(st.integers(0, 2), st.sampled_from([{}, {"role": "pro"}, {"role": 30}])),
                            max_size=2, unique_by=lambda t: t[0]),
        "membership": st.sampled_from([None, "open", "exited"]),
        "preferences": st.lists(st.tuples(st.sampled_from(["news", "promo"]), st.sampled_from(["", "email"]),
                                          st.booleans()), max_size=3, unique_by=lambda t: t[:2]),
        "deliveries": st.lists(st.tuples(st.sampled_from(["email", "sms"]),
                                         st.sampled_from([("transactional", "TM"), ("transactional", ""),
                                                          ("campaign", "7"), ("campaign", "8"), ("campaign", "TM"),
                                                          ("broadcast", "7")]),
                                         st.sampled_from(sorted(DELIVERY_STATES))),
                               min_size=min_deliveries, max_size=3),
    }), min_size=6, max_size=6)


people_data = people()


@pytest.fixture
def world(db):
    ws, other = WorkspaceFactory(), WorkspaceFactory()
    types = [ObjectType.unscoped.create(workspace=ws, type_id=type_id, name=type_id) for type_id in ("1", "2")]
    objects = [
        CustomObject.unscoped.create(workspace=ws, object_type=types[0], object_id="big", attributes={"size": 30}),
        CustomObject.unscoped.create(workspace=ws, object_type=types[0], object_id="new", attributes={"size": "x"}),
        CustomObject.unscoped.create(workspace=ws, object_type=types[1], object_id="p", attributes={}),
    ]
    segment = Segment.unscoped.create(workspace=ws, name="S", conditions={})
    topics = {key: SubscriptionTopic.unscoped.create(workspace=ws, key=key, name=key, default_subscribed=default)
              for key, default in (("news", True), ("promo", False))}
    # The other workspace has a "gone" topic; this one does not.
    SubscriptionTopic.unscoped.create(workspace=other, key="gone", name="gone", default_subscribed=True)
    message = create_transactional_message(workspace=ws, name="welcome", channel="email")
    return ws, other, objects, segment, topics, message


def with_ids(node, ids):
    """The tree with its placeholders ("SEGMENT", "TM") replaced by the example's ids."""
    if isinstance(node, dict):
        return {k: (ids[v] if isinstance(v, str) and v in ids else with_ids(v, ids)) for k, v in node.items()}
    if isinstance(node, list):
        return [with_ids(child, ids) for child in node]
    return node


def populate(ws, other, objects, segment, topics, message, data):
    """Write the people; return reference snapshots keyed by profile id."""
    snapshots = {}
    for i, row in enumerate(data):
        email = row["email"] and f"{row['email']}{i}@x.test"
        profile = Profile.unscoped.create(workspace=ws, external_id=f"p{i}", email=email, attributes=row["attributes"],
                                          unsubscribed=row["unsubscribed"], suppressed=row["suppressed"])
        if row["device"]:
            Device.unscoped.create(workspace=ws, profile=profile, token=f"t{i}", platform="ios")
        events = [Event(workspace=ws, profile=profile, name=name, data=payload, timestamp=NOW - offset)
                  for name, offset, payload in row["events"]]
        Event.unscoped.bulk_create(events)
        links = []
        for index, attributes in row["objects"]:
            Relationship.unscoped.create(workspace=ws, profile=profile, object=objects[index], attributes=attributes)
            links.append((objects[index].object_type.type_id, objects[index].attributes, attributes))
        if row["membership"]:
            SegmentMembership.unscoped.create(
                workspace=ws, segment=segment, profile=profile, entered_at=NOW - timedelta(days=2),
                exited_at=NOW - timedelta(days=1) if row["membership"] == "exited" else None)
        # Noise in another workspace: a look-alike person, and an event of that workspace
        # wrongly pointing at this person; neither may ever count.
        twin = Profile.unscoped.create(workspace=other, external_id=f"p{i}", attributes=row["attributes"])
        Event.unscoped.create(workspace=other, profile=twin, name="buy", data={"total": 30}, timestamp=NOW)
        Event.unscoped.create(workspace=other, profile=profile, name="view", data={}, timestamp=NOW)
        for key, channel, subscribed in row["preferences"]:
            SubscriptionPreference.unscoped.create(workspace=ws, profile=profile, channel=channel, topic=topics[key],
                                                   subscribed=subscribed, source="api")
        deliveries = []
        for n, (channel, (source, source_id), state) in enumerate(row["deliveries"]):
            times = {column: NOW - offset for column, offset in DELIVERY_STATES[state].items()}
            deliveries.append(Delivery.unscoped.create(
                workspace=ws, profile=profile, channel=channel, source=source,
                source_id=str(message.pk) if source_id == "TM" else source_id, status=state, recipient="x",
                idempotency_key=f"p{i}-{n}", **times))
        # A delivery of the other workspace wrongly pointing at this person, sent just now.
        Delivery.unscoped.create(workspace=other, profile=profile, channel="email", source="campaign", source_id="7",
                                 status="clicked", recipient="x", idempotency_key=f"p{i}",
                                 **{column: NOW for column in DELIVERY_TIMES})
        snapshots[profile.pk] = (
            {"email": profile.email, "phone": profile.phone, "external_id": profile.external_id,
             "cio_id": profile.cio_id, "attributes": row["attributes"], "unsubscribed": row["unsubscribed"],
             "suppressed": row["suppressed"], "created_at": profile.created_at, "devices": int(row["device"]),
             "topic_preferences": {key: subscribed for key, channel, subscribed in row["preferences"] if not channel}},
            [{"name": e.name, "data": e.data, "timestamp": e.timestamp} for e in events],
            links,
            {segment.pk} if row["membership"] == "open" else set(),
            [{"channel": d.channel, "source": d.source, "source_id": d.source_id, "status": d.status,
              **{column: getattr(d, column) for column in DELIVERY_TIMES}} for d in deliveries],
        )
    return snapshots


class Rollback(Exception):
    pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=people_data, tree=trees)
def test_sql_equals_reference(world, data, tree):
    check_example(world, data, tree)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=people(min_deliveries=1), tree=messaging_trees)
def test_sql_equals_reference_for_topics_and_messages(world, data, tree):
    check_example(world, data, tree)


def check_example(world, data, tree):
    ws, other, objects, segment, topics, message = world
    tree = with_ids(tree, {"SEGMENT": segment.pk, "TM": message.pk})
    defaults = {key: topic.default_subscribed for key, topic in topics.items()}
    try:
        with transaction.atomic():
            snapshots = populate(ws, other, objects, segment, topics, message, data)
            found = set(matching(ws, tree, now=NOW).values_list("pk", flat=True))
            expected = {pk for pk, (*snap, deliveries) in snapshots.items()
                        if evaluate(tree, *snap, NOW, deliveries=deliveries, topics=defaults)}
            assert found == expected, tree
            raise Rollback
    except Rollback:
        pass
