"""The person page (the "360", profiles/person_sections.py and the sections and actions that
channels, campaigns and compliance register): each section follows its permission, another
workspace's person and rows never show, query counts do not grow with the person's rows, the
event timeline's filters and keyset pages, segment history, and the actions (suppress, export,
delete with its confirmation)."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role, permissions_for
from campaigns.journeys import services as journey_services
from campaigns.models import Journey
from channels.models import ConsentRecord, Delivery, SubscriptionPreference, SubscriptionTopic, Suppression
from compliance.deletion import run_deletion
from compliance.models import DeletionRecord
from profiles import person_sections
from profiles.models import (
    Change,
    CustomObject,
    Device,
    Event,
    Identity,
    ObjectType,
    Profile,
    Relationship,
    Segment,
    SegmentMembership,
    SuppressedIdentifier,
)
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
# The page's queries for a role that sees every section: the session, the user, memberships,
# the person, workspace and model permissions and the navigation (9), then one or two per section
# (segments 2, events 1, deliveries 1, journeys 3 with runs — the runs, then the drawn runs' versions
# and step logs, campaigns/person_sections.py —, subscriptions 2, consent 1, relationships 1)
# and the two inlines (anonymous ids, devices). The same with 1 row of each kind as with 50.
PERSON_PAGE_QUERIES = 22
WORKFLOW = {"start": "wait", "steps": {"wait": {"type": "delay", "duration": {"days": 1}}}}

# Each section (its id on the page: person-<key>) and the permission it needs.
SECTIONS = {
    "segments": "view_people", "events": "view_people", "relationships": "view_people",
    "subscriptions": "view_people", "deliveries": "view_campaigns", "journeys": "view_campaigns",
    "consent": "view_audit_log",
}
ACTIONS = {"suppress": "change_people", "export": "export_personal_data", "delete": "manage_deletions"}


def person_url(person, **params):
    return reverse("admin:profiles_profile_change", args=[person.pk])


def action_url(person, key):
    return reverse("admin:profiles_profile_action", args=[person.pk, key])


def as_role(client, tenant, role):
    if role == Role.OWNER:
        client.force_login(tenant.owner)
    else:
        client.force_login(make_member(tenant.workspace, role))
    return client


def shown_sections(body: str) -> set[str]:
    return set(re.findall(r'data-person-section="([a-z_-]+)"', body))


def shown_actions(body: str) -> set[str]:
    return set(re.findall(r'data-person-action="([a-z_-]+)"', body))


def campaign_of(workspace, name="Onboarding"):
    return journey_services.create_campaign(workspace=workspace, definition={
        "name": name, "trigger": {"type": "event", "name": "signed_up"}, "workflow": WORKFLOW})


def fill(person, n=1, *, tag="row", campaign=None):
    """`n` rows of every kind the page shows, for `person`, named after `tag`."""
    ws = person.workspace
    Event.unscoped.bulk_create(
        Event(workspace=ws, profile=person, name=f"{tag}-event-{i}", data={"i": i}, timestamp=T0 + timedelta(minutes=i))
        for i in range(n))
    Delivery.unscoped.bulk_create(
        Delivery(workspace=ws, profile=person, channel="email", source="transactional", source_id="1",
                 recipient=f"{tag}-{i}@example.test", subject=f"{tag}-subject-{i}", status="delivered",
                 idempotency_key=f"{tag}-{person.pk}-{i}")
        for i in range(n))
    campaign = campaign or campaign_of(ws, name=f"{tag}-campaign")
    Journey.unscoped.bulk_create(
        Journey(workspace=ws, campaign=campaign, profile=person, state="completed", step="wait") for _ in range(n))
    ConsentRecord.unscoped.bulk_create(
        ConsentRecord(workspace=ws, profile=person, channel="email", topic_key=f"{tag}-consented-{i}", action="opt_out",
                      source="admin")
        for i in range(n))
    segments = Segment.unscoped.bulk_create(
        Segment(workspace=ws, name=f"{tag}-segment-{i}", kind="manual", state="ready") for i in range(n))
    SegmentMembership.unscoped.bulk_create(
        SegmentMembership(workspace=ws, segment=segment, profile=person, entered_at=T0,
                          exited_at=None if i % 2 == 0 else T0 + timedelta(days=1))
        for i, segment in enumerate(segments))
    object_type, _ = ObjectType.unscoped.get_or_create(workspace=ws, type_id="1", defaults={"name": "Company"})
    objects = CustomObject.unscoped.bulk_create(
        CustomObject(workspace=ws, object_type=object_type, object_id=f"{tag}-object-{i}") for i in range(n))
    Relationship.unscoped.bulk_create(
        Relationship(workspace=ws, profile=person, object=obj) for obj in objects)
    Device.unscoped.bulk_create(
        Device(workspace=ws, profile=person, platform="ios", token=f"{tag}-token-{person.pk}-{i}") for i in range(n))
    Identity.unscoped.bulk_create(
        Identity(workspace=ws, profile=person, anonymous_id=f"{tag}-anon-{person.pk}-{i}") for i in range(n))
    topics = SubscriptionTopic.unscoped.bulk_create(
        SubscriptionTopic(workspace=ws, key=f"{tag}-topic-{i}", name=f"{tag} topic {i}") for i in range(n))
    SubscriptionPreference.unscoped.bulk_create(
        SubscriptionPreference(workspace=ws, profile=person, channel="email", topic=topic, subscribed=False,
                               source="admin")
        for topic in topics)
    Suppression.unscoped.bulk_create(
        Suppression(workspace=ws, profile=person, channel="email", address=f"{tag}-{i}-{person.pk}@example.test",
                    reason="manual")
        for i in range(n))


# Text that shows a section's rows on the page, for `fill(tag=...)`.
def markers(tag):
    return {
        "segments": f"{tag}-segment-0", "events": f"{tag}-event-0", "relationships": f"{tag}-object-0",
        "subscriptions": f"{tag} topic 0", "deliveries": f"{tag}-subject-0", "journeys": f"{tag}-campaign",
        "consent": f"{tag}-consented-0",
    }


# --- sections and actions follow the role ----------------------------------------------------------


@pytest.mark.parametrize("role", list(Role.values))
def test_each_section_and_action_follows_its_permission(client, tenant_a, role):
    person = ProfileFactory(workspace=tenant_a.workspace)
    fill(person, tag="mine")
    granted = permissions_for(role)
    response = as_role(client, tenant_a, role).get(person_url(person))
    assert response.status_code == 200
    body = response.content.decode()
    expected = {key for key, permission in SECTIONS.items() if permission in granted}
    assert shown_sections(body) == expected
    for key, marker in markers("mine").items():
        assert (marker in body) == (key in expected), (role, key)
    assert shown_actions(body) == {key for key, permission in ACTIONS.items() if permission in granted}
    # Devices and anonymous ids (the form's inlines) show to everyone who sees people.
    assert f"mine-token-{person.pk}-0" in body and f"mine-anon-{person.pk}-0" in body


def test_a_section_needs_its_permission_even_with_view_people():
    """The registry itself: a request whose role lacks a section's permission gets no such section."""
    person = ProfileFactory()
    request = RequestFactory().get("/")
    request.workspace = person.workspace
    request.workspace_perms = frozenset({"view_campaigns"})
    keys = [section.key for section in person_sections.visible_sections(request)]
    assert "deliveries" in keys and "journeys" in keys
    assert not {"events", "segments", "subscriptions", "consent", "relationships"} & set(keys)
    request.workspace_perms = frozenset()
    assert person_sections.visible_sections(request) == []
    assert person_sections.person_actions(request, person) == []


