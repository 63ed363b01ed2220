"""Campaign definitions: every error names its field path, all errors come back at once, and
activation refuses what a live campaign cannot run (unreachable steps, a send without a channel).
References to another workspace's segments, messages, topics and configurations are refused."""

import pytest

from campaigns.journeys import services
from campaigns.journeys.definition import clean_definition
from campaigns.models import Campaign, CampaignTrigger
from core.errors import InvalidFields
from profiles.models import SegmentKind
from profiles.segments import services as segments
from tests.campaigns.conftest import make_config, make_message, make_topic

pytestmark = pytest.mark.django_db

HOLD = {"start": "hold", "steps": {"hold": {"type": "delay", "duration": {"hours": 1}}}}


def errors_of(exc_info) -> dict:
    return {error["field"]: error["message"] for error in exc_info.value.errors()}


def create(workspace, **definition):
    definition.setdefault("name", "Welcome")
    definition.setdefault("trigger", {"type": "event", "name": "signed_up"})
    definition.setdefault("workflow", HOLD)
    return services.create_campaign(workspace=workspace, definition=definition)


def test_every_error_names_its_field_path_and_all_come_back_together(tenant_a):
    ws = tenant_a.workspace
    with pytest.raises(InvalidFields) as caught:
        create(ws, trigger={"type": "event", "name": "bought",
                            "filters": [{"field": "total", "operator": "bigger", "value": 1}]},
               re_entry={"mode": "sometimes"}, exit={"events": [""]}, goal={"event": {"name": "paid"}, "within": {}},
               surprise=1,
               workflow={"start": "mail", "steps": {
                   "mail": {"type": "send", "channel": "email", "content": {"body": "Hi"}, "next": "wait"},
                   "wait": {"type": "delay", "duration": {"fortnights": 1}, "next": "pick"},
                   "pick": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "bigger",
                                                                          "value": "x"}}, "yes": None, "no": None},
                   "pay": {"type": "wait_until", "event": {"name": "paid"}, "within": {"days": 1}, "matched": "gone",
                           "timeout": None},
                   "window": {"type": "time_window", "start": "25:00", "end": "06:00", "next": None},
                   "cohorts": {"type": "random_split", "cohorts": [{"weight": 0, "next": None},
                                                                   {"weight": 1, "next": None}]},
                   "odd": {"type": "delay", "duration": {"hours": 1}, "next": "odd"},
                   "chatty": {"type": "delay", "duration": {"hours": 1}, "colour": "red"},
               }})
    errors = errors_of(caught)
    assert set(errors) == {
        "trigger.filters.0.operator", "re_entry.mode", "exit.events.0", "goal.within", "surprise",
        "workflow.steps.mail.content.subject", "workflow.steps.wait.duration.fortnights",
        "workflow.steps.pick.condition.attribute.operator", "workflow.steps.pay.matched",
        "workflow.steps.window.start", "workflow.steps.cohorts.cohorts.0.weight", "workflow.steps.odd.next",
        "workflow.steps.chatty.colour",
    }, errors
    assert "'gone'" in errors["workflow.steps.pay.matched"]
    assert "itself" in errors["workflow.steps.odd.next"]
    assert not Campaign.objects.for_workspace(ws).exists()


def test_unknown_step_and_trigger_types_are_named(tenant_a):
    with pytest.raises(InvalidFields) as caught:
        create(tenant_a.workspace, trigger={"type": "telepathy"},
               workflow={"start": "a", "steps": {"a": {"type": "teleport", "next": None}}})
    errors = errors_of(caught)
    assert set(errors) == {"trigger.type", "workflow.steps.a.type"}
    assert "event" in errors["trigger.type"] and "send" in errors["workflow.steps.a.type"]
    # A broadcast takes only the API trigger; a triggered campaign never does.
    with pytest.raises(InvalidFields) as caught:
        create(tenant_a.workspace, type="triggered", trigger={"type": "api"})
    assert set(errors_of(caught)) == {"trigger.type"}


