"""A person's journeys drawn on the person page (campaigns/person_sections.py, docs/console-people.md
"Journeys drawn"): the newest runs with the workflow of each run's version, the steps passed through
in order from the step log with their outcome and time, the step the run is at now; a fixed number of
queries whatever the number of runs and visits; no personal data of the step log's detail; another
workspace's person is a 404; only roles that see campaigns get it."""

import json
import re
from html import unescape
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from campaigns import person_sections
from campaigns.journeys import services
from campaigns.models import CampaignVersion, Journey, JourneyStep
from tests.campaigns.conftest import make_config
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
V1 = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Hello"}, "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 2}, "next": "pro"},
    "pro": {"type": "branch", "condition": PRO, "yes": "upsell", "no": None},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "Go further"}},
}}
V2 = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Hello"}, "next": "later"},
    "later": {"type": "delay", "duration": {"days": 5}},
}}


def page_data(response) -> dict | None:
    html = response.content.decode()
    match = re.search(r'data-ulak-journey-paths="([^"]*)"', html)
    return json.loads(unescape(match.group(1))) if match else None


def person_url(person):
    return reverse("admin:profiles_profile_change", args=[person.pk])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def live_campaign(workspace, name="Onboarding", workflow=V1):
    make_config(workspace, settings={"host": "127.0.0.1", "port": 9})  # its send steps need one to activate
    made = services.create_campaign(workspace=workspace, definition={
        "name": name, "trigger": {"type": "event", "name": "signed_up"}, "workflow": workflow})
    return services.activate_campaign(campaign=made)


def run(campaign, person, *, visits, state="waiting", step=None, version=None, at=T0, next_run_at=None, key=""):
    """A run of `person` with its step log: `visits` is [(step, type, outcome)] in order."""
    ws = campaign.workspace
    journey = Journey.objects.for_workspace(ws).create(
        campaign=campaign, profile=person, state=state, step=step or (visits[-1][0] if visits else ""),
        seq=len(visits), version=version or campaign.version, entered_at=at, next_run_at=next_run_at, key=key,
        trigger_ref=f"test:{person.pk}:{at.isoformat()}:{campaign.pk}")
    JourneyStep.objects.for_workspace(ws).bulk_create([
        JourneyStep(workspace=ws, journey=journey, campaign=campaign, seq=i + 1, step=key, type=kind, outcome=outcome,
                    created_at=at + timedelta(minutes=i))
        for i, (key, kind, outcome) in enumerate(visits)])
    return journey


