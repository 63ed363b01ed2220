"""The console for journeys: the campaign list and page (JSON checked by the services, errors by
field path), state changes as POST-only actions, per-step counts, the journey list and page with
the step log, a person's journeys; roles, a second workspace, query bounds."""

import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.roles import Role
from campaigns.journeys import services
from campaigns.models import Campaign, CampaignTrigger, Journey, JourneyStep
from core.models import AuditEntry
from profiles.models import Profile
from tests.campaigns.conftest import make_config
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

MAX_CHANGELIST_QUERIES = 15
MAX_PAGE_QUERIES = 25

WORKFLOW = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Hello"}, "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "pro"},
    "pro": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
            "yes": "upsell", "no": None},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "x"}},
}}


def url(model, view="changelist", *args):
    return reverse(f"admin:campaigns_{model._meta.model_name}_{view}", args=args)


def action_url(campaign, action):
    return reverse(f"admin:campaigns_campaign_{action}", args=[campaign.pk])


def as_owner(client, tenant):
    client.force_login(tenant.owner)
    return client


def as_role(client, tenant, role):
    client.force_login(make_member(tenant.workspace, role))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def make_campaign(workspace, *, activate=False, **definition):
    definition = {"name": "Welcome", "trigger": {"type": "event", "name": "signed_up"}, "workflow": WORKFLOW,
                  **definition}
    campaign = services.create_campaign(workspace=workspace, definition=definition)
    return services.activate_campaign(campaign=campaign) if activate else campaign


def add_runs(campaign, n, *, state="waiting", step="wait", tag="p"):
    """`n` runs of `campaign` (one person each) with two step-log rows each: sent at welcome, then
    waiting (or the `state` given) at `step`."""
    ws = campaign.workspace
    runs = []
    for i in range(n):
        person = ProfileFactory(workspace=ws, external_id=f"{tag}-{campaign.pk}-{i}")
        run = Journey.objects.for_workspace(ws).create(campaign=campaign, profile=person, state=state, step=step,
                                                       seq=2, trigger_ref=f"{tag}:{i}")
        JourneyStep.objects.for_workspace(ws).bulk_create([
            JourneyStep(workspace=ws, journey=run, campaign=campaign, seq=1, step="welcome", type="send",
                        outcome="sent"),
            JourneyStep(workspace=ws, journey=run, campaign=campaign, seq=2, step=step, type="delay",
                        outcome="waiting" if state == "waiting" else "exited")])
        runs.append(run)
    return runs


def form_data(**overrides):
    data = {"name": "Welcome", "key": "", "description": "", "type": "triggered", "journey_key": "",
            "trigger": {"type": "event", "name": "signed_up"}, "audience": None, "re_entry": {}, "exit": {},
            "goal": None, "workflow": WORKFLOW}
    data.update(overrides)
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in data.items()}


def field_errors(response, name) -> list[str]:
    return list(response.context["adminform"].form.errors.get(name, []))


# --- the campaign list -----------------------------------------------------------------------------

def test_campaign_list_shows_state_and_run_counts_of_own_workspace(client, two_tenants,
                                                                   django_assert_max_num_queries):
    a, b = two_tenants
    make_config(a.workspace)
    live = make_campaign(a.workspace, name="Onboarding", activate=True)
    add_runs(live, 2)
    add_runs(live, 1, state="completed", step="", tag="done")
    draft = make_campaign(a.workspace, name="Draft one")
    theirs = make_campaign(b.workspace, name="Globex drip")
    as_owner(client, a)
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES):
        response = client.get(url(Campaign))
    assert response.status_code == 200
    shown = {c.pk: c for c in response.context["cl"].result_list}
    assert set(shown) == {live.pk, draft.pk} and theirs.pk not in shown
    assert (shown[live.pk].state, shown[live.pk].live_runs, shown[live.pk].total_runs) == ("active", 2, 3)
    assert (shown[draft.pk].state, shown[draft.pk].live_runs, shown[draft.pk].total_runs) == ("draft", 0, 0)
    page = response.content.decode()
    assert "Onboarding" in page and "Globex drip" not in page
    assert f'?campaign={live.pk}">3</a>' in page  # the run count links to the campaign's journeys


