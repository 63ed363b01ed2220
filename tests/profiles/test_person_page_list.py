"""The people list: filter by segment (current members, through the memberships) and by attribute
(key=value, JSON containment), bad filter input as an error message, the columns, and query
counts that do not grow with rows."""

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from profiles.models import Event, Profile, Segment, SegmentMembership
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:profiles_profile_changelist"
MAX_CHANGELIST_QUERIES = 15  # as tests/test_admin.py
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def people(client, assert_max_queries=None, **params):
    if assert_max_queries is None:
        response = client.get(reverse(CHANGELIST), params)
    else:
        with assert_max_queries(MAX_CHANGELIST_QUERIES):
            response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return response


def shown(response) -> set[int]:
    return {person.pk for person in response.context["cl"].result_list}


def errors_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def segment_with(workspace, name, current=(), left=()):
    segment = Segment.unscoped.create(workspace=workspace, name=name, kind="manual", state="ready")
    SegmentMembership.unscoped.bulk_create(
        [SegmentMembership(workspace=workspace, segment=segment, profile=p, entered_at=T0) for p in current]
        + [SegmentMembership(workspace=workspace, segment=segment, profile=p, entered_at=T0,
                             exited_at=T0 + timedelta(days=1)) for p in left])
    return segment


# --- by segment ------------------------------------------------------------------------------------


