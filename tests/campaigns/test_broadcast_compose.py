"""Composing a broadcast in the console (campaigns/admin_broadcast_compose.py, campaigns/journeys/compose.py):
each step's bad input shown on its field and nothing stored, the review, Send creating an active
broadcast with its trigger, a double Send making one broadcast, roles and another workspace's ids."""

import json
import threading
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from accounts.roles import Role
from campaigns.journeys import compose
from campaigns.models import BroadcastTrigger, Campaign, CampaignState
from core.errors import ApiError
from profiles.models import Segment, SegmentKind
from tests.campaigns.conftest import make_config, make_message
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

URL = "/admin/campaigns/campaign/broadcasts/compose/"
PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
TOKEN = "t" * 32


def form(**overrides) -> dict:
    data = {"token": TOKEN, "audience_kind": "conditions", "conditions": json.dumps(PRO), "segment": "",
            "name": "Spring sale", "channel": "email", "source": "write", "message": "",
            "subject": "Hi {{ customer.first_name }}", "body": "<p>Sale for {{ customer.email }}</p>",
            "variant_b_subject": "", "variant_b_body": "", "variant_c_subject": "", "variant_c_body": "",
            "sample_percent": "20", "sample_wait": "4", "sample_wait_unit": "hours", "winner_metric": "opened",
            "when": "now", "send_at": "", "local_time": ""}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def post(client, step, action="next", **overrides):
    return client.post(URL, {**form(**overrides), "step": step, "action": action})


def errors(response) -> dict:
    return response.context["errors"]


@pytest.fixture
def owner(client, tenant_a):
    client.force_login(tenant_a.owner)
    return client


@pytest.fixture
def people(tenant_a):
    make_config(tenant_a.workspace)
    return [ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test",
                           attributes={"plan": "pro" if n < 3 else "free", "first_name": f"Ada{n}"}) for n in range(5)]


# --- the page, roles ---------------------------------------------------------------------------------------

def test_the_page_opens_on_the_audience_with_the_segment_builder(owner, tenant_a):
    assert reverse("admin:broadcast_compose") == URL
    response = owner.get(URL)
    assert response.status_code == 200
    assert response.context["step"] == "audience"
    page = response.content.decode()
    assert 'data-ulak-segment-builder="segment-builder-data"' in page and "segment-builder.js" in page
    builder = response.context["builder"]
    assert builder["urls"]["preview"] == reverse("admin:profiles_segment_builder_preview")
    assert builder["editable"] is True and builder["conditions"] == {}
    assert compose.TOKEN.match(response.context["form"]["token"].value())
    assert owner.get(URL).context["form"]["token"].value() != response.context["form"]["token"].value()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.COMPLIANCE, Role.DEVELOPER])
def test_roles_without_change_campaigns_get_403(client, tenant_a, people, role):
    client.force_login(make_member(tenant_a.workspace, role))
    assert client.get(URL).status_code == 403
    assert post(client, "review", "send").status_code == 403
    assert not Campaign.unscoped.exists()


def test_a_marketer_composes_and_sends(client, tenant_a, people):
    client.force_login(make_member(tenant_a.workspace, Role.MARKETER))
    assert client.get(URL).status_code == 200
    assert post(client, "review", "send").status_code == 302
    assert Campaign.unscoped.get().state == CampaignState.ACTIVE


def test_the_sidebar_offers_the_page_to_who_may_open_it(client, tenant_a):
    client.force_login(tenant_a.owner)
    assert f'href="{URL}"' in client.get(reverse("admin:index")).content.decode()
    client.force_login(make_member(tenant_a.workspace, Role.ANALYST))
    assert f'href="{URL}"' not in client.get(reverse("admin:index")).content.decode()


# --- step 1: audience ---------------------------------------------------------------------------------------