def test_campaign_list_queries_do_not_grow_with_campaigns_or_runs(client, tenant_a, django_assert_max_num_queries):
    ws = tenant_a.workspace
    make_config(ws)
    add_runs(make_campaign(ws, activate=True), 1)
    as_owner(client, tenant_a)
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES) as few:
        assert client.get(url(Campaign)).status_code == 200
    for i in range(8):
        add_runs(make_campaign(ws, name=f"Campaign {i}", activate=True), 3, tag=f"t{i}")
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES) as many:
        response = client.get(url(Campaign))
    assert len(response.context["cl"].result_list) == 9
    assert len(many) <= len(few), (len(few), len(many))


@pytest.mark.parametrize("role, allowed", [(Role.MARKETER, True), (Role.ANALYST, True), (Role.DEVELOPER, True),
                                           (Role.COMPLIANCE, False)])
def test_campaign_and_journey_lists_follow_the_role(client, tenant_a, role, allowed):
    campaign = make_campaign(tenant_a.workspace)
    (run,) = add_runs(campaign, 1)
    as_role(client, tenant_a, role)
    for target in (url(Campaign), url(Campaign, "change", campaign.pk), url(Journey),
                   url(Journey, "change", run.pk)):
        assert client.get(target).status_code == (200 if allowed else 403), target


# --- adding and changing a campaign ----------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER])
def test_add_a_campaign_through_the_service(client, tenant_a, role):
    member = tenant_a.owner if role == Role.OWNER else make_member(tenant_a.workspace, role)
    client.force_login(member)
    assert client.get(url(Campaign, "add")).status_code == 200
    response = client.post(url(Campaign, "add"), form_data(key="welcome", exit={"events": ["cancelled"]}))
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.for_workspace(tenant_a.workspace).get()
    assert (campaign.name, campaign.key, campaign.state, campaign.version) == ("Welcome", "welcome", "draft", 1)
    assert campaign.workflow["steps"]["welcome"]["content"] == {"subject": "Hi", "body": "Hello"}
    # The service normalized what was left out.
    assert campaign.re_entry == {"mode": "once", "concurrent": False}
    assert campaign.exit_rules == {"when_unmatched": False, "events": ["cancelled"], "on_goal": False}
    entry = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(Campaign),
                                      object_pk=str(campaign.pk), action=AuditEntry.Action.CREATE).get()
    assert entry.source == "admin" and entry.actor_email == member.email


def test_definition_errors_show_on_their_fields_and_nothing_is_stored(client, tenant_a):
    workflow = {"start": "welcome", "steps": {
        "welcome": {"type": "send", "channel": "email", "content": {"body": "Hello"}, "next": "gone"}}}
    response = as_owner(client, tenant_a).post(url(Campaign, "add"), form_data(
        trigger={"type": "event"}, re_entry={"mode": "sometimes"}, workflow=workflow))
    assert response.status_code == 200
    assert field_errors(response, "workflow") == [
        "workflow.steps.welcome.content.subject: is required for an email message"]
    assert field_errors(response, "trigger") == ["trigger.name: is required"]
    assert field_errors(response, "re_entry") == ["re_entry.mode: must be once, always or after"]
    assert "workflow.steps.welcome.content.subject: is required" in response.content.decode()
    assert not Campaign.objects.for_workspace(tenant_a.workspace).exists()
    assert not CampaignTrigger.objects.for_workspace(tenant_a.workspace).exists()


def test_invalid_json_shows_on_its_field_and_the_text_comes_back(client, tenant_a):
    response = as_owner(client, tenant_a).post(url(Campaign, "add"), form_data(
        workflow='{"start": "welcome", "steps": {', name=""))
    assert response.status_code == 200
    assert field_errors(response, "workflow") == ["Enter a valid JSON."]
    assert field_errors(response, "name") == ["This field is required."]
    assert '{&quot;start&quot;: &quot;welcome&quot;, &quot;steps&quot;: {' in response.content.decode()
    assert not Campaign.objects.for_workspace(tenant_a.workspace).exists()