def test_registering_a_different_section_under_a_taken_key_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        person_sections.register_person_section("events", "Events again", "view_people", 1, lambda r, p: "")
    with pytest.raises(ValueError, match="exactly one of view and target"):
        person_sections.register_person_page_action("nothing", label="x", permission="view_people", order=1)


def test_the_journeys_section_replaces_the_earlier_panel(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    fill(person, tag="once")
    body = as_role(client, tenant_a, Role.OWNER).get(person_url(person)).content.decode()
    assert body.count('id="person-journeys"') == 1


# --- workspaces ------------------------------------------------------------------------------------


def test_another_workspace_person_and_its_actions_answer_404(client, two_tenants):
    a, b = two_tenants
    theirs = ProfileFactory(workspace=b.workspace, external_id="theirs")
    fill(theirs, tag="globex")
    as_role(client, a, Role.OWNER)
    assert client.get(person_url(theirs)).status_code == 404
    for key in ("delete", "suppress"):
        assert client.get(action_url(theirs, key)).status_code in (404, 405)
        assert client.post(action_url(theirs, key), {"confirm": "on"}).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.suppressed
    assert not DeletionRecord.unscoped.exists() and not SuppressedIdentifier.unscoped.exists()
    assert client.get(action_url(theirs, "no-such-action")).status_code == 404


def test_the_same_person_id_in_two_workspaces_never_mixes(client, two_tenants):
    a, b = two_tenants
    mine = ProfileFactory(workspace=a.workspace, external_id="ann", email="ann@example.test")
    theirs = ProfileFactory(workspace=b.workspace, external_id="ann", email="ann@example.test")
    fill(mine, tag="acme")
    fill(theirs, tag="globex")
    # Rows of another workspace that (wrongly) point at A's person never show either.
    globex_campaign = campaign_of(b.workspace, name="globex-stray-campaign")
    Event.unscoped.create(workspace=b.workspace, profile=mine, name="globex-stray-event", timestamp=T0)
    Delivery.unscoped.create(workspace=b.workspace, profile=mine, channel="email", source="transactional",
                             subject="globex-stray-subject", idempotency_key="stray")
    Journey.unscoped.create(workspace=b.workspace, campaign=globex_campaign, profile=mine, state="completed")
    body = as_role(client, a, Role.OWNER).get(person_url(mine)).content.decode()
    for marker in markers("acme").values():
        assert marker in body, marker
    assert "globex" not in body


# --- bounded reads ---------------------------------------------------------------------------------


def page_queries(client, person, assert_max_queries, **params) -> int:
    with assert_max_queries(PERSON_PAGE_QUERIES) as captured:
        response = client.get(person_url(person), params)
    assert response.status_code == 200
    return len(captured)


def test_query_count_does_not_grow_with_the_persons_rows(client, tenant_a, django_assert_max_num_queries):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, Role.OWNER)
    fill(person, 1, tag="one")
    one = page_queries(client, person, django_assert_max_num_queries)
    fill(person, 50, tag="fifty")
    fifty = page_queries(client, person, django_assert_max_num_queries)
    assert fifty == one, (one, fifty)
    body = client.get(person_url(person)).content.decode()
    # Long lists show a page and link to the list filtered to the person.
    for model in (Delivery, ConsentRecord, Device, Identity, Event):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert f"{url}?profile__id__exact={person.pk}" in body, model
    assert f"{reverse('admin:campaigns_journey_changelist')}?person={person.pk}" in body
    assert body.count('class="delivery-row"') == 20 and body.count('class="journey-row"') == 20
    assert body.count('class="event-row"') == 50
    # The filtered lists answer (their filter is allowed) and show only this person's rows.
    response = client.get(reverse("admin:channels_delivery_changelist"), {"profile__id__exact": person.pk})
    assert response.status_code == 200 and {d.profile_id for d in response.context["cl"].result_list} == {person.pk}