def test_the_audience_is_required_and_checked_by_the_condition_language(owner, people):
    response = post(owner, "audience", conditions="")
    assert response.status_code == 400 and response.context["step"] == "audience"
    assert errors(response)["conditions"] == ["choose who gets the broadcast: add a condition or pick a segment"]
    response = post(owner, "audience", conditions="{}")
    assert "choose who gets the broadcast" in errors(response)["conditions"][0]
    response = post(owner, "audience", conditions="{not json")
    assert errors(response)["conditions"][0].startswith("is not valid JSON")
    bad = {"attribute": {"field": "plan", "operator": "sometimes", "value": "pro"}}
    response = post(owner, "audience", conditions=json.dumps(bad))
    assert response.status_code == 400 and list(errors(response)) == ["conditions"]
    assert 'data-field="conditions"' in response.content.decode()
    # the builder starts again from what was posted
    assert response.context["builder"]["conditions"] == bad
    response = post(owner, "audience")
    assert response.status_code == 200 and response.context["step"] == "content"
    assert not Campaign.unscoped.exists()


def test_a_segment_of_this_workspace_only(owner, tenant_a, tenant_b, people):
    theirs = Segment.unscoped.create(workspace=tenant_b.workspace, name="Theirs", kind=SegmentKind.MANUAL)
    ours = Segment.unscoped.create(workspace=tenant_a.workspace, name="Ours", kind=SegmentKind.MANUAL)
    response = post(owner, "audience", audience_kind="segment", segment="")
    assert errors(response) == {"segment": ["pick a segment"]}
    response = post(owner, "audience", audience_kind="segment", segment=str(theirs.pk))
    assert response.status_code == 400
    assert errors(response) == {"segment": ["no segment of this workspace has this id"]}
    assert "Theirs" not in response.content.decode()  # not offered either
    response = post(owner, "audience", audience_kind="segment", segment=str(ours.pk))
    assert response.context["step"] == "content"


# --- step 2: content ----------------------------------------------------------------------------------------

def test_content_errors_show_on_their_fields(owner, tenant_a, people):
    response = post(owner, "content", subject="")
    assert response.status_code == 400 and response.context["step"] == "content"
    assert errors(response) == {"subject": ["is required for an email message"]}
    response = post(owner, "content", body="{% if %}")
    assert list(errors(response)) == ["body"]
    response = post(owner, "content", name="")
    assert errors(response) == {"name": ["is required"]}
    response = post(owner, "content", channel="sms", body="")
    assert "body" in errors(response)
    assert post(owner, "content").context["step"] == "schedule"
    assert not Campaign.unscoped.exists()


def test_a_channel_without_an_active_configuration_is_refused_on_the_channel(owner, people):
    response = post(owner, "content", channel="sms", body="Sale!")
    assert errors(response) == {"channel": ["no active sms configuration: add one or name channel_config_id"]}


def test_the_name_of_another_broadcast_is_refused(owner, tenant_a, people):
    compose.compose_broadcast(workspace=tenant_a.workspace, token="x" * 20, name="Spring sale", audience=PRO,
                              step=compose.send_step(channel="email", content={"subject": "a", "body": "b"}),
                              when="now")
    response = post(owner, "content", name="spring SALE")
    assert errors(response) == {"name": ["another broadcast has this name; choose another"]}


def test_a_transactional_message_of_this_workspace_only(owner, tenant_a, tenant_b, people):
    make_config(tenant_b.workspace)
    theirs = make_message(tenant_b.workspace, name="Theirs")
    ours = make_message(tenant_a.workspace, name="Ours")
    response = post(owner, "content", source="message", message="")
    assert errors(response) == {"message": ["pick a transactional message"]}
    response = post(owner, "content", source="message", message=str(theirs.pk))
    assert response.status_code == 400
    assert errors(response) == {"message": ["no message of this workspace has this id"]}
    assert post(owner, "content", source="message", message=str(ours.pk)).context["step"] == "schedule"


def test_the_ab_test_on_a_sample(owner, people):
    response = post(owner, "content", ab_test="on")
    assert errors(response) == {"variant_b_subject": ["give variant B a subject or a body of its own"]}
    response = post(owner, "content", ab_test="on", variant_b_subject="{{ oops")
    assert list(errors(response)) == ["variant_b_subject"]
    response = post(owner, "content", ab_test="on", variant_b_subject="B", variant_c_body="{% if %}")
    assert list(errors(response)) == ["variant_c_body"]
    response = post(owner, "content", ab_test="on", variant_b_subject="Another", sample_percent="100")
    assert errors(response) == {"sample_percent": ["must be a whole number from 1 to 99"]}
    response = post(owner, "content", ab_test="on", variant_b_subject="Another", sample_wait="")
    assert list(errors(response)) == ["sample_wait"]
    response = post(owner, "content", ab_test="on", variant_b_subject="Another", sample_wait="0")
    assert list(errors(response)) == ["sample_wait"]
    response = post(owner, "content", ab_test="on", variant_b_subject="Another", winner_metric="replied")
    assert list(errors(response)) == ["winner_metric"]
    response = post(owner, "content", ab_test="on", variant_b_subject="Another")
    assert response.context["step"] == "schedule"