def test_a_taken_key_is_a_field_error(client, tenant_a):
    make_campaign(tenant_a.workspace, key="welcome")
    response = as_owner(client, tenant_a).post(url(Campaign, "add"), form_data(name="Other", key="welcome"))
    assert response.status_code == 200
    assert field_errors(response, "key") == ["another campaign of this workspace has this key"]
    assert Campaign.objects.for_workspace(tenant_a.workspace).count() == 1


def test_change_a_campaign_through_the_service(client, tenant_a):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace, activate=True)
    as_owner(client, tenant_a)
    page = client.get(url(Campaign, "change", campaign.pk))
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert json.loads(form["workflow"].value()) == campaign.workflow  # the stored definition, as JSON
    workflow = {**WORKFLOW, "steps": {**WORKFLOW["steps"], "wait": {"type": "delay", "duration": {"hours": 2},
                                                                    "next": "pro"}}}
    response = client.post(url(Campaign, "change", campaign.pk), form_data(
        trigger={"type": "event", "name": "registered"}, workflow=workflow))
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert campaign.version == 2
    assert campaign.trigger["name"] == "registered"
    assert campaign.workflow["steps"]["wait"]["duration"] == {"hours": 2}
    # The trigger index of the live campaign follows (the service rebuilt it); the form's check saved nothing.
    assert set(CampaignTrigger.objects.for_workspace(tenant_a.workspace).values_list("kind", "key")) == \
        {("event", "registered")}


def test_a_live_campaign_is_checked_for_activation_on_save(client, tenant_a):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace, activate=True)
    workflow = {**WORKFLOW, "steps": {**WORKFLOW["steps"], "orphan": {"type": "exit"}}}
    response = as_owner(client, tenant_a).post(url(Campaign, "change", campaign.pk), form_data(workflow=workflow))
    assert response.status_code == 200
    assert field_errors(response, "workflow") == ["workflow.steps.orphan: is unreachable from the start step"]
    campaign.refresh_from_db()
    assert campaign.version == 1 and "orphan" not in campaign.workflow["steps"]
    # ...and the type of a live campaign is fixed.
    response = client.post(url(Campaign, "change", campaign.pk), form_data(type="broadcast",
                                                                           trigger={"type": "api"}))
    assert field_errors(response, "type") == ["can only change while the campaign is a draft"]


def test_analysts_see_the_definition_but_cannot_change_it(client, tenant_a):
    campaign = make_campaign(tenant_a.workspace, name="Before")
    as_role(client, tenant_a, Role.ANALYST)
    page = client.get(url(Campaign, "change", campaign.pk))
    assert page.status_code == 200
    content = page.content.decode()
    assert "&quot;signed_up&quot;" in content and 'name="workflow"' not in content
    assert "campaign-activate" not in content  # no state buttons
    assert client.post(url(Campaign, "change", campaign.pk), form_data(name="After")).status_code == 403
    assert client.get(url(Campaign, "add")).status_code == 403
    assert client.post(url(Campaign, "add"), form_data(name="New")).status_code == 403
    assert client.post(url(Campaign, "delete", campaign.pk), {"post": "yes"}).status_code == 403
    assert client.post(action_url(campaign, "activate")).status_code == 403
    campaign.refresh_from_db()
    assert (campaign.name, campaign.state) == ("Before", "draft")
    assert Campaign.objects.for_workspace(tenant_a.workspace).count() == 1


@pytest.mark.parametrize("role", [Role.OWNER, Role.ANALYST])
def test_a_webhook_campaign_page_shows_its_url_read_only(client, tenant_a, settings, role):
    settings.ULAK_PUBLIC_URL = "https://ulak.example.test/"
    hooked = make_campaign(tenant_a.workspace, name="Hooked", trigger={"type": "webhook"})
    events = make_campaign(tenant_a.workspace, name="Events")
    if role == Role.OWNER:
        as_owner(client, tenant_a)
        assert "Webhook URL" not in client.get(url(Campaign, "add")).content.decode()
    else:
        as_role(client, tenant_a, role)
    expected = f"https://ulak.example.test/hooks/campaigns/{hooked.webhook_token}"
    content = client.get(url(Campaign, "change", hooked.pk)).content.decode()
    assert "Webhook URL" in content and f"<code>{expected}</code>" in content
    assert 'name="webhook_url' not in content  # shown, never a form field
    assert "Webhook URL" not in client.get(url(Campaign, "change", events.pk)).content.decode()


