"""The segment builder's admin endpoints (profiles/admin_segments.py, profiles/segments/builder.py): the
schema of every registered condition kind, attribute and event names suggested from the session's
workspace only, the preview (count and example people equal to the App API's, errors with the path
of each bad node), permissions, another workspace's segment, bad input, and query counts that do
not grow with rows. The browser side: tests/browser/test_segment_builder.py."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.db.models import Q

from accounts.roles import permissions_for
from accounts.services import sync_workspace_permissions
from campaigns.models import Campaign
from campaigns.services import create_transactional_message
from channels.models import SubscriptionTopic
from profiles.models import ObjectType, Segment, SegmentMembership
from profiles.segments import services
from profiles.segments.base import ConditionKind
from profiles.segments.registry import condition_kind, condition_kinds, register_condition_kind, unregister_condition_kind
from tests.support.factories import EventFactory, ProfileFactory, make_member

URL = "/admin/profiles/segment/"
SCHEMA, ATTRIBUTES, EVENTS, PREVIEW = (f"{URL}builder/{name}/" for name in ("schema", "attributes", "events", "preview"))
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
RECENT_PURCHASE = {"event": {"name": "purchase", "within": {"value": 30, "unit": "days"}}}


def post(client, body, **extra):
    return client.post(PREVIEW, json.dumps(body), content_type="application/json", **extra)


def fill(workspace, n, *, now, prefix=""):
    """n people with plan/city attributes and purchases of different ages (and one other event)."""
    for i in range(n):
        person = ProfileFactory(workspace=workspace, external_id=f"{prefix}p{i}",
                                attributes={"plan": "pro" if i % 2 else "free", f"{prefix}city": "Izmir"})
        EventFactory(profile=person, name=f"{prefix}purchase", timestamp=now - timedelta(days=5 + 20 * (i % 3)))
        EventFactory(profile=person, name=f"{prefix}page_view", timestamp=now - timedelta(hours=i))


@pytest.fixture
def marketer_client(tenant_a):
    client = Client()
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    return client


# --- schema ------------------------------------------------------------------------------------------

def test_the_schema_lists_every_registered_kind_with_its_fields(marketer_client):
    response = marketer_client.get(SCHEMA)
    assert response.status_code == 200
    kinds = response.json()["kinds"]
    assert [kind["name"] for kind in kinds] == [kind.name for kind in condition_kinds()]
    assert [kind["name"] for kind in kinds] == ["attribute", "event", "object", "segment", "channel", "message"]
    for kind in kinds:
        assert kind["label"] and kind["body"]["type"] in ("object", "one_of")
        assert condition_kind(kind["name"]).validate  # each describes a registered kind
    event = next(kind for kind in kinds if kind["name"] == "event")
    assert [f["key"] for f in event["body"]["fields"]] == ["operator", "name", "count", "within", "between", "filters"]
    assert event["body"]["fields"][1]["spec"]["suggest"] == "events"
    assert response.json()["branches"] == ["and", "or", "not"]


def test_a_kind_registered_later_appears_in_the_schema(marketer_client):
    """A new kind shows with its own description, or, without one, as raw JSON."""
    attribute = condition_kind("attribute")
    described = ConditionKind("vip", validate=lambda body, path, context: body, compile=lambda ws, body, now: Q(),
                              depends_on=lambda body: set(), reference=lambda body, context: True,
                              describe=lambda workspace: {"label": "VIP", "help": "", "default": {"level": 1},
                                                          "body": {"type": "object", "fields": [
                                                              {"key": "level", "label": "level",
                                                               "spec": {"type": "integer", "min": 1}}]}})
    bare = ConditionKind("bare", validate=attribute.validate, compile=attribute.compile,
                         depends_on=attribute.depends_on, reference=attribute.reference)
    register_condition_kind(described)
    register_condition_kind(bare)
    try:
        kinds = {kind["name"]: kind for kind in marketer_client.get(SCHEMA).json()["kinds"]}
    finally:
        unregister_condition_kind("vip")
        unregister_condition_kind("bare")
    assert kinds["vip"]["label"] == "VIP" and kinds["vip"]["body"]["fields"][0]["key"] == "level"
    assert kinds["bare"]["body"] == {"type": "json"} and kinds["bare"]["label"] == "Bare"


def test_the_schema_offers_only_the_workspaces_own_choices(marketer_client, tenant_a, tenant_b):
    for tenant, tag in ((tenant_a, "ours"), (tenant_b, "theirs")):
        ws = tenant.workspace
        ObjectType.unscoped.create(workspace=ws, type_id=f"{tag}-type", name=f"{tag} companies")
        services.create_segment(workspace=ws, name=f"{tag} segment", kind="manual", conditions={})
        SubscriptionTopic.unscoped.create(workspace=ws, key=f"{tag}-news", name=f"{tag} news")
        create_transactional_message(workspace=ws, name=f"{tag} welcome", channel="email", subject="Hi")
        Campaign.unscoped.create(workspace=ws, name=f"{tag} onboarding", type="triggered")
        Campaign.unscoped.create(workspace=ws, name=f"{tag} newsletter", type="broadcast")
    text = marketer_client.get(SCHEMA).content.decode()
    for tag in ("ours-type", "ours segment", "ours-news", "ours welcome", "ours onboarding", "ours newsletter"):
        assert tag in text
    assert "theirs" not in text
    kinds = {kind["name"]: kind for kind in json.loads(text)["kinds"]}
    message = {f["key"]: f["spec"] for f in kinds["message"]["body"]["fields"]}
    assert [c["label"] for c in message["campaign_id"]["choices"]] == ["ours onboarding"]
    assert [c["label"] for c in message["broadcast_id"]["choices"]] == ["ours newsletter"]


# --- suggestions -------------------------------------------------------------------------------------

def test_attribute_names_come_from_the_workspaces_people_only(marketer_client, tenant_a, tenant_b):
    now = timezone.now()
    fill(tenant_a.workspace, 3, now=now)
    fill(tenant_b.workspace, 3, now=now, prefix="globex_")
    names = marketer_client.get(ATTRIBUTES).json()["names"]
    assert names == ["email", "phone", "id", "cio_id", "unsubscribed", "created_at", "city", "plan"]
    assert marketer_client.get(ATTRIBUTES, {"q": "p"}).json()["names"] == ["phone", "plan"]
    assert marketer_client.get(ATTRIBUTES, {"q": "globex"}).json()["names"] == []


def test_event_names_come_from_the_workspaces_events_only(marketer_client, tenant_a, tenant_b):
    now = timezone.now()
    fill(tenant_a.workspace, 3, now=now)
    fill(tenant_b.workspace, 3, now=now, prefix="globex_")
    EventFactory(profile=ProfileFactory(workspace=tenant_a.workspace), name="signup", timestamp=now)
    assert marketer_client.get(EVENTS).json()["names"] == ["page_view", "purchase", "signup"]
    assert marketer_client.get(EVENTS, {"q": "p"}).json()["names"] == ["page_view", "purchase"]
    assert marketer_client.get(EVENTS, {"q": "pu"}).json()["names"] == ["purchase"]
    assert marketer_client.get(EVENTS, {"q": "globex_"}).json()["names"] == []


def test_a_too_long_prefix_is_refused_naming_q(marketer_client):
    for url in (ATTRIBUTES, EVENTS):
        response = marketer_client.get(url, {"q": "x" * 151})
        assert response.status_code == 400
        assert response.json() == {"errors": [{"path": "q", "message": "must be at most 150 characters"}]}


def test_suggestions_and_preview_take_a_fixed_number_of_queries(marketer_client, tenant_a):
    """Counted with 3 people and with 30 (each with events): the same number of queries."""
    now = timezone.now()
    tree = {"and": [PRO, RECENT_PURCHASE, {"not": {"channel": {"has": "phone"}}}]}

    def counts():
        out = []
        for call in (lambda: marketer_client.get(ATTRIBUTES, {"q": "p"}), lambda: marketer_client.get(EVENTS),
                     lambda: post(marketer_client, {"conditions": tree}), lambda: marketer_client.get(SCHEMA)):
            with CaptureQueriesContext(connection) as queries:
                assert call().status_code == 200
            out.append(len(queries))
        return out

    fill(tenant_a.workspace, 3, now=now)
    few = counts()
    fill(tenant_a.workspace, 27, now=now, prefix="more_")
    assert counts() == few


# --- preview -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tree", [
    {"and": [PRO, RECENT_PURCHASE]},
    PRO,
    {"or": [{"not": PRO}, {"event": {"name": "purchase", "count": {"operator": "at_least", "value": 2}}}]},
    {"event": {"name": "page_view", "operator": "not_performed", "within": {"value": 3, "unit": "hours"}}},
    {"and": [{"attribute": {"field": "city", "operator": "in", "value": ["Izmir", "Ankara"]}},
             {"channel": {"has": "email"}}]},
])
def test_the_preview_count_is_the_app_apis(marketer_client, tenant_a, tenant_b, tree):
    now = timezone.now()
    fill(tenant_a.workspace, 9, now=now)
    fill(tenant_b.workspace, 5, now=now)  # same names in another workspace: never counted
    response = post(marketer_client, {"conditions": tree})
    assert response.status_code == 200, response.content
    api = tenant_a.app_client().post("/v1/segments/preview", {"conditions": tree}, format="json").json()
    body = response.json()
    assert body["count"] == api["count"] > 0
    assert len(body["people"]) == min(5, api["count"])
    assert [p["label"] for p in body["people"]] == [p["id"] for p in api["sample"][:5]]  # the same first people
    first = body["people"][0]
    assert first["url"] == f"/admin/profiles/profile/{first['id']}/change/"
    assert marketer_client.get(first["url"]).status_code == 200


def test_an_invalid_definition_is_a_400_naming_every_bad_node(marketer_client, tenant_a):
    tree = {"and": [
        PRO,
        {"attribute": {"field": "plan", "operator": "nope", "value": "x"}},
        {"not": {"event": {"name": "purchase", "within": {"value": 0, "unit": "days"}}}},
        {"or": []},
        {"segment": {"id": 999999}},
    ]}
    response = post(marketer_client, {"conditions": tree})
    assert response.status_code == 400
    errors = {error["path"]: error["message"] for error in response.json()["errors"]}
    assert set(errors) == {"conditions.and.1.attribute.operator", "conditions.and.2.not.event.within.value",
                           "conditions.and.3.or", "conditions.and.4.segment.id"}
    assert errors["conditions.and.2.not.event.within.value"] == "must be a whole number, 1 or more"
    assert errors["conditions.and.4.segment.id"] == "no segment of this workspace has this id"
    assert not Segment.unscoped.exists() and not SegmentMembership.unscoped.exists()


def test_a_tree_past_the_size_limit_is_refused_in_a_bounded_number_of_queries(marketer_client, tenant_a):
    """The tree is checked whole, then each leaf on its own, each pass stopping at the language's
    node limit (a segment leaf is one query): 300 leaves cost about 400 queries, not more."""
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    tree = {"or": [{"segment": {"id": segment.pk}} for _ in range(300)]}
    with CaptureQueriesContext(connection) as queries:
        response = post(marketer_client, {"conditions": tree})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "conditions.or.199", "message": "too many conditions (at most 200)"}]
    assert len(queries) < 2 * 200 + 30


def test_bad_bodies_are_400s_naming_the_field(marketer_client):
    assert post(marketer_client, {}).json() == {"errors": [{"path": "conditions", "message": "is required"}]}
    assert post(marketer_client, [PRO]).status_code == 400
    response = marketer_client.post(PREVIEW, "{not json", content_type="application/json")
    assert response.status_code == 400 and "Malformed JSON" in response.json()["errors"][0]["message"]
    response = marketer_client.post(PREVIEW, '{"conditions": {"attribute": {"field": "a\\u0000"}}}',
                                    content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "conditions.attribute.field"
    for segment in ("x", True, -1, 2**64):
        response = post(marketer_client, {"conditions": PRO, "segment": segment})
        assert response.json() == {"errors": [{"path": "segment", "message": "must be a segment id"}]}
    response = post(marketer_client, {"conditions": {}})
    assert response.json()["errors"][0]["path"] == "conditions"
    assert marketer_client.get(PREVIEW).status_code == 405
    assert marketer_client.post(SCHEMA).status_code == 405


def test_the_segment_being_edited_may_not_name_itself(marketer_client, tenant_a):
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    tree = {"or": [PRO, {"segment": {"id": segment.pk}}]}
    response = post(marketer_client, {"conditions": tree, "segment": segment.pk})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "conditions.or.1.segment.id",
                                          "message": "a segment cannot be defined by its own membership"}]
    assert post(marketer_client, {"conditions": tree}).status_code == 200  # another segment may name it


def test_another_workspaces_segment_answers_404(marketer_client, tenant_b):
    theirs = services.create_segment(workspace=tenant_b.workspace, name="Theirs", kind="data", conditions=PRO)
    assert post(marketer_client, {"conditions": PRO, "segment": theirs.pk}).status_code == 404
    assert post(marketer_client, {"conditions": {"segment": {"id": theirs.pk}}}).json()["errors"] == [
        {"path": "conditions.segment.id", "message": "no segment of this workspace has this id"}]
    assert marketer_client.get(f"{URL}{theirs.pk}/change/").status_code == 404


# --- permissions -------------------------------------------------------------------------------------

def test_without_view_people_every_endpoint_is_403(tenant_a):
    user = make_member(tenant_a.workspace, "marketer")
    granted = permissions_for("marketer") - {"view_people", "change_people"}
    sync_workspace_permissions(user=user, workspace=tenant_a.workspace, codenames=granted)
    client = Client()
    client.force_login(user)
    for url in (SCHEMA, ATTRIBUTES, EVENTS):
        assert client.get(url).status_code == 403
    assert post(client, {"conditions": PRO}).status_code == 403
    assert client.get(f"{URL}add/").status_code == 403


def test_without_change_people_one_previews_but_never_saves(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace, attributes={"plan": "pro"})
    client = Client()
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    assert post(client, {"conditions": PRO}).json()["count"] == 1
    assert client.get(EVENTS).status_code == 200
    response = client.post(f"{URL}add/", {"name": "Pros", "kind": "data", "conditions": json.dumps(PRO)})
    assert response.status_code == 403
    assert not Segment.unscoped.exists()
    segment = services.create_segment(workspace=tenant_a.workspace, name="Pros", kind="data", conditions=PRO)
    page = client.get(f"{URL}{segment.pk}/change/").content.decode()
    data = builder_data(page)
    assert data["editable"] is False and data["conditions"] == PRO
    response = client.post(f"{URL}{segment.pk}/change/", {"name": "Renamed", "kind": "data", "conditions": "{}"})
    assert response.status_code == 403
    segment.refresh_from_db()
    assert segment.name == "Pros" and segment.conditions == PRO


def test_preview_needs_the_csrf_token(tenant_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(tenant_a.workspace, "marketer"))
    assert post(client, {"conditions": PRO}).status_code == 403
    client.get(f"{URL}add/")
    token = client.cookies["csrftoken"].value
    assert post(client, {"conditions": PRO}, HTTP_X_CSRFTOKEN=token).status_code == 200


# --- the pages ---------------------------------------------------------------------------------------

def builder_data(page: str) -> dict:
    return json.loads(re.search(r'<script id="segment-builder-data" type="application/json">(.*?)</script>', page,
                                re.S).group(1))


def test_the_pages_carry_the_builder_and_keep_the_textarea(marketer_client, tenant_a):
    page = marketer_client.get(f"{URL}add/").content.decode()
    assert 'name="conditions"' in page and "<textarea" in page  # works without JavaScript
    assert "docs/segments.md" not in page
    assert "ulak/console/segment-builder.js" in page and "ulak/segment-builder.css" in page
    data = builder_data(page)
    assert [kind["name"] for kind in data["schema"]["kinds"]] == [kind.name for kind in condition_kinds()]
    assert data["conditions"] == {} and data["segment"] is None and data["editable"] is True
    assert data["urls"] == {"schema": SCHEMA, "attributes": ATTRIBUTES, "events": EVENTS, "preview": PREVIEW}

    tree = {"and": [PRO, RECENT_PURCHASE]}
    segment = services.create_segment(workspace=tenant_a.workspace, name="Buyers", kind="data", conditions=tree)
    data = builder_data(marketer_client.get(f"{URL}{segment.pk}/change/").content.decode())
    assert data["conditions"] == segment.conditions and data["segment"] == segment.pk and data["kind"] == "data"

    # A refused save shows the posted definition again (or none, when it was not JSON).
    response = marketer_client.post(f"{URL}add/", {"name": "Bad", "kind": "data",
                                                   "conditions": json.dumps({"event": {"name": ""}})})
    assert response.status_code == 200 and "conditions.event.name" in response.content.decode()
    assert builder_data(response.content.decode())["conditions"] == {"event": {"name": ""}}
    response = marketer_client.post(f"{URL}add/", {"name": "Bad", "kind": "data", "conditions": "{nope"})
    assert builder_data(response.content.decode())["conditions"] is None
    assert not Segment.unscoped.filter(name="Bad").exists()


def test_the_builders_definition_saves_through_the_form(marketer_client, tenant_a, django_capture_on_commit_callbacks):
    """What the builder writes into the textarea (compact, unsorted) saves normalized."""
    written = json.dumps({"and": [PRO, {"event": {"name": "purchase", "operator": "performed",
                                                  "count": {"operator": "at_least", "value": 1},
                                                  "within": {"value": 30, "unit": "days"}, "filters": []}}]})
    with django_capture_on_commit_callbacks():
        response = marketer_client.post(f"{URL}add/", {"name": "Buyers", "kind": "data", "conditions": written})
    assert response.status_code == 302
    segment = Segment.objects.for_workspace(tenant_a.workspace).get(name="Buyers")
    assert segment.conditions == json.loads(written)


# --- the recompute's live progress (the progress island polls the status) ---------------------------

def test_the_status_of_a_building_segment_and_its_page(client, tenant_a, tenant_b):
    from django.urls import reverse

    from profiles.models import Segment

    building = Segment.objects.for_workspace(tenant_a.workspace).create(
        workspace=tenant_a.workspace, name="Building", kind="data", state="building", progress=40, member_count=7,
        conditions={"attribute": {"field": "plan", "operator": "eq", "value": "pro"}})
    theirs = Segment.objects.for_workspace(tenant_b.workspace).create(workspace=tenant_b.workspace, name="T",
                                                                      kind="manual", state="ready")
    client.force_login(tenant_a.owner)
    status = client.get(reverse("admin:profiles_segment_status", args=[building.pk]))
    assert status.json() == {"state": "building", "state_label": "Building", "done": 40, "total": 100,
                             "finished": False, "member_count": 7}
    page = client.get(reverse("admin:profiles_segment_change", args=[building.pk])).content.decode()
    assert 'id="segment-progress"' in page and "ulak/console/progress.js" in page
    Segment.objects.for_workspace(tenant_a.workspace).filter(pk=building.pk).update(state="ready", progress=100)
    assert client.get(reverse("admin:profiles_segment_status", args=[building.pk])).json()["finished"] is True
    assert 'id="segment-progress"' not in client.get(
        reverse("admin:profiles_segment_change", args=[building.pk])).content.decode()
    assert client.get(reverse("admin:profiles_segment_status", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("admin:profiles_segment_status", args=[building.pk])).status_code == 405