# --- step 3: schedule ---------------------------------------------------------------------------------------

@time_machine.travel(datetime(2026, 12, 8, 9, 0, tzinfo=UTC), tick=False)
def test_schedule_errors(owner, tenant_a, people):
    response = post(owner, "schedule", when="at")
    assert response.status_code == 400 and errors(response) == {"send_at": ["is required to send at a time"]}
    response = post(owner, "schedule", when="at", send_at="tomorrow")
    assert list(errors(response)) == ["send_at"]
    response = post(owner, "schedule", when="at", send_at="2026-12-08T08:00")
    assert errors(response) == {"send_at": ["is in the past; choose a later time, or send now"]}
    response = post(owner, "schedule", when="local")
    assert errors(response) == {"local_time": ["is required to send at a local time"]}
    response = post(owner, "schedule", when="local", local_time="2026-13-01T10:00")
    assert list(errors(response)) == ["local_time"]
    response = post(owner, "schedule", when="at", send_at="2026-12-09T10:00")
    assert response.status_code == 200 and response.context["step"] == "review"


def test_a_bad_earlier_step_sends_you_back_to_it(owner, people):
    """Each step checks the steps before it again: their values travel as hidden fields."""
    response = post(owner, "schedule", subject="")
    assert response.context["step"] == "content" and errors(response) == {
        "subject": ["is required for an email message"]}
    response = post(owner, "review", "send", conditions="{}")
    assert response.context["step"] == "audience" and "conditions" in errors(response)
    assert not Campaign.unscoped.exists()


def test_back_goes_to_the_previous_step_without_checking(owner, people):
    response = post(owner, "schedule", "goto:content", subject="")
    assert response.status_code == 200 and response.context["step"] == "content"
    assert errors(response) == {}
    page = response.content.decode()
    assert 'type="hidden" name="conditions"' in page and 'name="subject"' in page


# --- step 4: review and Send --------------------------------------------------------------------------------

def test_the_review_shows_the_count_and_the_message_for_one_person(owner, tenant_a, tenant_b, people):
    ProfileFactory(workspace=tenant_b.workspace, external_id="theirs", attributes={"plan": "pro"})
    response = post(owner, "schedule")
    assert response.context["step"] == "review"
    summary = response.context["summary"]
    assert summary["count"] == 3 and summary["person"] == people[0]
    [rendered] = summary["rendered"]
    assert rendered["subject"] == "Hi Ada0" and "Sale for p0@example.test" in rendered["body"]
    page = response.content.decode()
    assert 'id="review-count" data-count="3"' in page and 'id="compose-send"' in page
    assert not Campaign.unscoped.exists() and not BroadcastTrigger.unscoped.exists()


def test_the_review_of_an_ab_test_renders_each_variant(owner, people):
    response = post(owner, "schedule", ab_test="on", variant_b_subject="Last chance {{ customer.first_name }}",
                    variant_c_body="<p>C</p>")
    summary = response.context["summary"]
    assert [(r["key"], r["subject"]) for r in summary["rendered"]] == [
        ("A", "Hi Ada0"), ("B", "Last chance Ada0"), ("C", "Hi Ada0")]
    assert summary["sample"] == {"percent": 20, "wait": {"hours": 4}}