# --- state changes ---------------------------------------------------------------------------------

def test_activate_pause_resume_and_stop_by_post(client, tenant_a):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace)
    as_role(client, tenant_a, Role.MARKETER)
    page = client.get(url(Campaign, "change", campaign.pk)).content.decode()
    assert 'id="campaign-activate"' in page and 'id="campaign-pause"' not in page
    change = url(Campaign, "change", campaign.pk)
    for action, state in [("activate", "active"), ("pause", "paused"), ("resume", "active"),
                          ("stop_drain", "draining"), ("activate", "active")]:
        response = client.post(action_url(campaign, action))
        assert (response.status_code, response["Location"]) == (302, change), action
        campaign.refresh_from_db()
        assert campaign.state == state, action
    page = client.get(change).content.decode()
    assert 'id="campaign-pause"' in page and 'id="campaign-stop-exit"' in page and 'id="campaign-activate"' not in page


def test_stop_exit_ends_every_live_run(client, tenant_a):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace, activate=True)
    runs = add_runs(campaign, 3)
    response = as_owner(client, tenant_a).post(action_url(campaign, "stop_exit"), follow=True)
    assert "Stopped: every run exited." in messages_of(response)
    campaign.refresh_from_db()
    assert campaign.state == "stopped"
    assert {(r.state, r.exit_reason) for r in Journey.objects.for_workspace(tenant_a.workspace)} == \
        {("exited", "campaign_stopped")}
    assert JourneyStep.objects.for_workspace(tenant_a.workspace).filter(journey__in=runs, outcome="exited").count() == 3


@pytest.mark.parametrize("action", ["activate", "pause", "resume", "stop_exit", "stop_drain"])
def test_a_get_changes_nothing(client, tenant_a, action):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace, activate=action != "activate")
    if action == "resume":
        services.pause_campaign(campaign=campaign)
    campaign.refresh_from_db()
    before = campaign.state
    assert as_owner(client, tenant_a).get(action_url(campaign, action)).status_code == 405
    campaign.refresh_from_db()
    assert campaign.state == before


def test_refused_activation_names_each_step(client, tenant_a):
    # No email configuration: both send steps are named; and nothing changes.
    campaign = make_campaign(tenant_a.workspace)
    response = as_owner(client, tenant_a).post(action_url(campaign, "activate"), follow=True)
    assert response.status_code == 200
    shown = messages_of(response)
    assert any("workflow.steps.welcome.channel: no active email configuration" in m for m in shown), shown
    assert any("workflow.steps.upsell.channel: no active email configuration" in m for m in shown), shown
    campaign.refresh_from_db()
    assert campaign.state == "draft"
    assert not CampaignTrigger.objects.for_workspace(tenant_a.workspace).exists()


def test_a_conflicting_state_change_is_a_message(client, tenant_a):
    campaign = make_campaign(tenant_a.workspace)
    response = as_owner(client, tenant_a).post(action_url(campaign, "pause"), follow=True)
    assert messages_of(response) == ["Pause refused: only an active campaign can be paused (this one is draft)"]
    campaign.refresh_from_db()
    assert campaign.state == "draft"


def test_delete_a_draft_but_not_a_live_campaign(client, tenant_a):
    make_config(tenant_a.workspace)
    draft = make_campaign(tenant_a.workspace, name="Draft")
    live = make_campaign(tenant_a.workspace, name="Live", activate=True)
    add_runs(live, 2)
    as_owner(client, tenant_a)
    confirm = client.get(url(Campaign, "delete", live.pk))
    assert confirm.status_code == 200 and dict(confirm.context["model_count"]) == {"campaigns": 1, "journeys": 2}
    response = client.post(url(Campaign, "delete", live.pk), {"post": "yes"}, follow=True)
    assert "stop the campaign first (mode exit)" in messages_of(response)
    assert Campaign.objects.for_workspace(tenant_a.workspace).filter(pk=live.pk).exists()
    assert client.post(url(Campaign, "delete", draft.pk), {"post": "yes"}).status_code == 302
    assert not Campaign.objects.for_workspace(tenant_a.workspace).filter(pk=draft.pk).exists()