def test_analyst_page_is_bounded_too(client, tenant_a, django_assert_max_num_queries):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, Role.ANALYST)
    fill(person, 1, tag="one")
    one = page_queries(client, person, django_assert_max_num_queries)
    fill(person, 50, tag="fifty")
    assert page_queries(client, person, django_assert_max_num_queries) == one


# --- the event timeline ----------------------------------------------------------------------------


def timeline(response) -> list[str]:
    return [event.name for event, _ in response.context["event_timeline"].events]


def events_for(person, names_and_times):
    return Event.unscoped.bulk_create(
        Event(workspace=person.workspace, profile=person, name=name, type=kind, timestamp=moment)
        for name, kind, moment in names_and_times)


def test_timeline_filters_by_name_type_and_dates_of_the_workspace(client, tenant_a):
    tenant_a.workspace.time_zone = "Europe/Istanbul"  # UTC+3
    tenant_a.workspace.save()
    person = ProfileFactory(workspace=tenant_a.workspace)
    other = ProfileFactory(workspace=tenant_a.workspace)
    events_for(person, [
        ("signup", "event", datetime(2025, 3, 1, 8, tzinfo=timezone.utc)),
        ("Home", "page", datetime(2025, 3, 1, 9, tzinfo=timezone.utc)),
        ("purchase", "event", datetime(2025, 3, 2, 20, 59, tzinfo=timezone.utc)),  # 23:59 on the 2nd in Istanbul
        ("purchase", "event", datetime(2025, 3, 2, 21, 0, tzinfo=timezone.utc)),  # 00:00 on the 3rd in Istanbul
    ])
    events_for(other, [("purchase", "event", datetime(2025, 3, 2, 12, tzinfo=timezone.utc))])
    as_role(client, tenant_a, Role.ANALYST)
    url = person_url(person)
    assert timeline(client.get(url, {"events-name": "purchase"})) == ["purchase", "purchase"]
    assert timeline(client.get(url, {"events-type": "page"})) == ["Home"]
    assert timeline(client.get(url, {"events-since": "2025-03-02", "events-until": "2025-03-02"})) == ["purchase"]
    response = client.get(url, {"events-name": "purchase", "events-since": "2025-03-03"})
    assert timeline(response) == ["purchase"]
    # The link to the events list carries the same filters, and the list shows the same rows.
    all_url = response.context["event_timeline"].all_url
    listed = client.get(all_url)
    assert listed.status_code == 200
    assert [(e.profile_id, e.name) for e in listed.context["cl"].result_list] == [(person.pk, "purchase")]