def test_send_creates_activates_and_triggers_the_broadcast(owner, tenant_a, people):
    response = post(owner, "review", "send")
    campaign = Campaign.unscoped.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    assert (campaign.workspace, campaign.type, campaign.state, campaign.name) == (
        tenant_a.workspace, "broadcast", CampaignState.ACTIVE, "Spring sale")
    assert campaign.trigger == {"type": "api"}
    assert campaign.audience == PRO
    step = campaign.workflow["steps"]["message"]
    assert step["channel"] == "email" and step["content"] == {
        "subject": "Hi {{ customer.first_name }}", "body": "<p>Sale for {{ customer.email }}</p>"}
    trigger = BroadcastTrigger.unscoped.get()
    assert trigger.campaign == campaign and trigger.idempotency_key == f"compose:{TOKEN}"
    assert trigger.send_at is None and trigger.local_time == "" and trigger.audience["kind"] == "campaign"
    page = owner.get(response["Location"]).content.decode()
    assert "is sending" in page and f'id="broadcast-send-{trigger.pk}"' in page


def test_a_double_send_makes_one_broadcast(owner, people):
    first = post(owner, "review", "send")
    second = post(owner, "review", "send")
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Campaign.unscoped.count() == 1 and BroadcastTrigger.unscoped.count() == 1
    assert "already sent from this form" in owner.get(second["Location"]).content.decode()
    # another form (another token) with the same name is refused on the name, nothing more made
    response = post(owner, "review", "send", token="u" * 32)
    assert response.status_code == 400 and response.context["step"] == "content"
    assert errors(response) == {"name": ["another broadcast has this name; choose another"]}
    assert Campaign.unscoped.count() == 1


def test_a_bad_token_is_refused(owner, people):
    response = post(owner, "review", "send", token="short")
    assert response.status_code == 400 and "expired" in response.context["non_field_errors"][0]
    assert not Campaign.unscoped.exists()


@time_machine.travel(datetime(2026, 12, 8, 9, 0, tzinfo=UTC), tick=False)
def test_send_at_a_time_in_the_workspace_time_zone(owner, tenant_a, people):
    tenant_a.workspace.time_zone = "Europe/Istanbul"
    tenant_a.workspace.save(update_fields=["time_zone"])
    response = post(owner, "review", "send", when="at", send_at="2026-12-09T10:00")
    assert response.status_code == 302
    trigger = BroadcastTrigger.unscoped.get()
    assert trigger.send_at == datetime(2026, 12, 9, 7, 0, tzinfo=UTC)  # 10:00 at UTC+3
    assert trigger.starts_at == trigger.send_at and trigger.state == "pending"


@time_machine.travel(datetime(2026, 12, 8, 9, 0, tzinfo=UTC), tick=False)
def test_send_at_a_local_time_and_an_ab_test_on_a_sample(owner, people):
    response = post(owner, "review", "send", when="local", local_time="2026-12-10T09:30", ab_test="on",
                    variant_b_subject="Other", sample_percent="30", sample_wait="2", sample_wait_unit="days",
                    winner_metric="clicked")
    assert response.status_code == 302
    trigger = BroadcastTrigger.unscoped.get()
    assert trigger.local_time == "2026-12-10T09:30" and trigger.send_at is None
    assert trigger.starts_at == datetime(2026, 12, 10, 9, 30, tzinfo=UTC) - timedelta(hours=14)
    step = trigger.campaign.workflow["steps"]["message"]
    assert [(v["key"], v["content"]) for v in step["variants"]] == [("A", {}), ("B", {"subject": "Other"})]
    assert step["sample"] == {"percent": 30, "wait": {"days": 2}}
    assert step["winner"]["metric"] == "clicked"


def test_send_a_transactional_message_to_a_segment(owner, tenant_a, people):
    message = make_message(tenant_a.workspace, name="News")
    segment = Segment.unscoped.create(workspace=tenant_a.workspace, name="Ours", kind=SegmentKind.MANUAL)
    response = post(owner, "review", "send", audience_kind="segment", segment=str(segment.pk), source="message",
                    message=str(message.pk))
    assert response.status_code == 302
    campaign = Campaign.unscoped.get()
    assert campaign.audience == {"segment": {"id": segment.pk}}
    assert campaign.workflow["steps"]["message"]["message_id"] == message.pk


# --- the service --------------------------------------------------------------------------------------------