# --- another workspace's campaigns and journeys do not exist ----------------------------------------

def test_another_workspace_campaign_is_404(client, two_tenants):
    a, b = two_tenants
    make_config(b.workspace)
    theirs = make_campaign(b.workspace, name="Theirs", activate=True)
    (run,) = add_runs(theirs, 1)
    as_owner(client, a)
    assert client.get(url(Campaign, "change", theirs.pk)).status_code == 404
    assert client.post(url(Campaign, "change", theirs.pk), form_data(name="pwned")).status_code == 404
    assert client.post(url(Campaign, "delete", theirs.pk), {"post": "yes"}).status_code == 404
    for action in ("pause", "stop_exit", "stop_drain"):
        assert client.post(action_url(theirs, action)).status_code == 404, action
    assert client.get(url(Journey, "change", run.pk)).status_code == 404
    theirs.refresh_from_db()
    run.refresh_from_db()
    assert (theirs.name, theirs.state, run.state) == ("Theirs", "active", "waiting")
    # Filtering our journey list by their campaign or person shows nothing.
    response = client.get(url(Journey), {"campaign": theirs.pk})
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    response = client.get(url(Journey), {"person": run.profile_id})
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []


# --- per-step counts and the journey pages ---------------------------------------------------------

def test_change_page_shows_runs_and_per_step_counts(client, tenant_a, django_assert_max_num_queries):
    make_config(tenant_a.workspace)
    campaign = make_campaign(tenant_a.workspace, activate=True)
    add_runs(campaign, 3)
    add_runs(campaign, 1, state="exited", step="gone", tag="old")  # a step since removed from the workflow
    as_owner(client, tenant_a)
    with django_assert_max_num_queries(MAX_PAGE_QUERIES) as few:
        response = client.get(url(Campaign, "change", campaign.pk))
    rows = {row["key"]: row for row in response.context["step_counts"]}
    assert [row["key"] for row in response.context["step_counts"]] == ["welcome", "wait", "pro", "upsell", "gone"]
    assert (rows["welcome"]["type"], rows["welcome"]["here"], rows["welcome"]["outcomes"]) == ("send", 0,
                                                                                               [("sent", 4)])
    assert (rows["wait"]["here"], rows["wait"]["executions"], rows["wait"]["outcomes"]) == (3, 3, [("waiting", 3)])
    assert (rows["gone"]["type"], rows["gone"]["outcomes"]) == (None, [("exited", 1)])
    assert (rows["upsell"]["here"], rows["upsell"]["executions"]) == (0, 0)
    states = {state: n for state, _, n, _ in response.context["run_states"]}
    assert (states["waiting"], states["exited"], states["completed"]) == (3, 1, 0)
    content = response.content.decode()
    assert 'id="campaign-steps"' in content and "waiting: 3" in content
    assert f"?campaign={campaign.pk}&amp;state__exact=waiting" in content
    add_runs(campaign, 10, tag="more")
    with django_assert_max_num_queries(MAX_PAGE_QUERIES) as many:
        assert client.get(url(Campaign, "change", campaign.pk)).status_code == 200
    assert len(many) == len(few)


def test_journey_list_filters_by_campaign_state_and_person(client, tenant_a, django_assert_max_num_queries):
    ws = tenant_a.workspace
    one, two = make_campaign(ws, name="One"), make_campaign(ws, name="Two")
    waiting = add_runs(one, 2)
    done = add_runs(one, 1, state="completed", step="", tag="done")
    other = add_runs(two, 1, tag="two")
    as_role(client, tenant_a, Role.ANALYST)

    def shown(**params):
        with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES) as captured:
            response = client.get(url(Journey), params)
        assert response.status_code == 200
        return {run.pk for run in response.context["cl"].result_list}, len(captured)

    everything, few = shown()
    assert everything == {r.pk for r in waiting + done + other}
    assert shown(campaign=one.pk)[0] == {r.pk for r in waiting + done}
    assert shown(campaign=one.pk, state__exact="waiting")[0] == {r.pk for r in waiting}
    assert shown(person=other[0].profile_id)[0] == {other[0].pk}
    assert shown(campaign="x")[0] == set()
    add_runs(two, 15, tag="bulk")
    _, many = shown()
    assert many <= few, (few, many)