def test_start_and_outcomes_must_name_steps_of_the_workflow(tenant_a):
    with pytest.raises(InvalidFields) as caught:
        create(tenant_a.workspace, workflow={"start": "missing", "steps": {
            "split": {"type": "split", "else": "elsewhere", "branches": [
                {"condition": {"attribute": {"field": "plan", "operator": "exists"}}, "next": "nowhere"}]},
            "wait": {"type": "wait_until", "event": {"name": "paid"}, "within": {"days": 1}, "matched": "split",
                     "timeout": "void"},
            "coin": {"type": "random_split", "cohorts": [{"weight": 1, "next": "split"}, {"weight": 1, "next": "x"}]},
            "fork": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "exists"}},
                     "next": "split"},
        }})
    assert set(errors_of(caught)) == {
        "workflow.start", "workflow.steps.split.branches.0.next", "workflow.steps.split.else",
        "workflow.steps.wait.timeout", "workflow.steps.coin.cohorts.1.next", "workflow.steps.fork.next"}


def test_activation_refuses_unreachable_steps_and_sends_without_a_channel(tenant_a):
    ws = tenant_a.workspace
    made = create(ws, workflow={"start": "mail", "steps": {
        "mail": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "x"}, "next": "text"},
        "text": {"type": "send", "channel": "sms", "content": {"body": "x"}},
        "orphan": {"type": "delay", "duration": {"hours": 1}, "next": "orphan_child"},
        "orphan_child": {"type": "exit"},
    }})
    assert made.state == "draft"
    with pytest.raises(InvalidFields) as caught:
        services.activate_campaign(campaign=made)
    errors = errors_of(caught)
    assert set(errors) == {"workflow.steps.mail.channel", "workflow.steps.text.channel",
                           "workflow.steps.orphan", "workflow.steps.orphan_child"}
    assert "unreachable" in errors["workflow.steps.orphan"]
    made.refresh_from_db()
    assert made.state == "draft" and made.activated_at is None
    assert not CampaignTrigger.objects.for_workspace(ws).exists()

    # With channels configured and the orphans reachable, it activates and is indexed.
    make_config(ws)
    make_config(ws, channel="sms", provider="twilio", sender="+15550001111")
    made = services.update_campaign(campaign=made, partial=True, definition={"workflow": {"start": "mail", "steps": {
        "mail": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "x"}, "next": "text"},
        "text": {"type": "send", "channel": "sms", "content": {"body": "x"}, "next": "orphan"},
        "orphan": {"type": "delay", "duration": {"hours": 1}, "next": "orphan_child"},
        "orphan_child": {"type": "exit"},
    }}})
    made = services.activate_campaign(campaign=made)
    assert made.state == "active"
    assert list(CampaignTrigger.objects.for_workspace(ws).values_list("role", "kind", "key")) == [
        ("trigger", "event", "signed_up")]

    # An edit of a live campaign is checked for activation too, and changes nothing when refused.
    with pytest.raises(InvalidFields) as caught:
        services.update_campaign(campaign=made, partial=True, definition={"workflow": {"start": "mail", "steps": {
            "mail": {"type": "send", "channel": "push", "content": {"body": "x"}},
            "lost": {"type": "exit"}}}})
    assert set(errors_of(caught)) == {"workflow.steps.mail.channel", "workflow.steps.lost"}
    made.refresh_from_db()
    assert set(made.workflow["steps"]) == {"mail", "text", "orphan", "orphan_child"}


