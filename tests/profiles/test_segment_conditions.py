"""The segment condition language: each operator and its edge cases, checked in SQL (`matching`) and
against the plain-Python reference; validation paths; dependencies; second-workspace isolation."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import EventFactory, ProfileFactory, WorkspaceFactory
from core.errors import InvalidInput
from profiles.models import CustomObject, Device, ObjectType, Relationship, Segment, SegmentMembership
from profiles.segments.conditions import depends_on, matching, validate
from profiles.segments.reference import evaluate

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
DAY = 86400
NOW_S = int(NOW.timestamp())


@pytest.fixture
def ws(db):
    return WorkspaceFactory()


def person(ws, attributes=None, **fields):
    return ProfileFactory(workspace=ws, attributes=attributes if attributes is not None else {}, **fields)


def reference(ws, tree, profile, now=NOW):
    snapshot = {
        "email": profile.email, "phone": profile.phone, "external_id": profile.external_id,
        "cio_id": profile.cio_id, "attributes": profile.attributes, "unsubscribed": profile.unsubscribed,
        "suppressed": profile.suppressed, "created_at": profile.created_at,
        "devices": Device.unscoped.filter(workspace=ws, profile=profile).count(),
    }
    events = [{"name": e.name, "data": e.data, "timestamp": e.timestamp}
              for e in profile.events.model.unscoped.filter(workspace=ws, profile=profile)]
    links = Relationship.unscoped.filter(workspace=ws, profile=profile).select_related("object__object_type")
    objects = [(r.object.object_type.type_id, r.object.attributes, r.attributes) for r in links]
    memberships = set(SegmentMembership.unscoped.filter(workspace=ws, profile=profile, exited_at__isnull=True)
                      .values_list("segment_id", flat=True))
    return evaluate(tree, snapshot, events, objects, memberships, now)


def matches(ws, tree, profile, now=NOW):
    """Whether `profile` matches, asserting SQL and the reference agree."""
    in_sql = matching(ws, tree, now=now).filter(pk=profile.pk).exists()
    assert in_sql == reference(ws, tree, profile, now), f"SQL says {in_sql}, reference disagrees: {tree}"
    return in_sql


def attr(field, operator, value=None):
    spec = {"field": field, "operator": operator}
    if value is not None:
        spec["value"] = value
    return {"attribute": spec}


# --- attribute operators -------------------------------------------------------------------------

ATTRIBUTE_CASES = [
    # (attributes, condition, expected)
    ({"plan": "pro"}, attr("plan", "eq", "pro"), True),
    ({"plan": "basic"}, attr("plan", "eq", "pro"), False),
    ({}, attr("plan", "eq", "pro"), False),                       # missing never satisfies eq
    ({"plan": None}, attr("plan", "eq", "pro"), False),           # JSON null counts as missing
    ({}, attr("plan", "neq", "pro"), True),                       # missing satisfies neq
    ({"plan": "pro"}, attr("plan", "neq", "pro"), False),
    ({"plan": "basic"}, attr("plan", "neq", "pro"), True),
    ({"age": 30}, attr("age", "eq", 30), True),
    ({"age": "30"}, attr("age", "eq", 30), True),                 # numeric string equals the number
    ({"age": 30.0}, attr("age", "eq", 30), True),
    ({"age": 30}, attr("age", "eq", "30"), True),                 # string value: compared with the text
    ({"age": "thirty"}, attr("age", "eq", 30), False),
    ({"vip": True}, attr("vip", "eq", True), True),
    ({"vip": "true"}, attr("vip", "eq", True), True),             # booleans compare by text
    ({"vip": False}, attr("vip", "eq", True), False),
    ({"vip": 1}, attr("vip", "eq", True), False),
    ({"plan": "pro"}, attr("plan", "exists"), True),
    ({"plan": ""}, attr("plan", "exists"), True),                 # empty string is a value
    ({"plan": None}, attr("plan", "exists"), False),
    ({}, attr("plan", "not_exists"), True),
    ({"plan": "x"}, attr("plan", "not_exists"), False),
    ({"name": "Ada Lovelace"}, attr("name", "contains", "Love"), True),
    ({"name": "Ada Lovelace"}, attr("name", "contains", "love"), False),  # case-sensitive
    ({"tags": ["a", "beta"]}, attr("tags", "contains", "beta"), True),    # array: element
    ({"tags": ["a", "beta"]}, attr("tags", "contains", "bet"), False),
    ({"tags": [1, 2]}, attr("tags", "contains", "1"), False),
    ({}, attr("name", "contains", "x"), False),
    ({"code": "100%_off"}, attr("code", "starts_with", "100%_"), True),   # no LIKE wildcards
    ({"code": "1000 off"}, attr("code", "starts_with", "100%_"), False),
    ({"code": 12345}, attr("code", "starts_with", "123"), True),          # text of the number
    ({"total": 150}, attr("total", "gt", 100), True),
    ({"total": 100}, attr("total", "gt", 100), False),
    ({"total": 100}, attr("total", "gte", 100), True),
    ({"total": "150"}, attr("total", "gt", 100), True),                   # numeric string
    ({"total": "150"}, attr("total", "gt", "100"), True),                 # numeric string value
    ({"total": "lots"}, attr("total", "gt", 100), False),                 # wrong type: no match, no error
    ({"total": True}, attr("total", "gt", 0), False),
    ({"total": [200]}, attr("total", "gt", 100), False),
    ({"total": {"a": 1}}, attr("total", "lt", 100), False),
    ({}, attr("total", "lt", 100), False),
    ({"total": -1.5}, attr("total", "lt", -1), True),
    ({"total": 99.99}, attr("total", "lte", 99.99), True),
    ({"seen": "2026-06-01T00:00:00Z"}, attr("seen", "gt", "2026-05-31"), True),
    ({"seen": "2026-06-01T00:00:00+03:00"}, attr("seen", "lt", "2026-05-31T22:00:00Z"), True),  # 21:00Z
    ({"seen": "2026-06-01T00:00:00-03:00"}, attr("seen", "lt", "2026-06-01T02:00:00Z"), False),  # 03:00Z
    ({"seen": "2026-06-01 10:00"}, attr("seen", "gte", "2026-06-01T10:00:00Z"), True),  # naive = UTC
    ({"seen": NOW_S}, attr("seen", "gt", "2026-06-15T11:59:59Z"), True),   # Unix seconds vs date
    ({"seen": "not a date"}, attr("seen", "gt", "2026-01-01"), False),
    ({"seen": "2026-02-30"}, attr("seen", "gt", "2026-03-01T12:00:00Z"), True),   # rolls to Mar 2, no error
    ({"seen": "2026-02-30"}, attr("seen", "gt", "2026-03-02T12:00:00Z"), False),
    ({"seen": "2026-13-01"}, attr("seen", "gt", "2000-01-01"), False),   # not a date
    ({"plan": "pro"}, attr("plan", "in", ["basic", "pro"]), True),
    ({"plan": "free"}, attr("plan", "in", ["basic", "pro"]), False),
    ({"n": "2"}, attr("n", "in", [1, 2, "x"]), True),
    ({}, attr("plan", "in", ["basic", "pro"]), False),
    ({"n": 7}, attr("n", "in", list(range(20))), True),                   # the long IN list form
    ({"n": "q"}, attr("n", "in", ["p"] * 11 + ["q"]), True),
    ({"seen": NOW_S - 3 * DAY}, attr("seen", "within_last_days", 7), True),
    ({"seen": NOW_S - 8 * DAY}, attr("seen", "within_last_days", 7), False),
    ({"seen": NOW_S + DAY}, attr("seen", "within_last_days", 7), False),   # future is not "last"
    ({"seen": "2026-06-10T00:00:00Z"}, attr("seen", "within_last_days", 7), True),
    ({"seen": "2026-06-20"}, attr("seen", "within_next_days", 7), True),
    ({"seen": "2026-06-10"}, attr("seen", "within_next_days", 7), False),
    ({"seen": "soon"}, attr("seen", "within_next_days", 7), False),
    ({"birthday": "1990-06-15"}, attr("birthday", "anniversary"), True),
    ({"birthday": "1990-06-15T23:30:00+02:00"}, attr("birthday", "anniversary"), True),  # 21:30Z on Jun 15
    ({"birthday": "1990-06-15T01:00:00+02:00"}, attr("birthday", "anniversary"), False),  # Jun 14 in UTC
    ({"birthday": 645408000}, attr("birthday", "anniversary"), True),      # 1990-06-15 as Unix seconds
    ({"birthday": "1990-06-16"}, attr("birthday", "anniversary"), False),
    ({"birthday": 1e20}, attr("birthday", "anniversary"), False),          # out of range: no error
]


@pytest.mark.parametrize("attributes,condition,expected", ATTRIBUTE_CASES)
def test_attribute_operators(ws, attributes, condition, expected):
    profile = person(ws, attributes)
    assert matches(ws, condition, profile) is expected


def test_leap_day_birthdays_come_round_on_feb_28_of_common_years(ws):
    leapling = person(ws, {"birthday": "2000-02-29"})
    assert matches(ws, attr("birthday", "anniversary"), leapling, now=datetime(2027, 2, 28, tzinfo=timezone.utc))
    assert not matches(ws, attr("birthday", "anniversary"), leapling, now=datetime(2028, 2, 28, tzinfo=timezone.utc))
    assert matches(ws, attr("birthday", "anniversary"), leapling, now=datetime(2028, 2, 29, tzinfo=timezone.utc))


def test_relative_dates_are_utc_whatever_the_request_time_zone(ws):
    profile = person(ws, {"birthday": "1990-06-15"})
    late_in_istanbul = datetime(2026, 6, 16, 1, 0, tzinfo=timezone(timedelta(hours=3)))  # 22:00Z on Jun 15
    assert matches(ws, attr("birthday", "anniversary"), profile, now=late_in_istanbul)


def test_column_fields(ws):
    profile = person(ws, {"email": "attribute@x.test"}, email="ada@example.test", phone="+905551112233",
                     external_id="ada-1", unsubscribed=True)
    assert matches(ws, attr("email", "eq", "ada@example.test"), profile)     # the column, not the attribute
    assert matches(ws, attr("email", "contains", "@example."), profile)
    assert matches(ws, attr("phone", "starts_with", "+90"), profile)
    assert matches(ws, attr("id", "eq", "ada-1"), profile)
    assert matches(ws, attr("cio_id", "eq", profile.cio_id), profile)
    assert matches(ws, attr("unsubscribed", "eq", True), profile)
    assert not matches(ws, attr("unsubscribed", "neq", True), profile)
    assert matches(ws, attr("created_at", "within_last_days", 1), profile, now=profile.created_at + timedelta(hours=1))
    assert matches(ws, attr("created_at", "lt", "2999-01-01"), profile)
    assert not matches(ws, attr("created_at", "gt", "2999-01-01"), profile)
    nobody = person(ws, email=None, phone=None, external_id=None)
    assert matches(ws, attr("email", "not_exists"), nobody)
    assert matches(ws, attr("id", "neq", "ada-1"), nobody)


# --- events ---------------------------------------------------------------------------------------

def event(profile, name="purchase", data=None, ago=timedelta(days=1), **kw):
    return EventFactory(profile=profile, workspace=profile.workspace, name=name,
                        data={} if data is None else data, timestamp=NOW - ago, **kw)


def ev(name="purchase", **spec):
    return {"event": {"name": name, **spec}}


def test_event_performed_counts_and_windows(ws):
    buyer, twice, nobody = person(ws), person(ws), person(ws)
    event(buyer, ago=timedelta(minutes=30))
    event(twice, ago=timedelta(days=2))
    event(twice, ago=timedelta(days=40))
    event(nobody, name="signup")
    assert {p for p in (buyer, twice, nobody) if matches(ws, ev(), p)} == {buyer, twice}
    assert matches(ws, ev(operator="not_performed"), nobody)
    at_least_2 = ev(count={"operator": "at_least", "value": 2})
    assert [p for p in (buyer, twice, nobody) if matches(ws, at_least_2, p)] == [twice]
    at_most_1 = ev(count={"operator": "at_most", "value": 1})
    assert [p for p in (buyer, twice, nobody) if matches(ws, at_most_1, p)] == [buyer, nobody]
    exactly_0 = ev(count={"operator": "exactly", "value": 0})
    assert [p for p in (buyer, twice, nobody) if matches(ws, exactly_0, p)] == [nobody]
    exactly_1 = ev(count={"operator": "exactly", "value": 1})
    assert [p for p in (buyer, twice, nobody) if matches(ws, exactly_1, p)] == [buyer]
    assert matches(ws, ev(within={"value": 1, "unit": "hours"}), buyer)
    assert not matches(ws, ev(within={"value": 20, "unit": "minutes"}), buyer)
    assert not matches(ws, ev(within={"value": 1, "unit": "days"}), twice)
    assert matches(ws, ev(within={"value": 30, "unit": "days"}, count={"operator": "exactly", "value": 1}), twice)
    assert matches(ws, ev(between=["2026-05-01T00:00:00Z", "2026-05-31"]), twice)   # the 40-days-ago one
    assert not matches(ws, ev(between=["2026-05-01T00:00:00Z", "2026-05-31"]), buyer)
    assert matches(ws, ev(between=[NOW_S - 3 * DAY, NOW_S]), twice)                 # Unix seconds


def test_future_events_are_not_within_a_window(ws):
    profile = person(ws)
    event(profile, ago=-timedelta(hours=1))
    assert not matches(ws, ev(within={"value": 7, "unit": "days"}), profile)
    assert matches(ws, ev(), profile)


def test_event_data_filters_and_empty_data(ws):
    big, small, empty, stringy = person(ws), person(ws), person(ws), person(ws)
    event(big, data={"total": 150, "currency": "EUR"})
    event(small, data={"total": 50})
    event(empty, data={})
    event(stringy, data={"total": "150"})
    over_100 = ev(filters=[{"field": "total", "operator": "gt", "value": 100}])
    assert [p for p in (big, small, empty, stringy) if matches(ws, over_100, p)] == [big, stringy]
    no_currency = ev(filters=[{"field": "currency", "operator": "not_exists"}])
    assert [p for p in (big, small, empty, stringy) if matches(ws, no_currency, p)] == [small, empty, stringy]
    not_eur = ev(filters=[{"field": "currency", "operator": "neq", "value": "EUR"}])
    assert not matches(ws, not_eur, big) and matches(ws, not_eur, empty)
    never_big = ev(operator="not_performed", filters=[{"field": "total", "operator": "gte", "value": 100}])
    assert [p for p in (big, small, empty, stringy) if matches(ws, never_big, p)] == [small, empty]


def test_not_performed_within_matches_people_younger_than_the_window(ws):
    newcomer = person(ws)  # created just now, no events at all
    lapsed, active = person(ws), person(ws)
    event(lapsed, ago=timedelta(days=45))
    event(active, ago=timedelta(days=3))
    quiet_30_days = ev(operator="not_performed", within={"value": 30, "unit": "days"})
    now = newcomer.created_at + timedelta(days=1)
    assert matches(ws, quiet_30_days, newcomer, now=now)
    assert matches(ws, quiet_30_days, lapsed)
    assert not matches(ws, quiet_30_days, active)
    # The documented recipe to leave newcomers out: AND "created more than 30 days ago".
    settled = {"and": [quiet_30_days, {"not": attr("created_at", "within_last_days", 30)}]}
    assert not matches(ws, settled, newcomer, now=now)


# --- objects, segments, channels, nesting --------------------------------------------------------

def test_object_conditions(ws):
    company = ObjectType.unscoped.create(workspace=ws, type_id="1", name="Companies")
    plan = ObjectType.unscoped.create(workspace=ws, type_id="2", name="Plans")
    acme = CustomObject.unscoped.create(workspace=ws, object_type=company, object_id="acme",
                                        attributes={"industry": "retail", "employees": 500})
    tiny = CustomObject.unscoped.create(workspace=ws, object_type=company, object_id="tiny",
                                        attributes={"industry": "retail", "employees": 3})
    gold = CustomObject.unscoped.create(workspace=ws, object_type=plan, object_id="gold", attributes={})
    admin, staff, planner, loner = person(ws), person(ws), person(ws), person(ws)
    Relationship.unscoped.create(workspace=ws, profile=admin, object=acme, attributes={"role": "admin"})
    Relationship.unscoped.create(workspace=ws, profile=staff, object=tiny, attributes={})
    Relationship.unscoped.create(workspace=ws, profile=planner, object=gold, attributes={"role": "admin"})
    people = (admin, staff, planner, loner)
    related = {"object": {"object_type_id": "1"}}
    assert [p for p in people if matches(ws, related, p)] == [admin, staff]
    big_retail = {"object": {"object_type_id": 1, "filters": [
        {"field": "industry", "operator": "eq", "value": "retail"},
        {"field": "employees", "operator": "gte", "value": 100}]}}
    assert [p for p in people if matches(ws, big_retail, p)] == [admin]
    admins = {"object": {"object_type_id": "1", "relationship_filters": [
        {"field": "role", "operator": "eq", "value": "admin"}]}}
    assert [p for p in people if matches(ws, admins, p)] == [admin]
    assert [p for p in people if matches(ws, {"not": related}, p)] == [planner, loner]


def test_segment_membership_conditions(ws):
    vip = Segment.unscoped.create(workspace=ws, name="VIP", conditions={})
    member, former, never = person(ws), person(ws), person(ws)
    SegmentMembership.unscoped.create(workspace=ws, segment=vip, profile=member, entered_at=NOW)
    SegmentMembership.unscoped.create(workspace=ws, segment=vip, profile=former, entered_at=NOW - timedelta(days=9),
                                      exited_at=NOW - timedelta(days=1))
    is_member = {"segment": {"id": vip.pk, "operator": "member"}}
    not_member = {"segment": {"id": str(vip.pk), "operator": "not_member"}}
    assert [p for p in (member, former, never) if matches(ws, is_member, p)] == [member]
    assert [p for p in (member, former, never) if matches(ws, not_member, p)] == [former, never]


def test_channel_conditions(ws):
    full = person(ws, email="a@x.test", phone="+15550001")
    blank = person(ws, email="", phone=None, unsubscribed=True, suppressed=True)
    Device.unscoped.create(workspace=ws, profile=full, token="tok-1", platform="ios")
    people = (full, blank)
    for has in ("email", "phone", "push_device"):
        assert [p for p in people if matches(ws, {"channel": {"has": has}}, p)] == [full]
    assert [p for p in people if matches(ws, {"channel": {"subscribed": True}}, p)] == [full]
    assert [p for p in people if matches(ws, {"channel": {"subscribed": False}}, p)] == [blank]
    assert [p for p in people if matches(ws, {"channel": {"not_suppressed": True}}, p)] == [full]


def test_nested_and_or_not_is_one_query(ws):
    pro_buyer = person(ws, {"plan": "pro", "age": 40})
    basic_young = person(ws, {"plan": "basic", "age": 20})
    pro_idle = person(ws, {"plan": "pro"})
    event(pro_buyer, data={"total": 300})
    tree = {"or": [
        {"and": [attr("plan", "eq", "pro"), ev(filters=[{"field": "total", "operator": "gt", "value": 100}])]},
        {"and": [{"not": attr("plan", "eq", "pro")}, {"not": attr("age", "gte", 30)}]},
    ]}
    with CaptureQueriesContext(connection) as queries:
        found = set(matching(ws, tree, now=NOW))
    assert len(queries) == 1
    assert found == {pro_buyer, basic_young}
    assert matches(ws, {"not": tree}, pro_idle)
    assert matches(ws, {"not": {"not": attr("age", "lt", 30)}}, basic_young)


def test_another_workspaces_people_and_events_never_count(tenant_a, tenant_b):
    a, b = tenant_a.workspace, tenant_b.workspace
    mine = person(a, {"plan": "pro"})
    theirs = person(b, {"plan": "pro"})
    event(theirs)
    # An event of workspace B pointing at A's person (a corrupt row) must not count for A either.
    EventFactory(profile=mine, workspace=b, name="purchase", data={}, timestamp=NOW - timedelta(days=1))
    assert set(matching(a, attr("plan", "eq", "pro"), now=NOW)) == {mine}
    assert set(matching(a, ev(), now=NOW)) == set()
    assert set(matching(a, ev(operator="not_performed"), now=NOW)) == {mine}
    assert set(matching(b, ev(), now=NOW)) == {theirs}
    other_segment = Segment.unscoped.create(workspace=b, name="B's", conditions={})
    SegmentMembership.unscoped.create(workspace=b, segment=other_segment, profile=theirs, entered_at=NOW)
    assert set(matching(a, {"segment": {"id": other_segment.pk}}, now=NOW)) == set()


# --- validation and dependencies -----------------------------------------------------------------

@pytest.mark.parametrize("tree,path", [
    ({}, "conditions"),
    ([], "conditions"),
    ({"and": []}, "conditions.and"),
    ({"and": [attr("plan", "eq", "pro"), {"attribute": {"field": "plan", "operator": "equals", "value": 1}}]},
     "conditions.and.1.attribute.operator"),
    ({"and": [attr("a", "exists"), ev(within={"value": 3, "unit": "weeks"})]}, "conditions.and.1.event.within.unit"),
    ({"or": [ev(within={"value": 0, "unit": "days"})]}, "conditions.or.0.event.within.value"),
    ({"not": {"attribute": {"operator": "eq", "value": 1}}}, "conditions.not.attribute.field"),
    (attr("plan", "eq"), "conditions.attribute.value"),
    (attr("age", "gt", "soon"), "conditions.attribute.value"),
    (attr("tags", "in", ["a", {"b": 1}]), "conditions.attribute.value.1"),
    (attr("tags", "in", []), "conditions.attribute.value"),
    (attr("created_at", "eq", "x"), "conditions.attribute.operator"),
    (attr("unsubscribed", "eq", "yes"), "conditions.attribute.value"),
    (attr("seen", "within_last_days", -1), "conditions.attribute.value"),
    (ev(count={"operator": "more_than", "value": 1}), "conditions.event.count.operator"),
    (ev(count={"operator": "at_least", "value": -1}), "conditions.event.count.value"),
    (ev(between=["2026-02-01", "2026-01-01"]), "conditions.event.between"),
    (ev(between=["2026-01-01", "later"]), "conditions.event.between.1"),
    (ev(filters=[{"field": "total", "operator": "gt"}]), "conditions.event.filters.0.value"),
    ({"event": {"operator": "performed"}}, "conditions.event.name"),
    ({"object": {"filters": []}}, "conditions.object.object_type_id"),
    ({"object": {"object_type_id": "1", "relationship_filters": [{"field": "r", "operator": "nope"}]}},
     "conditions.object.relationship_filters.0.operator"),
    ({"segment": {"id": "abc"}}, "conditions.segment.id"),
    ({"channel": {"has": "fax"}}, "conditions.channel.has"),
    ({"channel": {"topic": "news"}}, "conditions.channel.topic"),
    ({"and": [{"opened": {"message_id": 3}}]}, "conditions.and.0.opened"),
    ({"sent": {"campaign_id": 1}}, "conditions.sent"),
    ({"wat": {}}, "conditions.wat"),
    ({"attribute": {}, "event": {}}, "conditions"),
])
def test_validation_errors_name_the_path(tree, path):
    with pytest.raises(InvalidInput) as caught:
        validate(tree)
    assert caught.value.field == path


def test_old_spellings_of_message_conditions_point_to_the_message_form():
    with pytest.raises(InvalidInput, match='"message": {"action"') as caught:
        validate({"clicked": {"message_id": 1}})
    assert caught.value.field == "conditions.clicked"


def test_validate_normalizes():
    assert validate(ev()) == {"event": {"name": "purchase", "operator": "performed",
                                        "count": {"operator": "at_least", "value": 1}, "filters": []}}
    assert validate(attr("total", "gt", "100")) == attr("total", "gt", 100)
    assert validate({"segment": {"id": "12"}}) == {"segment": {"id": 12, "operator": "member"}}
    assert validate({"object": {"object_type_id": 1}})["object"]["object_type_id"] == "1"


def test_deeply_nested_and_huge_trees_are_rejected():
    deep = attr("a", "exists")
    for _ in range(20):
        deep = {"not": deep}
    with pytest.raises(InvalidInput, match="deeply"):
        validate(deep)
    with pytest.raises(InvalidInput, match="too many"):
        validate({"or": [attr("a", "exists")] * 300})


def test_depends_on():
    tree = validate({"and": [
        attr("plan", "eq", "pro"), ev("purchase"), {"not": ev("refund", within={"value": 3, "unit": "days"})},
        {"object": {"object_type_id": "1"}}, {"segment": {"id": 7}}, {"channel": {"has": "email"}},
    ]})
    assert depends_on(tree) == {"attributes", "events:purchase", "events:refund", "objects", "segments:7",
                                "channels", "time"}
    assert depends_on(validate(attr("birthday", "anniversary"))) == {"attributes", "time"}
    assert depends_on(validate(ev("x", between=["2026-01-01", "2026-02-01"]))) == {"events:x"}
    assert depends_on(validate(ev("x", filters=[{"field": "d", "operator": "within_next_days", "value": 2}]))) \
        == {"events:x", "time"}