def test_the_service_stores_nothing_when_any_part_is_wrong(tenant_a, people):
    step = compose.send_step(channel="email", content={"body": "b"})
    with pytest.raises(ApiError) as caught:
        compose.compose_broadcast(workspace=tenant_a.workspace, token=TOKEN, name="", audience={}, step=step,
                                  when="at")
    assert {e["field"] for e in caught.value.errors()} == {
        "audience", "name", "workflow.steps.message.content.subject", "send_at"}
    assert not Campaign.unscoped.exists() and not BroadcastTrigger.unscoped.exists()


def test_the_service_answers_the_first_compose_for_the_same_token(tenant_a, tenant_b, people):
    step = compose.send_step(channel="email", content={"subject": "a", "body": "b"})
    campaign, trigger, created = compose.compose_broadcast(workspace=tenant_a.workspace, token=TOKEN, name="One",
                                                           audience=PRO, step=step, when="now")
    again = compose.compose_broadcast(workspace=tenant_a.workspace, token=TOKEN, name="Other", audience=PRO,
                                      step=step, when="now")
    assert created and again == (campaign, trigger, False)
    # the same token in another workspace is another compose
    make_config(tenant_b.workspace)
    theirs, _, created = compose.compose_broadcast(workspace=tenant_b.workspace, token=TOKEN, name="One",
                                                   audience=PRO, step=step, when="now")
    assert created and theirs.workspace == tenant_b.workspace and theirs != campaign


# --- the steps as a browser walks them (the earlier steps' values carried by the page) -----------------------

class _Inputs(HTMLParser):
    """The values a browser would post from the compose form (first radio checked wins)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self.select = self.textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") in ("radio", "checkbox"):
                if "checked" in a:
                    self.values[name] = a.get("value", "on")
            else:
                self.values[name] = a.get("value", "")
        elif tag == "select" and name:
            self.select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value", "")
        elif tag == "textarea" and name:
            self.textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data.removeprefix("\n") if not self.values[self.textarea] else data


def page_values(response) -> dict:
    parser = _Inputs()
    parser.feed(response.content.decode())
    return parser.values


def test_walking_the_steps_carries_every_value_to_send(owner, tenant_a, people):
    values = page_values(owner.get(URL))
    assert values["step"] == "audience" and values["when"] == "now" and values["channel"] == "email"
    values.update(conditions=json.dumps(PRO))
    response = owner.post(URL, {**values, "action": "next"})
    assert response.context["step"] == "content"
    values = page_values(response)
    values.update(name="Walked", subject="Hi {{ customer.first_name }}", body="<p>Hi</p>", ab_test="on",
                  variant_b_subject="Other", sample_percent="25", sample_wait="90", sample_wait_unit="minutes",
                  winner_metric="clicked")
    response = owner.post(URL, {**values, "action": "next"})
    assert response.context["step"] == "schedule", response.context["errors"]
    values = page_values(response)
    assert values["ab_test"] == "True" and values["conditions"] == json.dumps(PRO)
    values.update(when="local", local_time="2027-01-05T09:00")
    response = owner.post(URL, {**values, "action": "next"})
    assert response.context["step"] == "review", response.context["errors"]
    assert [r["key"] for r in response.context["summary"]["rendered"]] == ["A", "B"]
    values = page_values(response)
    response = owner.post(URL, {**values, "action": "send"})
    assert response.status_code == 302
    campaign = Campaign.unscoped.get()
    step = campaign.workflow["steps"]["message"]
    assert (campaign.name, campaign.audience) == ("Walked", PRO)
    assert step["sample"] == {"percent": 25, "wait": {"minutes": 90}} and step["winner"]["metric"] == "clicked"
    assert BroadcastTrigger.unscoped.get().local_time == "2027-01-05T09:00"


@pytest.mark.django_db(transaction=True)
def test_two_sends_at_the_same_moment_make_one_broadcast(tenant_a):
    make_config(tenant_a.workspace)
    step = compose.send_step(channel="email", content={"subject": "a", "body": "b"})
    barrier, results = threading.Barrier(2), []

    def send():
        try:
            barrier.wait()
            results.append(compose.compose_broadcast(workspace=tenant_a.workspace, token=TOKEN, name="Once",
                                                     audience=PRO, step=step, when="now"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created for _, _, created in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert Campaign.unscoped.count() == 1 and BroadcastTrigger.unscoped.count() == 1