def test_references_to_another_workspace_are_refused(two_tenants):
    a, b = two_tenants
    theirs = segments.create_segment(workspace=b.workspace, name="Theirs", kind=SegmentKind.MANUAL, conditions={})
    their_message = make_message(b.workspace)
    make_topic(b.workspace, key="their-news")
    their_config = make_config(b.workspace)
    make_config(a.workspace)
    ours = segments.create_segment(workspace=a.workspace, name="Ours", kind=SegmentKind.MANUAL, conditions={})
    make_topic(a.workspace, key="news")
    our_message = make_message(a.workspace, name="Ours")

    with pytest.raises(InvalidFields) as caught:
        create(a.workspace, trigger={"type": "segment_entered", "segment_id": theirs.pk},
               audience={"segment_id": theirs.pk}, goal={"segment_entered": theirs.pk},
               workflow={"start": "mail", "steps": {
                   "mail": {"type": "send", "channel": "email", "message_id": their_message.pk, "next": "news"},
                   "news": {"type": "send", "channel": "email", "content": {"subject": "s", "body": "b"},
                            "topic": "their-news", "next": "config"},
                   "config": {"type": "send", "channel": "email", "content": {"subject": "s", "body": "b"},
                              "channel_config_id": their_config.pk, "next": "pick"},
                   "pick": {"type": "branch", "condition": {"segment": {"id": theirs.pk}}, "yes": None, "no": None},
               }})
    errors = errors_of(caught)
    assert set(errors) == {"trigger.segment_id", "audience.segment_id", "goal.segment_entered",
                           "workflow.steps.mail.message_id", "workflow.steps.news.topic",
                           "workflow.steps.config.channel_config_id",
                           "workflow.steps.pick.condition.segment.id"}, errors
    assert not Campaign.objects.for_workspace(a.workspace).exists()

    # The same definition with the workspace's own references is accepted.
    made = create(a.workspace, trigger={"type": "segment_entered", "segment_id": ours.pk},
                  audience={"segment_id": ours.pk}, goal={"segment_entered": ours.pk},
                  workflow={"start": "mail", "steps": {
                      "mail": {"type": "send", "channel": "email", "message_id": our_message.pk, "next": "news"},
                      "news": {"type": "send", "channel": "email", "content": {"subject": "s", "body": "b"},
                               "topic": "news", "next": None}}})
    assert made.audience == {"segment": {"id": ours.pk}}
    assert services.activate_campaign(campaign=made).state == "active"


def test_normalized_definition_fills_defaults(tenant_a):
    values = clean_definition({"name": "N", "trigger": {"type": "date", "attribute": "trial_ends_at",
                                                        "offset": {"days": -3}},
                               "workflow": HOLD}, workspace=tenant_a.workspace)
    assert values["trigger"] == {"type": "date", "attribute": "trial_ends_at", "offset": {"days": -3}, "at": "09:00",
                                 "yearly": False}
    assert values["re_entry"] == {"mode": "once", "concurrent": False}
    assert values["exit_rules"] == {"when_unmatched": False, "events": [], "on_goal": False}
    assert values["workflow"]["steps"]["hold"] == {"type": "delay", "on_failure": "exit",
                                                   "duration": {"hours": 1}, "next": None}


def test_whatsapp_reply_buttons_are_checked_and_only_if_is_not_for_branching_steps(tenant_a):
    ask = {"type": "send", "channel": "whatsapp", "content": {"body": "Happy?", "buttons": [
        {"title": "Yes, {{ customer.first_name }} is very happy indeed"}, {"title": "No", "id": "no"}]}}
    made = create(tenant_a.workspace, workflow={"start": "ask", "steps": {"ask": ask}})
    assert made.workflow["steps"]["ask"]["content"]["buttons"][1] == {"title": "No", "id": "no"}
    bad = {"start": "ask", "steps": {
        "ask": {**ask, "content": {"body": "Happy?", "buttons": [{"title": "x" * 21}]}},
        "sms": {"type": "send", "channel": "sms", "content": {"body": "Hi", "buttons": [{"title": "Yes"}]}},
        "many": {"type": "send", "channel": "whatsapp", "content": {"body": "Pick", "buttons": [{"title": "a"}] * 4}},
        "pick": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "exists"}},
                 "only_if": {"attribute": {"field": "plan", "operator": "exists"}}},
        "end": {"type": "exit", "next": "ask"}}}
    with pytest.raises(InvalidFields) as error:
        create(tenant_a.workspace, name="Bad", workflow=bad)
    found = errors_of(error)
    assert found["workflow.steps.ask.content.buttons"] == "button 1: a title of 1 to 20 characters"
    assert found["workflow.steps.sms.content.buttons"] == "reply buttons are for WhatsApp messages"
    assert found["workflow.steps.many.content.buttons"] == "a WhatsApp message has 1 to 3 reply buttons"
    assert found["workflow.steps.pick.only_if"].startswith("a branch step chooses its own way")
    assert found["workflow.steps.end.next"].startswith("an exit step ends the journey")
    assert not Campaign.unscoped.filter(name="Bad").exists()