@pytest.mark.parametrize("params, field", [
    ({"events-since": "yesterday"}, "from"),
    ({"events-until": "2025-02-30"}, "to"),
    ({"events-since": "2025-03-05", "events-until": "2025-03-01"}, "to"),
    ({"events-type": "nonsense"}, "type"),
    ({"events-until": "9999-12-31"}, "to"),
    ({"events-since": "0001-01-01"}, "from"),
    ({"events-before": "99999999999999999999_1"}, "before"),
    ({"events-before": "not-a-cursor"}, "before"),
])
def test_bad_timeline_filters_are_errors_naming_the_field(client, tenant_a, params, field):
    person = ProfileFactory(workspace=tenant_a.workspace)
    events_for(person, [("signup", "event", T0)])
    response = as_role(client, tenant_a, Role.ANALYST).get(person_url(person), params)
    assert response.status_code == 200
    assert timeline(response) == []
    body = response.content.decode()
    assert f"Events filter, {field}:" in body


def test_timeline_pages_by_keyset_both_ways(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    Event.unscoped.bulk_create(
        Event(workspace=person.workspace, profile=person, name=f"step-{i}", timestamp=T0 + timedelta(minutes=i // 2))
        for i in range(120))  # pairs share a timestamp: the id breaks the tie
    as_role(client, tenant_a, Role.ANALYST)
    url = person_url(person)
    first = client.get(url)
    names = [f"step-{i}" for i in range(119, -1, -1)]
    assert timeline(first) == names[:50]
    page = first.context["event_timeline"]
    assert page.previous_url is None and page.newest_url is None
    second = client.get(url + page.next_url)
    assert timeline(second) == names[50:100]
    third = client.get(url + second.context["event_timeline"].next_url)
    assert timeline(third) == names[100:]
    assert third.context["event_timeline"].next_url is None
    back = client.get(url + third.context["event_timeline"].previous_url)
    assert timeline(back) == names[50:100]
    assert timeline(client.get(url + back.context["event_timeline"].previous_url)) == names[:50]
    assert client.get(url + back.context["event_timeline"].previous_url).context["event_timeline"].previous_url is None


def test_timeline_keeps_its_filters_and_the_changelist_filters_while_paging(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    Event.unscoped.bulk_create(
        Event(workspace=person.workspace, profile=person, name="view" if i % 2 else "click", timestamp=T0 + timedelta(minutes=i))
        for i in range(130))
    as_role(client, tenant_a, Role.ANALYST)
    response = client.get(person_url(person), {"events-name": "view", "_changelist_filters": "q=abc"})
    next_url = response.context["event_timeline"].next_url
    assert "events-name=view" in next_url and "_changelist_filters=q%3Dabc" in next_url
    following = client.get(person_url(person) + next_url)
    assert set(timeline(following)) == {"view"} and len(timeline(following)) == 15


def test_timeline_reads_the_person_time_index_without_offset(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    Event.unscoped.bulk_create(
        Event(workspace=person.workspace, profile=person, name=f"e{i}", timestamp=T0 + timedelta(minutes=i))
        for i in range(60))
    as_role(client, tenant_a, Role.ANALYST)
    first = client.get(person_url(person))
    with CaptureQueriesContext(connection) as captured:
        client.get(person_url(person) + first.context["event_timeline"].next_url)
    (sql,) = [q["sql"] for q in captured if 'FROM "profiles_event"' in q["sql"]]
    assert "OFFSET" not in sql and "LIMIT 51" in sql
    assert 'ORDER BY "profiles_event"."timestamp" DESC, "profiles_event"."id" DESC' in sql
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "event_ws_profile_time" in plan, plan


# --- segments --------------------------------------------------------------------------------------


def test_segments_show_current_memberships_and_history(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    vip, churned, other = Segment.unscoped.bulk_create(
        Segment(workspace=tenant_a.workspace, name=name, kind="manual", state="ready")
        for name in ("VIPs", "Churn risk", "Someone else's"))
    SegmentMembership.unscoped.bulk_create([
        SegmentMembership(workspace=tenant_a.workspace, segment=vip, profile=person, entered_at=T0),
        SegmentMembership(workspace=tenant_a.workspace, segment=churned, profile=person, entered_at=T0,
                          exited_at=T0 + timedelta(days=2)),
        SegmentMembership(workspace=tenant_a.workspace, segment=other, profile=ProfileFactory(workspace=tenant_a.workspace),
                          entered_at=T0),
    ])
    response = as_role(client, tenant_a, Role.ANALYST).get(person_url(person))
    context = response.context
    assert [m.segment.name for m in context["current"]] == ["VIPs"]
    assert [m.segment.name for m in context["history"]] == ["Churn risk"]
    assert "Someone else" not in response.content.decode()


def test_segment_history_pages_by_keyset(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    segment = Segment.unscoped.create(workspace=tenant_a.workspace, name="Weekly", kind="manual", state="ready")
    SegmentMembership.unscoped.bulk_create(
        SegmentMembership(workspace=tenant_a.workspace, segment=segment, profile=person, entered_at=T0 + timedelta(days=i),
                          exited_at=T0 + timedelta(days=i, hours=1))
        for i in range(60))
    as_role(client, tenant_a, Role.ANALYST)
    first = client.get(person_url(person))
    assert len(first.context["history"]) == 50 and first.context["older_url"]
    second = client.get(person_url(person) + first.context["older_url"])
    assert [m.entered_at for m in second.context["history"]] == [T0 + timedelta(days=i) for i in range(9, -1, -1)]
    assert second.context["older_url"] is None
    broken = client.get(person_url(person), {"segments-before": "x"})
    assert broken.status_code == 200 and "Segments history: this page link is not valid" in broken.content.decode()


# --- attributes ------------------------------------------------------------------------------------


def post_person(client, person, **changes):
    data = {"external_id": person.external_id or "", "email": person.email or "", "phone": person.phone or "",
            "attributes": json.dumps(person.attributes), "time_zone": "",
            "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
            "devices-TOTAL_FORMS": "0", "devices-INITIAL_FORMS": "0", **changes}
    return client.post(person_url(person), data)


@pytest.mark.parametrize("changes, field, message", [
    ({"attributes": json.dumps({"bio": "x" * 1001})}, "attributes", "attributes.bio: attribute values are limited"),
    ({"attributes": json.dumps({"k" * 151: 1})}, "attributes", "attribute names are limited to 150 bytes"),
    ({"attributes": "[1, 2]"}, "attributes", "must be a JSON object"),
    ({"attributes": json.dumps({"": 1})}, "attributes", "attribute names must not be empty"),
    ({"email": "not-an-email"}, "email", "is not a valid email address"),
    ({"phone": "0555"}, "phone", "must be an E.164 phone number"),
])
def test_bad_attributes_and_fields_are_errors_naming_them(client, tenant_a, changes, field, message):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"}, email="kept@example.test")
    response = post_person(as_role(client, tenant_a, Role.MARKETER), person, **changes)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    person.refresh_from_db()
    assert person.attributes == {"plan": "free"} and person.email == "kept@example.test"


def test_good_attributes_are_saved(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "free"})
    response = post_person(as_role(client, tenant_a, Role.MARKETER), person,
                           attributes=json.dumps({"plan": "pro", "age": 30}), phone="+90 555 123 4567")
    assert response.status_code == 302, response.context["adminform"].form.errors
    person.refresh_from_db()
    assert person.attributes == {"plan": "pro", "age": 30} and person.phone == "+905551234567"


# --- suppress --------------------------------------------------------------------------------------


def test_marketer_suppresses_and_unsuppresses_a_person(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, Role.MARKETER)
    assert client.get(action_url(person, "suppress")).status_code == 405
    response = client.post(action_url(person, "suppress"))
    assert response.status_code == 302 and response["Location"] == person_url(person)
    person.refresh_from_db()
    assert person.suppressed
    assert Change.objects.for_workspace(tenant_a.workspace).filter(profile=person).exists()  # the change feed
    assert "Unsuppress" in client.get(person_url(person)).content.decode()
    client.post(action_url(person, "suppress"))
    person.refresh_from_db()
    assert not person.suppressed


@pytest.mark.parametrize("role", [Role.ANALYST, Role.COMPLIANCE, Role.DEVELOPER])
def test_roles_without_change_people_cannot_suppress(client, tenant_a, role):
    person = ProfileFactory(workspace=tenant_a.workspace)
    assert as_role(client, tenant_a, role).post(action_url(person, "suppress")).status_code == 403
    person.refresh_from_db()
    assert not person.suppressed


# --- export ----------------------------------------------------------------------------------------


def test_export_button_posts_the_person_to_the_dsar_export(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ann", email="ann@example.test")
    fill(person, tag="mine")
    body = as_role(client, tenant_a, Role.COMPLIANCE).get(person_url(person)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*data-person-action="export">(.*?)</form>', body, re.S)
    assert form is not None and form[1] == reverse("admin:compliance_export_person")
    fields = dict(re.findall(r'<input type="hidden" name="(id_type|value)" value="([^"]*)">', form[2]))
    assert fields == {"id_type": "cio_id", "value": person.cio_id}
    response = client.post(form[1], fields)
    assert response.status_code == 200 and response["Content-Disposition"].endswith(f'{person.cio_id}.json"')
    bundle = json.loads(b"".join(response.streaming_content))
    assert bundle["person"]["id"] == "ann" and len(bundle["events"]) == 1


# --- delete ----------------------------------------------------------------------------------------


def test_delete_shows_a_confirmation_and_deletes_nothing_until_confirmed(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ann", email="ann@example.test")
    fill(person, 3, tag="mine")
    as_role(client, tenant_a, Role.COMPLIANCE)
    body = client.get(person_url(person)).content.decode()
    assert f'href="{action_url(person, "delete")}"' in body

    page = client.get(action_url(person, "delete"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "ann@example.test" in text and person.cio_id in text
    counts = dict(re.findall(r'<li data-deleted="([^"]+)">[^:]+: (\d+)</li>', text))
    assert counts["events"] == "3" and counts["deliveries (messages sent)"] == "3"
    assert counts["journeys (campaign runs)"] == "3" and counts["devices"] == "3"
    assert counts["segment memberships, current and past"] == "3"

    # Posted without the box ticked: the page again with the error; nothing requested or suppressed.
    refused = client.post(action_url(person, "delete"), {"reason": "asked by email"})
    assert refused.status_code == 400
    assert "Tick the box to confirm the deletion" in refused.content.decode()
    assert not DeletionRecord.unscoped.exists() and not SuppressedIdentifier.unscoped.exists()
    assert Profile.unscoped.filter(pk=person.pk).exists()

    done = client.post(action_url(person, "delete"), {"confirm": "on", "reason": "asked by email"})
    record = DeletionRecord.unscoped.get()
    assert done.status_code == 302 and done["Location"] == reverse("admin:compliance_deletionrecord_change",
                                                                   args=[record.pk])
    assert (record.workspace_id, record.profile_id, record.source, record.requested_by) == (
        tenant_a.workspace.pk, person.pk, "admin", response_user(done))
    assert SuppressedIdentifier.unscoped.filter(workspace=tenant_a.workspace).count() == 2  # id and email
    run_deletion(record)
    assert not Profile.unscoped.filter(pk=person.pk).exists()
    assert not Event.unscoped.filter(profile_id=person.pk).exists()


def response_user(response):
    return response.wsgi_request.user


def test_the_confirmation_says_when_a_deletion_is_already_under_way(client, tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, Role.COMPLIANCE)
    client.post(action_url(person, "delete"), {"confirm": "on"})
    text = client.get(action_url(person, "delete")).content.decode()
    assert "A deletion of this person was already requested" in text


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.DEVELOPER])
def test_roles_without_manage_deletions_cannot_delete(client, tenant_a, role):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, role)
    assert client.get(action_url(person, "delete")).status_code == 403
    assert client.post(action_url(person, "delete"), {"confirm": "on"}).status_code == 403
    assert not DeletionRecord.unscoped.exists()
    assert Profile.unscoped.filter(pk=person.pk).exists()


def test_the_confirmation_page_reads_a_bounded_number_of_queries(client, tenant_a, django_assert_max_num_queries):
    person = ProfileFactory(workspace=tenant_a.workspace)
    as_role(client, tenant_a, Role.COMPLIANCE)
    fill(person, 1, tag="one")
    with CaptureQueriesContext(connection) as few:
        client.get(action_url(person, "delete"))
    fill(person, 50, tag="fifty")
    with django_assert_max_num_queries(len(few)):
        client.get(action_url(person, "delete"))