def test_segment_filter_lists_exactly_its_current_members(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    ann, bob, cem, dan = (ProfileFactory(workspace=a.workspace) for _ in range(4))
    vips = segment_with(a.workspace, "VIPs", current=[ann, bob], left=[cem])
    segment_with(a.workspace, "Others", current=[dan, cem])
    theirs = segment_with(b.workspace, "Globex VIPs", current=[ProfileFactory(workspace=b.workspace)])
    client.force_login(make_member(a.workspace, Role.MARKETER))

    response = people(client, django_assert_max_num_queries, segment=vips.pk)
    assert shown(response) == {ann.pk, bob.pk}
    (segment_filter,) = [f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "segment"]
    assert {name for _, name in segment_filter.lookup_choices} == {"VIPs", "Others"}
    # Another workspace's segment names nobody here; a malformed id is an error, not a 500.
    assert shown(people(client, segment=theirs.pk)) == set()
    broken = people(client, segment="abc")
    assert shown(broken) == set() and errors_of(broken) == ["Segment filter: 'abc' is not a segment id."]
    # Combined with the search.
    assert shown(people(client, segment=vips.pk, q=ann.email)) == {ann.pk}


def test_segment_filter_reads_the_segment_membership_index(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    vips = segment_with(tenant_a.workspace, "VIPs", current=[person])
    client.force_login(tenant_a.owner)
    with CaptureQueriesContext(connection) as captured:
        people(client, segment=vips.pk)
    (sql,) = [q["sql"] for q in captured if 'FROM "profiles_profile"' in q["sql"] and "LIMIT" in q["sql"]
              and "segmentmembership" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "membership_ws_segment_time" in plan or "membership_one_open_per_person" in plan, plan


# --- by attribute ----------------------------------------------------------------------------------


def test_attribute_filter_lists_exactly_the_matching_people(client, two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    pro = ProfileFactory(workspace=a.workspace, attributes={"plan": "pro", "age": 30, "vip": True})
    text_age = ProfileFactory(workspace=a.workspace, attributes={"plan": "free", "age": "30"})
    free = ProfileFactory(workspace=a.workspace, attributes={"plan": "free", "age": 31, "vip": False})
    spaced = ProfileFactory(workspace=a.workspace, attributes={"city": "New York"})
    ProfileFactory(workspace=b.workspace, attributes={"plan": "pro", "age": 30})
    client.force_login(make_member(a.workspace, Role.ANALYST))

    assert shown(people(client, django_assert_max_num_queries, attr="plan=pro")) == {pro.pk}
    assert shown(people(client, attr="plan=free")) == {text_age.pk, free.pk}
    assert shown(people(client, attr="age=30")) == {pro.pk, text_age.pk}  # 30 or "30"
    assert shown(people(client, attr='age="30"')) == {text_age.pk}  # quoted: the string only
    assert shown(people(client, attr="vip=true")) == {pro.pk}
    assert shown(people(client, attr=" city = New York ")) == {spaced.pk}
    assert shown(people(client, attr="plan=enterprise")) == set()
    # Combined with the segment filter and the search.
    vips = segment_with(a.workspace, "VIPs", current=[pro, free])
    assert shown(people(client, attr="plan=free", segment=vips.pk)) == {free.pk}
    assert shown(people(client, attr="plan=pro", q=pro.email)) == {pro.pk}


@pytest.mark.parametrize("text, message", [
    ("planpro", "has no '='"),
    ("=pro", "the attribute name before '=' is empty"),
    ("k" * 151 + "=1", "attribute names are limited to 150 bytes"),
])
def test_bad_attribute_filter_input_is_an_error_not_a_500(client, tenant_a, text, message):
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    client.force_login(tenant_a.owner)
    response = people(client, attr=text)
    assert shown(response) == set()
    (error,) = errors_of(response)
    assert error.startswith("Attribute filter:") and message in error
    assert 'id="attribute-filter-input"' in response.content.decode()


def test_attribute_filter_keeps_the_other_filters_in_its_form(client, tenant_a):
    vips = segment_with(tenant_a.workspace, "VIPs")
    client.force_login(tenant_a.owner)
    body = people(client, segment=vips.pk, q="ann", attr="plan=pro").content.decode()
    assert f'<input type="hidden" name="segment" value="{vips.pk}">' in body
    assert '<input type="hidden" name="q" value="ann">' in body
    assert 'name="attr" value="plan=pro"' in body


# --- columns and query counts ----------------------------------------------------------------------


def test_columns_show_a_name_email_phone_and_last_event(client, tenant_a):
    named = ProfileFactory(workspace=tenant_a.workspace, external_id="c1", phone="+905551112233",
                           attributes={"first_name": "Ada", "last_name": "Lovelace"})
    plain = ProfileFactory(workspace=tenant_a.workspace, external_id="c2", attributes={"name": "Bob"})
    bare = ProfileFactory(workspace=tenant_a.workspace, external_id="c3", attributes={})
    Event.unscoped.bulk_create([
        Event(workspace=tenant_a.workspace, profile=named, name="old", timestamp=T0),
        Event(workspace=tenant_a.workspace, profile=named, name="new", timestamp=T0 + timedelta(days=3)),
    ])
    client.force_login(tenant_a.owner)
    response = people(client)
    rows = {p.pk: p for p in response.context["cl"].result_list}
    assert rows[named.pk].last_event_at == T0 + timedelta(days=3) and rows[plain.pk].last_event_at is None
    body = response.content.decode()
    assert "Ada Lovelace" in body and "Bob" in body and "c3" in body and "+905551112233" in body
    assert [c["text"] for c in response.context["result_headers"]][1:] == [
        "person", "email", "phone", "created at", "last event", "updated at"]
    assert bare.pk in rows


def test_people_list_query_count_does_not_grow_with_rows(client, tenant_a, django_assert_max_num_queries):
    vips = segment_with(tenant_a.workspace, "VIPs")
    client.force_login(tenant_a.owner)
    ProfileFactory(workspace=tenant_a.workspace)
    counts = {}
    for label in ("few", "many"):
        for params in ({}, {"segment": vips.pk}, {"attr": "plan=pro"}):
            with CaptureQueriesContext(connection) as captured:
                response = people(client, django_assert_max_num_queries, **params)
            counts.setdefault(tuple(params), []).append(len(captured))
        if label == "few":
            added = [ProfileFactory(workspace=tenant_a.workspace) for _ in range(30)]
            for person in added:
                Event.unscoped.create(workspace=tenant_a.workspace, profile=person, name="e", timestamp=T0)
            segment_with(tenant_a.workspace, "More VIPs")
            SegmentMembership.unscoped.bulk_create(
                SegmentMembership(workspace=tenant_a.workspace, segment=vips, profile=p, entered_at=T0) for p in added)
    assert len(response.context["cl"].result_list) == 31
    for params, (few, many) in counts.items():
        assert many == few, (params, few, many)
    assert Profile.unscoped.filter(workspace=tenant_a.workspace).count() == 31