def test_journey_page_shows_the_step_log_and_is_read_only(client, tenant_a):
    campaign = make_campaign(tenant_a.workspace)
    (run,) = add_runs(campaign, 1)
    as_owner(client, tenant_a)
    response = client.get(url(Journey, "change", run.pk))
    assert response.status_code == 200
    assert [(row.seq, row.step, row.outcome) for row, _ in response.context["step_log"]] == \
        [(1, "welcome", "sent"), (2, "wait", "waiting")]
    content = response.content.decode()
    assert 'id="journey-step-log"' in content and url(Campaign, "change", campaign.pk) in content
    assert client.get(url(Journey, "add")).status_code == 403
    assert client.post(url(Journey, "change", run.pk), {"state": "completed"}).status_code == 403
    assert client.post(url(Journey, "delete", run.pk), {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.state == "waiting"


def test_person_page_lists_their_journeys(client, two_tenants):
    a, b = two_tenants
    campaign = make_campaign(a.workspace, name="Onboarding")
    (run,) = add_runs(campaign, 1)
    other = make_campaign(a.workspace, name="Someone else's")
    add_runs(other, 1, tag="else")
    person = run.profile
    as_role(client, a, Role.ANALYST)
    response = client.get(reverse("admin:profiles_profile_change", args=[person.pk]))
    content = response.content.decode()
    assert 'id="person-journeys"' in content
    assert reverse("admin:campaigns_journey_change", args=[run.pk]) in content
    assert "Onboarding" in content and "Someone else" not in content
    # Compliance sees people but not campaigns: no journeys section.
    as_role(client, a, Role.COMPLIANCE)
    response = client.get(reverse("admin:profiles_profile_change", args=[person.pk]))
    assert response.status_code == 200 and 'id="person-journeys"' not in response.content.decode()
    # Another workspace's person is not reachable at all.
    theirs = ProfileFactory(workspace=b.workspace)
    assert as_owner(client, a).get(reverse("admin:profiles_profile_change", args=[theirs.pk])).status_code == 404
    assert Profile.objects.for_workspace(a.workspace).filter(pk=person.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_counts_and_person_page_follow_a_real_run(client, tenant_a, track, clock, email_config):
    """The engine's own step log: an event starts a run, the tick sends and waits."""
    from tests.campaigns.journeys.conftest import feed, tick

    campaign = make_campaign(tenant_a.workspace, activate=True)
    track.put("/api/v1/customers/ada", {"email": "ada@example.test", "plan": "pro"}, format="json")
    track.post("/api/v1/customers/ada/events", {"name": "signed_up", "data": {}}, format="json")
    feed(tenant_a.workspace)
    assert tick() == 1
    run = Journey.objects.for_workspace(tenant_a.workspace).get(campaign=campaign)
    as_owner(client, tenant_a)
    response = client.get(url(Campaign, "change", campaign.pk))
    rows = {row["key"]: row for row in response.context["step_counts"]}
    assert (rows["welcome"]["here"], rows["welcome"]["outcomes"]) == (0, [("sent", 1)])
    assert (rows["wait"]["here"], rows["wait"]["outcomes"]) == (1, [("waiting", 1)])
    for page in (response, client.get(url(Journey, "change", run.pk)),
                 client.get(reverse("admin:profiles_profile_change", args=[run.profile_id]))):
        content = page.content.decode()
        assert page.status_code == 200
        assert "style=" not in content and "<style" not in content  # the console's CSP allows neither
        assert all("src=" in tag.split(">")[0] for tag in content.split("<script")[1:])
    content = page.content.decode()
    assert reverse("admin:campaigns_journey_change", args=[run.pk]) in content and "Welcome" in content
