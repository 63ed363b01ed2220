from datetime import timedelta

from campaigns.models import Journey, JourneyStep
from channels.models import Delivery
import pytest

from tests.campaigns.journeys.conftest import campaign, feed, tick

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOW = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi {{ customer.first_name }}",
                                                                "body": "Plan {{ trigger.plan }}"},
                "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "pro"},
    "pro": {"type": "branch", "condition": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
            "yes": "upsell", "no": None},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "x"}},
}}


def test_event_to_first_message_then_delay_then_branch(tenant_a, track, clock, email_config,
                                                      django_capture_on_commit_callbacks):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=WORKFLOW)
    track.put("/api/v1/customers/ada", {"email": "ada@example.test", "first_name": "Ada", "plan": "pro"},
              format="json")
    track.post("/api/v1/customers/ada/events", {"name": "signed_up", "data": {"plan": "pro"}}, format="json")
    feed(ws)
    run = Journey.objects.for_workspace(ws).get(campaign=made)
    assert run.state == "active" and run.step == "welcome"
    assert tick() == 1
    run.refresh_from_db()
    assert run.state == "waiting" and run.step == "wait"
    assert Delivery.objects.for_workspace(ws).filter(source="campaign").count() == 1
    clock.shift(timedelta(days=1, seconds=1))
    assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed"
    outcomes = list(JourneyStep.objects.for_workspace(ws).filter(journey=run).values_list("step", "outcome"))
    assert outcomes == [("welcome", "sent"), ("wait", "waiting"), ("wait", "waited"), ("pro", "yes"),
                        ("upsell", "sent")]
    assert Delivery.objects.for_workspace(ws).filter(source="campaign").count() == 2


def test_a_drained_campaign_stops_when_its_last_run_ends(tenant_a, track, clock, email_config):
    from campaigns.journeys import services

    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow={"start": "wait", "steps": {
        "wait": {"type": "delay", "duration": {"hours": 1}}}})
    track.post("/api/v1/customers/ada/events", {"name": "signed_up"}, format="json")
    feed(ws)
    tick()
    made = services.stop_campaign(campaign=made, mode="drain")
    tick()
    made.refresh_from_db()
    assert made.state == "draining"  # a run is still waiting
    clock.shift(timedelta(hours=1, seconds=1))
    tick()
    made.refresh_from_db()
    assert made.state == "stopped"
    assert Journey.objects.for_workspace(ws).get(campaign=made).state == "completed"


def test_one_broken_run_fails_alone_and_its_batch_is_advanced_once(tenant_a, track, clock, email_config):
    """A run whose stored step is broken (a definition written past validation) raises inside the
    batch: the batch rolls back and is advanced run by run; the others send exactly once."""
    from campaigns.models import Campaign

    ws = tenant_a.workspace
    good = campaign(ws, trigger={"type": "event", "name": "signed_up"}, workflow=WORKFLOW)
    broken = campaign(ws, name="Broken", trigger={"type": "event", "name": "signed_up"},
                      workflow={"start": "wait", "steps": {"wait": {"type": "delay", "duration": {"days": 1}}}})
    Campaign.unscoped.filter(pk=broken.pk).update(workflow={"start": "wait", "steps": {"wait": {"type": "delay"}}})
    for name in ("ada", "bob", "cem"):
        track.put(f"/api/v1/customers/{name}", {"email": f"{name}@example.test", "first_name": name, "plan": "pro"},
                  format="json")
        track.post(f"/api/v1/customers/{name}/events", {"name": "signed_up", "data": {"plan": "pro"}}, format="json")
    feed(ws)
    assert tick() == 6
    runs = Journey.objects.for_workspace(ws)
    assert sorted(runs.filter(campaign=good).values_list("state", flat=True)) == ["waiting"] * 3
    assert set(runs.filter(campaign=broken).values_list("state", "exit_reason")) == {("failed", "error: KeyError")}
    assert Delivery.objects.for_workspace(ws).filter(source="campaign").count() == 3
    assert JourneyStep.objects.for_workspace(ws).filter(campaign=good).count() == 6  # sent + waiting, once each