def test_each_run_is_drawn_with_its_versions_workflow_its_path_and_its_current_step(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    done = run(campaign, person, state="completed", at=T0, visits=[
        ("welcome", "send", "sent"), ("wait", "delay", "waited"), ("pro", "branch", "yes"), ("upsell", "send", "sent")])
    # The campaign changes (version 2); a run still on version 1 is drawn with version 1's workflow.
    services.update_campaign(campaign=campaign, definition={"workflow": V2}, partial=True, publish={"runs": "stay"})
    campaign.refresh_from_db()
    assert campaign.version == 2
    waiting = run(campaign, person, version=1, at=T0 + timedelta(days=1), next_run_at=T0 + timedelta(days=3),
                  visits=[("welcome", "send", "sent"), ("wait", "delay", "waiting")])
    newest = run(campaign, person, version=2, state="active", at=T0 + timedelta(days=2), visits=[("welcome", "send", "sent")],
                 step="later", key="second")  # a journey key: two live runs

    data = page_data(logged_in(tenant_a.owner).get(person_url(person)))
    assert [row["id"] for row in data["runs"]] == [newest.pk, waiting.pk, done.pk]  # newest first
    assert data["more"] is False and data["drawn"] == person_sections.DRAWN
    assert data["schema"]["$defs"]["step_branch"]  # the definition's JSON Schema, for the outcomes

    first, second, third = data["runs"]
    assert set(first["definition"]["workflow"]["steps"]) == {"welcome", "later"}
    assert first["current"] == "later" and first["version"] == 2
    assert set(second["definition"]["workflow"]["steps"]) == {"welcome", "wait", "pro", "upsell"}  # version 1
    assert second["definition"]["workflow"] == CampaignVersion.objects.for_workspace(tenant_a.workspace).get(
        campaign=campaign, number=1).definition["workflow"]
    assert second["current"] == "wait" and second["next_run_at"].startswith("2026-03-05")
    assert [(v["seq"], v["key"], v["outcome"]) for v in second["visits"]] == [(1, "welcome", "sent"), (2, "wait", "waiting")]
    assert third["current"] is None and third["state"] == "completed"  # ended: at no step now
    assert [v["key"] for v in third["visits"]] == ["welcome", "wait", "pro", "upsell"]
    assert [v["at"] for v in third["visits"]] == [(T0 + timedelta(minutes=i)).isoformat() for i in range(4)]
    assert third["visits"][0]["when"] and third["campaign"] == {
        "id": campaign.pk, "name": "Onboarding", "url": reverse("admin:campaigns_campaign_change", args=[campaign.pk])}
    assert third["url"] == reverse("admin:campaigns_journey_change", args=[done.pk])


def test_the_newest_runs_are_drawn_and_the_rest_linked(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    person = ProfileFactory(workspace=tenant_a.workspace)
    runs = [run(campaign, person, state="completed", at=T0 + timedelta(hours=i), visits=[("welcome", "send", "sent")])
            for i in range(person_sections.DRAWN + 2)]
    response = logged_in(tenant_a.owner).get(person_url(person))
    data = page_data(response)
    assert [row["id"] for row in data["runs"]] == [r.pk for r in reversed(runs)][: person_sections.DRAWN]
    assert data["more"] is True
    body = response.content.decode()
    assert body.count('data-jp-canvas="') == person_sections.DRAWN
    assert f"{reverse('admin:campaigns_journey_changelist')}?person={person.pk}" in body
    assert "ulak/console/journey-path.js" in body and "ulak/console/journey-path.css" in body
    assert body.count('class="journey-row"') == len(runs)  # the table still lists them all


def test_a_long_step_log_draws_its_latest_visits(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    person = ProfileFactory(workspace=tenant_a.workspace)
    many = person_sections.VISITS + 3
    run(campaign, person, visits=[("wait", "delay", "waited")] * (many - 1) + [("pro", "branch", "no")])
    data = page_data(logged_in(tenant_a.owner).get(person_url(person)))
    drawn = data["runs"][0]
    assert drawn["earlier"] is True and len(drawn["visits"]) == person_sections.VISITS
    assert drawn["visits"][0]["seq"] == 4 and drawn["visits"][-1] == {**drawn["visits"][-1], "seq": many, "key": "pro"}


def test_the_step_logs_personal_detail_is_not_shown(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    person = ProfileFactory(workspace=tenant_a.workspace)
    journey = run(campaign, person, visits=[("welcome", "send", "failed")], state="failed")
    JourneyStep.objects.for_workspace(tenant_a.workspace).filter(journey=journey).update(
        detail={"reason": "bounced", "answer": "my secret reply", "to": "ada@private.test"})
    response = logged_in(tenant_a.owner).get(person_url(person))
    assert page_data(response)["runs"][0]["visits"][0]["note"] == "bounced"
    body = response.content.decode()
    assert "my secret reply" not in body and "ada@private.test" not in body


def section_queries(client, person) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(person_url(person))
    assert response.status_code == 200
    return len(captured)


def test_the_sections_queries_do_not_grow_with_runs_visits_or_versions(tenant_a):
    campaign = live_campaign(tenant_a.workspace)
    other = live_campaign(tenant_a.workspace, name="Other")
    person = ProfileFactory(workspace=tenant_a.workspace)
    client = logged_in(tenant_a.owner)
    run(campaign, person, visits=[("welcome", "send", "sent")])
    one = section_queries(client, person)
    services.update_campaign(campaign=campaign, definition={"workflow": V2}, partial=True, publish={"runs": "stay"})
    for i in range(8):
        run(other if i % 2 else campaign, person, state="completed", at=T0 + timedelta(hours=i + 1), version=1 + (i // 2) % 2 if i % 2 == 0 else 1,
            visits=[("welcome", "send", "sent"), ("wait", "delay", "waited"), ("pro", "branch", "no")] * 3)
    many = section_queries(client, person)
    assert many == one, (one, many)
    assert len(page_data(client.get(person_url(person)))["runs"]) == person_sections.DRAWN


def test_a_person_without_runs_has_nothing_drawn(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace)
    response = logged_in(tenant_a.owner).get(person_url(person))
    assert page_data(response) is None and "journey-path.js" not in response.content.decode()
    assert "Not in any journey." in response.content.decode()


def test_another_workspaces_person_is_a_404_and_their_runs_are_not_drawn(tenant_a, tenant_b):
    theirs = ProfileFactory(workspace=tenant_b.workspace, external_id="globex-person")
    run(live_campaign(tenant_b.workspace, name="Globex journey"), theirs, visits=[("welcome", "send", "sent")])
    client = logged_in(tenant_a.owner)
    assert client.get(person_url(theirs)).status_code == 404
    mine = ProfileFactory(workspace=tenant_a.workspace)
    run(live_campaign(tenant_a.workspace), mine, visits=[("welcome", "send", "sent")])
    response = client.get(person_url(mine))
    assert "Globex journey" not in response.content.decode()
    assert [row["campaign"]["name"] for row in page_data(response)["runs"]] == ["Onboarding"]


@pytest.mark.parametrize("role, drawn", [(Role.ANALYST, True), (Role.MARKETER, True), (Role.DEVELOPER, True),
                                         (Role.COMPLIANCE, False)])
def test_only_roles_that_see_campaigns_get_the_drawing(tenant_a, role, drawn):
    person = ProfileFactory(workspace=tenant_a.workspace)
    run(live_campaign(tenant_a.workspace), person, visits=[("welcome", "send", "sent")])
    response = logged_in(make_member(tenant_a.workspace, role)).get(person_url(person))
    assert response.status_code == 200
    assert (page_data(response) is not None) is drawn
