"""The journey canvas's page and endpoints (campaigns/admin_canvas.py, docs/console-journeys.md):
the page's data (the definition, the API's JSON Schema, the revision, positions), saving through
the API's update service (the same errors, versions and publish choice), the revision check that
refuses a save based on an older definition (409, nothing stored), positions kept apart from the
definition (moving a node makes no version), the check endpoint's definition and activation
errors; the figures on the nodes (a fixed query count), the simulation for a person, the dry count
of a publish and the diff between versions; roles, a second workspace, CSRF, bad input."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from campaigns.journeys import canvas as canvas_service
from campaigns.journeys import engine, services
from campaigns.journeys.schema import definition_schema
from campaigns.models import Campaign, CampaignVersion, Journey, JourneyStep
from channels.feedback import record_delivery_event
from channels.models import Delivery
from core.context import workspace_scope
from tests.campaigns.conftest import make_config
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
FOUR_STEPS = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Hello"}, "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 2}, "next": "pro"},
    "pro": {"type": "branch", "condition": PRO, "yes": "upsell", "no": "nudge"},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "Go further"}},
    "nudge": {"type": "send", "channel": "email", "content": {"subject": "Try pro", "body": "Upgrade"}},
}}
POSITIONS = {"trigger": {"x": 0, "y": 0}, "steps": {
    "welcome": {"x": 0, "y": 150}, "wait": {"x": 0, "y": 300}, "pro": {"x": 0, "y": 450},
    "upsell": {"x": -150, "y": 600}, "nudge": {"x": 150.26, "y": 600}}}
TRIGGER = {"type": "event", "name": "signed_up"}


def names(view, campaign):
    return reverse(f"admin:campaigns_campaign_{view}", args=[campaign.pk])


def draft(workspace, **definition):
    definition = {"name": "Onboarding", "trigger": {"type": "event", "name": "placeholder"}, **definition}
    return services.create_campaign(workspace=workspace, definition=definition)


def logged_in(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def save(client, campaign, **body):
    body.setdefault("revision", canvas_service.revision_of(Campaign.objects.for_workspace(campaign.workspace).get(
        pk=campaign.pk)))
    return post(client, names("canvas_save", campaign), body)


def stored(campaign) -> Campaign:
    return Campaign.objects.for_workspace(campaign.workspace).get(pk=campaign.pk)


@pytest.fixture
def owner(tenant_a):
    return logged_in(tenant_a.owner)


@pytest.fixture
def campaign(tenant_a):
    return draft(tenant_a.workspace)


# --- the page ------------------------------------------------------------------------------------------

def test_the_page_carries_the_definition_the_schema_and_the_revision(owner, campaign):
    page = owner.get(names("canvas", campaign))
    assert page.status_code == 200
    data = page.context["canvas"]
    assert data["definition"] == {"trigger": {"type": "event", "name": "placeholder", "filters": []},
                                  "workflow": {"start": None, "steps": {}}}
    assert data["schema"] == definition_schema()  # the API's document, not a copy of its own
    assert data["campaign"] == {"id": campaign.pk, "name": "Onboarding", "type": "triggered", "state": "draft",
                                "version": 1, "versioned": False, "revision": canvas_service.revision_of(campaign)}
    assert data["editable"] is True and data["urls"]["save"] == names("canvas_save", campaign)
    assert data["urls"]["check"] == names("canvas_check", campaign)
    assert data["urls"]["message"] == "/admin/campaigns/transactionalmessage/{id}/change/"
    assert data["positions"] == {}
    # What activation would refuse, shown on the nodes from the start.
    assert data["activation_errors"] == [
        {"field": "workflow.steps", "message": "a campaign needs at least one step to be activated"}]
    html = page.content.decode()
    assert 'id="journey-canvas-data"' in html and 'data-ulak-journey-canvas="journey-canvas-data"' in html
    assert "ulak/console/journey-canvas.js" in html and "ulak/console/journey-canvas.css" in html
    # No nonce read: the page keeps style-src 'self' (React Flow injects no <style>).
    policy = page["Content-Security-Policy"]
    assert "nonce-" not in policy and "unsafe-inline" not in policy and "style-src 'self'" in policy


def test_the_page_carries_the_condition_builders_schema_and_urls(owner, tenant_a, tenant_b, campaign):
    """The condition fields use the segment builder: its schema of condition kinds (the segment page's)
    and its name-suggestion endpoints, which answer the session's workspace only."""
    from profiles.segments import builder

    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", attributes={"plan": "pro"})
    ProfileFactory(workspace=tenant_b.workspace, external_id="theirs", attributes={"planet": "mars"})
    page = owner.get(names("canvas", campaign))
    conditions = page.context["canvas"]["conditions"]
    assert conditions["schema"] == builder.schema(tenant_a.workspace) and conditions["reason"] == ""
    assert {kind["name"] for kind in conditions["schema"]["kinds"]} >= {"attribute", "event", "segment", "message"}
    assert conditions["urls"] == {"attributes": "/admin/profiles/segment/builder/attributes/",
                                  "events": "/admin/profiles/segment/builder/events/"}
    assert "ulak/segment-builder.css" in page.content.decode()
    names_seen = owner.get(conditions["urls"]["attributes"], {"q": "pla"}).json()["names"]
    assert "plan" in names_seen and "planet" not in names_seen


def test_a_member_who_may_not_see_people_gets_json_boxes_and_the_reason(tenant_a, campaign):
    """The builder's endpoints need `view_people`: a member whose permissions lack it (the grants are
    per member) gets no builder schema, the reason instead, and the endpoints refuse them."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    member = make_member(tenant_a.workspace, Role.MARKETER)
    UserObjectPermission.objects.filter(
        user=member, permission__codename="view_people", object_pk=str(tenant_a.workspace.pk),
        content_type=ContentType.objects.get_for_model(tenant_a.workspace)).delete()
    client = logged_in(member)
    page = client.get(names("canvas", campaign))
    assert page.status_code == 200
    conditions = page.context["canvas"]["conditions"]
    assert conditions["schema"] is None and conditions["urls"] == {}
    assert "may not see" in conditions["reason"]
    assert "ulak/segment-builder.css" not in page.content.decode()
    assert client.get("/admin/profiles/segment/builder/attributes/", {"q": "p"}).status_code == 403
    # The check still names a condition's error by its path, for the JSON box.
    bad = {"start": "pro", "steps": {"pro": {"type": "branch", "condition": {"attribute": {"field": "plan"}}}}}
    checked = post(client, names("canvas_check", campaign), {"workflow": bad}).json()["errors"]
    assert [error["field"] for error in checked][0].startswith("workflow.steps.pro.condition.attribute")


def test_the_campaign_page_links_to_the_canvas(owner, campaign):
    page = owner.get(names("change", campaign))
    assert f'href="{names("canvas", campaign)}" id="campaign-canvas"' in page.content.decode()


def test_the_url_patterns_resolve_before_the_admins_object_patterns(campaign):
    from django.urls import resolve

    assert resolve(names("canvas", campaign)).url_name == "campaigns_campaign_canvas"
    assert resolve(names("canvas_save", campaign)).url_name == "campaigns_campaign_canvas_save"
    assert resolve(names("canvas_check", campaign)).url_name == "campaigns_campaign_canvas_check"
    for name in ("numbers", "people", "simulate", "preview", "diff"):
        assert resolve(names(f"canvas_{name}", campaign)).url_name == f"campaigns_campaign_canvas_{name}"


# --- saving ----------------------------------------------------------------------------------------------

def test_a_save_stores_the_workflow_and_the_positions_through_the_api_service(owner, tenant_a, campaign):
    before = canvas_service.revision_of(campaign)
    response = save(owner, campaign, trigger=TRIGGER, workflow=FOUR_STEPS,
                    positions={**POSITIONS, "steps": {**POSITIONS["steps"], "gone": {"x": 1, "y": 2}}})
    assert response.status_code == 200, response.content
    answer = response.json()
    campaign = stored(campaign)
    assert campaign.trigger == {"type": "event", "name": "signed_up", "filters": []}
    assert set(campaign.workflow["steps"]) == set(FOUR_STEPS["steps"]) and campaign.workflow["start"] == "welcome"
    assert campaign.workflow["steps"]["pro"]["yes"] == "upsell" and campaign.workflow["steps"]["pro"]["no"] == "nudge"
    # Positions are kept apart from the definition, rounded; a step the workflow lacks is dropped.
    assert campaign.canvas == {"trigger": {"x": 0.0, "y": 0.0}, "steps": {
        **{key: {"x": float(p["x"]), "y": float(p["y"])} for key, p in POSITIONS["steps"].items() if key != "nudge"},
        "nudge": {"x": 150.3, "y": 600.0}}}
    assert answer["positions"] == campaign.canvas
    # A draft's edit rewrites version 1 (the API's rule); the revision moves all the same.
    assert campaign.version == 1 and answer["campaign"]["version"] == 1
    assert answer["campaign"]["revision"] == canvas_service.revision_of(campaign) != before
    assert answer["definition"]["workflow"] == campaign.workflow
    version = CampaignVersion.objects.for_workspace(campaign.workspace).get(campaign=campaign, number=1)
    assert version.definition["workflow"] == campaign.workflow and version.author == tenant_a.owner.email
    assert "canvas" not in version.definition and "canvas" not in services.stored_definition(campaign)
    # Not activatable yet: no email configuration (answered, not refused).
    assert {e["field"] for e in answer["activation_errors"]} == {
        "workflow.steps.welcome.channel", "workflow.steps.upsell.channel", "workflow.steps.nudge.channel"}


def test_the_save_reads_back_as_the_page_and_the_api_show_it(owner, tenant_a, campaign):
    assert save(owner, campaign, trigger=TRIGGER, workflow=FOUR_STEPS, positions=POSITIONS).status_code == 200
    data = owner.get(names("canvas", campaign)).context["canvas"]
    api = tenant_a.app_client().get(f"/v1/campaigns/{campaign.pk}").json()["campaign"]
    assert data["definition"]["workflow"] == api["workflow"] == stored(campaign).workflow
    assert data["positions"]["steps"]["welcome"] == {"x": 0.0, "y": 150.0}


def test_the_save_refuses_what_the_api_refuses_with_the_same_errors(owner, tenant_a, campaign):
    broken = json.loads(json.dumps(FOUR_STEPS))
    broken["steps"]["welcome"]["content"] = {"body": "Hello"}
    broken["steps"]["wait"]["next"] = "nowhere"
    before = stored(campaign)
    response = save(owner, campaign, trigger=TRIGGER, workflow=broken, positions=POSITIONS)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"workflow.steps.welcome.content.subject", "workflow.steps.wait.next"}
    definition = {**services.stored_definition(before), "trigger": TRIGGER, "workflow": broken}
    api = tenant_a.app_client().put(f"/v1/campaigns/{campaign.pk}", definition, format="json")
    assert api.status_code == 400 and api.json()["errors"] == errors
    after = stored(campaign)
    assert after.workflow == before.workflow and after.canvas == {} and after.updated_at == before.updated_at


def test_a_save_based_on_an_older_revision_is_refused_and_stores_nothing(owner, tenant_a, campaign):
    loaded = canvas_service.revision_of(campaign)
    # Someone else saves first — here through the App API; a draft stays version 1.
    other = {**services.stored_definition(campaign), "trigger": TRIGGER, "workflow": FOUR_STEPS}
    assert tenant_a.app_client().put(f"/v1/campaigns/{campaign.pk}", other, format="json").status_code == 200
    theirs = stored(campaign)
    assert theirs.version == 1
    response = save(owner, campaign, revision=loaded, trigger=TRIGGER,
                    workflow={"start": "x", "steps": {"x": {"type": "exit"}}},
                    positions={"steps": {"x": {"x": 1, "y": 1}}})
    assert response.status_code == 409
    answer = response.json()
    # Who saved it: the App API key named "app" (conftest's make_tenant).
    assert answer["errors"] == [{"field": "revision", "message": canvas_service.CONFLICT.format(
        version=1, author="API key app")}]
    assert "changed by someone else" in answer["errors"][0]["message"]
    assert answer["campaign"]["revision"] == canvas_service.revision_of(theirs) != loaded
    after = stored(campaign)
    assert after.workflow == theirs.workflow and after.canvas == {} and after.updated_at == theirs.updated_at


def test_two_canvases_on_one_draft_the_second_save_is_refused(tenant_a, campaign):
    first, second = logged_in(tenant_a.owner), logged_in(make_member(tenant_a.workspace, Role.MARKETER))
    loaded = canvas_service.revision_of(campaign)
    assert save(first, campaign, revision=loaded, trigger=TRIGGER, workflow=FOUR_STEPS).status_code == 200
    refused = save(second, campaign, revision=loaded, trigger=TRIGGER, workflow={"start": None, "steps": {}})
    assert refused.status_code == 409
    assert stored(campaign).workflow["start"] == "welcome"
    # Reloaded (the new revision), the second editor saves.
    assert save(second, campaign, trigger=TRIGGER, workflow={"start": None, "steps": {}}).status_code == 200
    assert stored(campaign).workflow == {"start": None, "steps": {}}


def live_campaign(workspace):
    make_config(workspace, settings={"host": "127.0.0.1", "port": 9})
    campaign = draft(workspace, trigger=TRIGGER, workflow=FOUR_STEPS)
    return services.activate_campaign(campaign=campaign)


def test_moving_nodes_of_a_live_campaign_makes_no_version(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    versions = CampaignVersion.objects.for_workspace(tenant_a.workspace).filter(campaign=campaign).count()
    revision = canvas_service.revision_of(campaign)
    response = save(owner, campaign, trigger=stored(campaign).trigger, workflow=stored(campaign).workflow,
                    positions=POSITIONS)
    assert response.status_code == 200, response.content
    after = stored(campaign)
    assert after.version == campaign.version and after.canvas["steps"]["pro"] == {"x": 0.0, "y": 450.0}
    assert CampaignVersion.objects.for_workspace(tenant_a.workspace).filter(campaign=campaign).count() == versions
    assert response.json()["campaign"]["revision"] == revision  # the definition did not change
    # A change of the workflow makes the next version, as the API's update does.
    changed = json.loads(json.dumps(after.workflow))
    changed["steps"]["wait"]["duration"] = {"days": 3}
    response = save(owner, campaign, trigger=after.trigger, workflow=changed, positions=POSITIONS)
    assert response.status_code == 200 and response.json()["campaign"]["version"] == after.version + 1
    assert stored(campaign).workflow["steps"]["wait"]["duration"] == {"days": 3}


def test_a_live_campaign_with_runs_needs_the_publish_choice(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="p1")
    Journey.objects.for_workspace(tenant_a.workspace).create(campaign=campaign, profile=person, state="waiting",
                                                             step="wait", seq=2, trigger_ref="t:1")
    changed = json.loads(json.dumps(stored(campaign).workflow))
    changed["steps"]["wait"]["duration"] = {"days": 5}
    refused = save(owner, campaign, trigger=TRIGGER, workflow=changed)
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["publish"]
    assert stored(campaign).version == campaign.version
    bad = save(owner, campaign, trigger=TRIGGER, workflow=changed, publish={"runs": "later"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "publish.runs"
    done = save(owner, campaign, trigger=TRIGGER, workflow=changed, publish={"runs": "stay"})
    assert done.status_code == 200 and stored(campaign).version == campaign.version + 1
    version = CampaignVersion.objects.for_workspace(tenant_a.workspace).get(campaign=campaign,
                                                                            number=campaign.version + 1)
    assert version.published["runs"] == "stay"


# --- the check ---------------------------------------------------------------------------------------------

def test_the_check_answers_definition_errors_then_activation_errors_and_stores_nothing(owner, tenant_a, campaign):
    broken = json.loads(json.dumps(FOUR_STEPS))
    broken["steps"]["welcome"]["content"] = {}
    response = post(owner, names("canvas_check", campaign), {"trigger": TRIGGER, "workflow": broken})
    assert response.status_code == 200
    assert response.json()["errors"] == [{"field": "workflow.steps.welcome.content", "kind": "definition",
                                          "message": response.json()["errors"][0]["message"]}]
    # Valid, but not activatable: an unreachable step and no email configuration.
    lonely = json.loads(json.dumps(FOUR_STEPS))
    lonely["steps"]["lost"] = {"type": "exit"}
    errors = post(owner, names("canvas_check", campaign), {"trigger": TRIGGER, "workflow": lonely}).json()["errors"]
    assert {(e["field"], e["kind"]) for e in errors} == {
        ("workflow.steps.lost", "activation"), ("workflow.steps.welcome.channel", "activation"),
        ("workflow.steps.upsell.channel", "activation"), ("workflow.steps.nudge.channel", "activation")}
    make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": 9})
    assert post(owner, names("canvas_check", campaign), {"trigger": TRIGGER, "workflow": FOUR_STEPS}).json() == \
        {"errors": []}
    assert stored(campaign).workflow == {"start": None, "steps": {}}


def test_a_trigger_error_is_named_by_its_path(owner, campaign):
    errors = post(owner, names("canvas_check", campaign), {"trigger": {"type": "event"},
                                                           "workflow": FOUR_STEPS}).json()["errors"]
    assert [e["field"] for e in errors] == ["trigger.name"]


# --- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"trigger": TRIGGER, "workflow": FOUR_STEPS}, "revision"),
    ({"revision": "", "workflow": FOUR_STEPS}, "revision"),
    ({"revision": "x", "name": "Renamed"}, "name"),
])
def test_save_input_errors_name_the_field(owner, campaign, body, field):
    response = post(owner, names("canvas_save", campaign), body)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize(("positions", "field"), [
    ([], "positions"),
    ({"steps": {"welcome": {"x": 1}}}, "positions.steps.welcome"),
    ({"steps": {"welcome": {"x": "1", "y": 2}}}, "positions.steps.welcome.x"),
    ({"steps": {"welcome": {"x": 1, "y": 10**9}}}, "positions.steps.welcome.y"),
    ({"steps": {"we lcome": {"x": 1, "y": 1}}}, "positions.steps.we lcome"),
    ({"trigger": {"x": True, "y": 1}}, "positions.trigger.x"),
    ({"nodes": {}}, "positions.nodes"),
])
def test_bad_positions_are_refused_naming_the_path_and_nothing_is_stored(owner, campaign, positions, field):
    response = save(owner, campaign, trigger=TRIGGER, workflow=FOUR_STEPS, positions=positions)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert stored(campaign).workflow == {"start": None, "steps": {}}


def test_a_body_that_is_not_a_json_object_is_refused(owner, campaign):
    for url in (names("canvas_save", campaign), names("canvas_check", campaign)):
        assert owner.post(url, "{not json", content_type="application/json").status_code == 400
        response = owner.post(url, "[1]", content_type="application/json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] is None
        assert owner.get(url).status_code == 405


def test_a_post_without_the_csrf_token_is_refused(tenant_a, campaign):
    strict = logged_in(tenant_a.owner, csrf=True)
    assert save(strict, campaign, trigger=TRIGGER, workflow=FOUR_STEPS).status_code == 403
    assert stored(campaign).workflow == {"start": None, "steps": {}}


# --- roles and workspaces ---------------------------------------------------------------------------------------

def test_an_analyst_sees_and_checks_but_may_not_save(tenant_a, campaign):
    analyst = logged_in(make_member(tenant_a.workspace, Role.ANALYST))
    page = analyst.get(names("canvas", campaign))
    assert page.status_code == 200
    assert page.context["canvas"]["editable"] is False and page.context["canvas"]["urls"]["save"] is None
    checked = post(analyst, names("canvas_check", campaign), {"trigger": TRIGGER, "workflow": FOUR_STEPS})
    assert checked.status_code == 200
    refused = save(analyst, campaign, trigger=TRIGGER, workflow=FOUR_STEPS, positions=POSITIONS)
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] is None
    after = stored(campaign)
    assert after.workflow == {"start": None, "steps": {}} and after.canvas == {}


def test_a_marketer_saves(tenant_a, campaign):
    marketer = logged_in(make_member(tenant_a.workspace, Role.MARKETER))
    assert marketer.get(names("canvas", campaign)).context["canvas"]["editable"] is True
    assert save(marketer, campaign, trigger=TRIGGER, workflow=FOUR_STEPS).status_code == 200


def test_a_role_without_the_campaigns_view_permission_gets_nothing(tenant_a, campaign):
    officer = logged_in(make_member(tenant_a.workspace, Role.COMPLIANCE))
    assert officer.get(names("canvas", campaign)).status_code == 403
    assert post(officer, names("canvas_check", campaign), {"workflow": FOUR_STEPS}).status_code == 403
    assert save(officer, campaign, trigger=TRIGGER, workflow=FOUR_STEPS).status_code == 403
    assert stored(campaign).workflow == {"start": None, "steps": {}}


def test_another_workspaces_campaign_is_a_404_on_every_endpoint(owner, tenant_b):
    theirs = draft(tenant_b.workspace)
    revision = canvas_service.revision_of(theirs)
    assert owner.get(names("canvas", theirs)).status_code == 404
    assert post(owner, names("canvas_check", theirs), {"workflow": FOUR_STEPS}).status_code == 404
    response = post(owner, names("canvas_save", theirs), {"revision": revision, "trigger": TRIGGER,
                                                         "workflow": FOUR_STEPS, "positions": POSITIONS})
    assert response.status_code == 404
    after = Campaign.objects.for_workspace(tenant_b.workspace).get(pk=theirs.pk)
    assert after.workflow == {"start": None, "steps": {}} and after.canvas == {}



# --- the figures on the nodes --------------------------------------------------------------------------------

def enter(campaign, n: int, *, prefix: str = "p") -> list[Journey]:
    """`n` new runs of `campaign` at its start step, due now (as a trigger makes them)."""
    ws = campaign.workspace
    now = timezone.now()
    return [Journey.objects.for_workspace(ws).create(
        campaign=campaign, profile=ProfileFactory(workspace=ws, external_id=f"{prefix}{i}",
                                                  email=f"{prefix}{i}@example.test"),
        state="active", step=campaign.workflow["start"], next_run_at=now, entered_at=now,
        version=campaign.version) for i in range(n)]


def numbers(client, campaign):
    response = client.get(names("canvas_numbers", campaign))
    assert response.status_code == 200, response.content
    return response.json()["numbers"]


def test_the_numbers_are_the_campaign_metrics_per_step_with_rates(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    assert numbers(owner, campaign)["steps"]["welcome"] == {
        "waiting": 0, "entered": 0, "completed": 0, "exited": 0, "failed": 0,
        "messages": {"sent": 0, "opened": 0, "clicked": 0, "converted": 0,
                     "opened_rate": None, "clicked_rate": None, "converted_rate": None}}
    enter(campaign, 4)
    engine.tick()  # the engine sends the welcome and waits at the delay
    deliveries = list(Delivery.objects.for_workspace(tenant_a.workspace).order_by("pk"))
    assert len(deliveries) == 4
    with workspace_scope(tenant_a.workspace):
        for delivery in deliveries:
            record_delivery_event(delivery, "sent")
        record_delivery_event(deliveries[0], "opened")
        record_delivery_event(deliveries[0], "clicked")
    figures = numbers(owner, campaign)
    welcome, wait = figures["steps"]["welcome"], figures["steps"]["wait"]
    assert {k: welcome[k] for k in ("entered", "completed", "waiting", "exited", "failed")} == {
        "entered": 4, "completed": 4, "waiting": 0, "exited": 0, "failed": 0}
    assert welcome["messages"] == {"sent": 4, "opened": 1, "clicked": 1, "converted": 0,
                                   "opened_rate": 0.25, "clicked_rate": 0.25, "converted_rate": 0.0}
    assert wait["waiting"] == 4 and wait["entered"] == 4 and "messages" not in wait
    assert figures["totals"]["entered"] == 4 and figures["totals"]["live"] == 4
    assert figures["since"] is None  # all time
    # The same figures as the API's metrics.
    api = {row["id"]: row for row in services_metrics(campaign)["steps"]}
    assert api["wait"]["waiting"] == wait["waiting"] and api["welcome"]["messages"]["opened"] == 1


def services_metrics(campaign):
    from campaigns.journeys.selectors import campaign_metrics
    return campaign_metrics(stored(campaign))


def test_the_numbers_show_each_variant_and_the_winner(owner, tenant_a):
    make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": 9})
    workflow = {"start": "welcome", "steps": {"welcome": {
        "type": "send", "channel": "email", "content": {"subject": "A", "body": "a"},
        "variants": [{"key": "a", "weight": 1, "content": {"subject": "A", "body": "a"}},
                     {"key": "b", "weight": 1, "content": {"subject": "B", "body": "b"}}],
        "winner": {"metric": "opened"}}}}
    campaign = services.activate_campaign(campaign=draft(tenant_a.workspace, trigger=TRIGGER, workflow=workflow))
    enter(campaign, 6)
    engine.tick()
    ab = numbers(owner, campaign)["steps"]["welcome"]["ab"]
    assert ab["metric"] == "opened" and ab["winner"] is None
    assert [v["key"] for v in ab["variants"]] == ["a", "b"]
    assert sum(v["sent"] for v in ab["variants"]) == 0  # handed off, not yet reported sent
    from campaigns.models import VariantDecision
    VariantDecision.objects.for_workspace(tenant_a.workspace).create(
        campaign=campaign, step="welcome", state="decided", winner="b", decided_at=timezone.now(), figures={})
    assert numbers(owner, campaign)["steps"]["welcome"]["ab"]["winner"] == "b"


def test_the_numbers_cost_the_same_queries_for_one_run_as_for_many(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    enter(campaign, 1, prefix="one")
    engine.tick()
    url = names("canvas_numbers", campaign)
    owner.get(url)
    with CaptureQueriesContext(connection) as one:
        assert owner.get(url).status_code == 200
    enter(campaign, 8, prefix="many")
    engine.tick()
    with CaptureQueriesContext(connection) as many:
        assert owner.get(url).status_code == 200
    assert len(many) == len(one) <= 20


# --- the simulation ---------------------------------------------------------------------------------------------

def simulate(client, campaign, body):
    return post(client, names("canvas_simulate", campaign), body)


def counts(workspace) -> tuple:
    return (Journey.objects.for_workspace(workspace).count(), JourneyStep.objects.for_workspace(workspace).count(),
            Delivery.objects.for_workspace(workspace).count())


def test_a_simulation_walks_the_path_for_a_person_and_stores_nothing(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test",
                   attributes={"plan": "pro", "first_name": "Ada"})
    before = counts(tenant_a.workspace)
    response = simulate(owner, campaign, {"customer_id": "ada", "event": {"name": "signed_up", "data": {"x": 1}}})
    assert response.status_code == 200, response.content
    result = response.json()["simulation"]
    assert result["entered"] is True
    path = [(step["key"], step["outcome"]) for step in result["steps"]]
    assert path == [("welcome", "sent"), ("wait", "waiting"), ("wait", "waited"), ("pro", "yes"),
                    ("upsell", "sent")]
    assert result["steps"][2]["at"] - result["steps"][0]["at"] == 2 * 86400  # the virtual clock
    assert "conditions" in result["steps"][3]["note"]
    assert [(m["step"], m["subject"], m["text"].strip()) for m in result["messages"]] == [
        ("welcome", "Hi", "Hello"), ("upsell", "More", "Go further")]
    assert all("body" not in message for message in result["messages"])  # no HTML on the canvas
    assert result["ended"]["state"] == "completed"
    assert counts(tenant_a.workspace) == before
    # Someone not on the trigger's event does not enter.
    refused = simulate(owner, campaign, {"customer_id": "ada", "event": {"name": "other"}}).json()["simulation"]
    assert refused["entered"] is False and refused["reason"] and refused["steps"] == []
    # By email.
    by_email = simulate(owner, campaign, {"customer_id": "ada@example.test", "id_type": "email",
                                          "event": {"name": "signed_up"}})
    assert by_email.status_code == 200 and by_email.json()["simulation"]["entered"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({}, "customer_id"),
    ({"customer_id": ""}, "customer_id"),
    ({"customer_id": 5}, "customer_id"),
    ({"customer_id": "ada", "id_type": "phone"}, "id_type"),
    ({"customer_id": "ada", "event": "signed_up"}, "event"),
    ({"customer_id": "ada", "event": {"name": ""}}, "event.name"),
    ({"customer_id": "ada", "event": {"name": "signed_up", "data": []}}, "event.data"),
    ({"customer_id": "ada", "data": 3}, "data"),
    ({"customer_id": "ada", "when": 1}, "when"),
])
def test_simulation_input_errors_name_the_field(owner, tenant_a, body, field):
    campaign = live_campaign(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    response = simulate(owner, campaign, body)
    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_the_people_search_finds_this_workspaces_people_only(owner, tenant_a, tenant_b):
    campaign = live_campaign(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.test")
    ProfileFactory(workspace=tenant_b.workspace, external_id="adam", email="adam@example.test")
    url = names("canvas_people", campaign)
    found = owner.get(url, {"q": "ad"}).json()
    assert [p["id"] for p in found["people"]] == ["ada"] and found["more"] is False
    assert owner.get(url, {"q": "ADA@EX"}).json()["people"][0]["email"] == "ada@example.test"
    assert owner.get(url, {"q": ""}).json() == {"people": [], "more": False}
    long = owner.get(url, {"q": "x" * 255})
    assert long.status_code == 400 and long.json()["errors"][0]["field"] == "q"
    # Another workspace's person is nobody to the simulation.
    response = simulate(owner, campaign, {"customer_id": "adam", "event": {"name": "signed_up"}})
    assert response.status_code == 404 and response.json()["errors"][0]["field"] == "customer_id"


# --- the dry count and the diff -------------------------------------------------------------------------------

def test_the_preview_counts_the_runs_a_publish_affects_and_stores_nothing(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    enter(campaign, 3)
    engine.tick()  # three runs wait at `wait`
    changed = json.loads(json.dumps(stored(campaign).workflow))
    del changed["steps"]["wait"]
    changed["steps"]["welcome"]["next"] = "pro"
    changed["steps"]["later"] = {"type": "delay", "duration": {"days": 1}, "next": "nudge"}
    changed["steps"]["pro"]["no"] = "later"
    url = names("canvas_preview", campaign)
    answer = post(owner, url, {"trigger": TRIGGER, "workflow": changed})
    assert answer.status_code == 200, answer.content
    preview = answer.json()["preview"]
    assert preview["live_runs"] == 3 and preview["publish_required"] is True and preview["added"] == ["later"]
    rows = {row["key"]: row for row in preview["steps"]}
    assert rows["wait"]["runs"] == 3 and rows["wait"]["change"] == "removed"
    assert rows["welcome"]["change"] == "changed" and rows["upsell"]["change"] == "unchanged"
    # The publish given is checked: move must map the removed step where runs are.
    bad = post(owner, url, {"trigger": TRIGGER, "workflow": changed, "publish": {"runs": "move"}})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "publish.removed.wait"
    ok = post(owner, url, {"trigger": TRIGGER, "workflow": changed,
                           "publish": {"runs": "move", "removed": {"wait": "pro"}}})
    assert ok.status_code == 200
    assert stored(campaign).workflow == campaign.workflow
    # The definition's errors first, naming their path; an unknown field.
    broken = json.loads(json.dumps(changed))
    broken["steps"]["welcome"]["content"] = {}
    assert post(owner, url, {"workflow": broken}).json()["errors"][0]["field"] == "workflow.steps.welcome.content"
    assert post(owner, url, {"workflow": changed, "revision": "x"}).json()["errors"][0]["field"] == "revision"
    # Then the save with that choice moves them.
    done = save(owner, campaign, trigger=TRIGGER, workflow=changed, publish={"runs": "move", "removed": {"wait": "pro"}})
    assert done.status_code == 200, done.content
    assert set(Journey.objects.for_workspace(tenant_a.workspace).filter(campaign=campaign)
               .values_list("step", flat=True)) == {"pro"}


def test_the_diff_between_versions(owner, tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    changed = json.loads(json.dumps(stored(campaign).workflow))
    del changed["steps"]["nudge"]
    changed["steps"]["pro"]["no"] = "landing"
    changed["steps"]["landing"] = {"type": "exit"}
    assert save(owner, campaign, trigger=TRIGGER, workflow=changed).status_code == 200
    url = names("canvas_diff", campaign)
    diff = owner.get(url).json()["diff"]
    assert (diff["version"], diff["against"]) == (2, 1)
    assert diff["steps"]["added"] == ["landing"] and diff["steps"]["removed"] == ["nudge"]
    assert diff["steps"]["changed"] == {"pro": {"no": {"old": "nudge", "new": "landing"}}}
    assert "nudge" in diff["workflows"]["against"]["steps"] and "nudge" not in diff["workflows"]["version"]["steps"]
    back = owner.get(url, {"version": 1, "against": 2}).json()["diff"]
    assert back["steps"]["added"] == ["nudge"] and back["steps"]["removed"] == ["landing"]
    page = owner.get(names("canvas", campaign)).context["canvas"]
    assert [v["number"] for v in page["versions"]] == [2, 1]
    for query, field, status in ((
            {"version": "x"}, "version", 400), ({"version": 1}, "against", 400), ({"version": 9}, "version", 404),
            ({"against": 7}, "against", 404), ({"against": "-1"}, "against", 400), ({"v": 1}, "v", 400)):
        response = owner.get(url, query)
        assert response.status_code == status, (query, response.content)
        assert response.json()["errors"][0]["field"] == field


# --- roles and workspaces for the new endpoints ---------------------------------------------------------------

def test_an_analyst_reads_numbers_simulates_previews_and_diffs(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    analyst = logged_in(make_member(tenant_a.workspace, Role.ANALYST))
    assert analyst.get(names("canvas_numbers", campaign)).status_code == 200
    assert simulate(analyst, campaign, {"customer_id": "ada", "event": {"name": "signed_up"}}).status_code == 200
    assert post(analyst, names("canvas_preview", campaign), {"workflow": FOUR_STEPS}).status_code == 200
    assert analyst.get(names("canvas_diff", campaign), {"version": 1, "against": 1}).status_code == 200


def test_without_the_campaigns_view_permission_the_new_endpoints_are_refused(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    officer = logged_in(make_member(tenant_a.workspace, Role.COMPLIANCE))
    assert officer.get(names("canvas_numbers", campaign)).status_code == 403
    assert officer.get(names("canvas_people", campaign), {"q": "a"}).status_code == 403
    assert simulate(officer, campaign, {"customer_id": "ada", "event": {"name": "signed_up"}}).status_code == 403
    assert post(officer, names("canvas_preview", campaign), {"workflow": FOUR_STEPS}).status_code == 403
    assert officer.get(names("canvas_diff", campaign), {"version": 1, "against": 1}).status_code == 403


def test_the_new_endpoints_answer_404_for_another_workspaces_campaign(owner, tenant_b):
    theirs = live_campaign(tenant_b.workspace)
    ProfileFactory(workspace=tenant_b.workspace, external_id="bob")
    assert owner.get(names("canvas_numbers", theirs)).status_code == 404
    assert owner.get(names("canvas_people", theirs), {"q": "b"}).status_code == 404
    assert simulate(owner, theirs, {"customer_id": "bob", "event": {"name": "signed_up"}}).status_code == 404
    assert post(owner, names("canvas_preview", theirs), {"workflow": FOUR_STEPS}).status_code == 404
    assert owner.get(names("canvas_diff", theirs), {"version": 1, "against": 1}).status_code == 404


def test_the_new_posts_need_the_csrf_token_and_the_gets_refuse_posts(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    strict = logged_in(tenant_a.owner, csrf=True)
    assert simulate(strict, campaign, {"customer_id": "ada"}).status_code == 403
    assert post(strict, names("canvas_preview", campaign), {"workflow": FOUR_STEPS}).status_code == 403
    owner = logged_in(tenant_a.owner)
    assert owner.get(names("canvas_simulate", campaign)).status_code == 405
    assert owner.post(names("canvas_numbers", campaign)).status_code == 405
    for url in (names("canvas_simulate", campaign), names("canvas_preview", campaign)):
        response = owner.post(url, "[1]", content_type="application/json")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] is None
