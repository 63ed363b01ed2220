"""Campaign rules and the flow steps, through the real ingest path and the tick with a frozen
clock: audience at entry, re-entry, journey keys, exits, goals and attribution, pause / resume /
stop, and the branch, split, random split, update and only_if steps."""

from collections import Counter
from datetime import timedelta

import pytest

from campaigns.journeys import services
from campaigns.models import Journey, JourneyStep
from channels.models import Delivery
from profiles.models import Change, CustomObject, Relationship, SegmentKind
from profiles.segments import services as segments
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, person, runs_of, tick

pytestmark = pytest.mark.django_db(transaction=True)

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
HOLD = {"start": "hold", "steps": {"hold": {"type": "delay", "duration": {"hours": 1}}}}
MAIL = {"subject": "Hi {{ customer.first_name }}", "body": "x"}










def run_of(made, pid, **filters) -> Journey:
    (run,) = runs_of(made, profile__external_id=pid, **filters)
    return run


def entered(made) -> list[str]:
    return [run.profile.external_id for run in runs_of(made)]


def log(run) -> list[tuple[str, str]]:
    return list(JourneyStep.objects.for_workspace(run.workspace_id).filter(journey=run)
                .values_list("step", "outcome"))


def sends(ws):
    return list(Delivery.objects.for_workspace(ws).filter(source="campaign").order_by("pk"))


# --- entry: audience, re-entry, journey key ------------------------------------------------------------

def test_audience_condition_tree_and_segment_are_checked_at_entry(tenant_a, track, clock):
    ws = tenant_a.workspace
    vips = segments.create_segment(workspace=ws, name="VIPs", kind=SegmentKind.MANUAL, conditions={})
    by_tree = campaign(ws, name="Pros", workflow=HOLD, audience=PRO, trigger={"type": "event", "name": "go"})
    by_segment = campaign(ws, name="VIPs", workflow=HOLD, audience={"segment_id": vips.pk},
                          trigger={"type": "event", "name": "go"})
    identify(track, "ada", plan="pro")
    identify(track, "bob", plan="free")
    feed(ws)
    segments.add_people(segment=vips, people=[{"id": "bob"}])
    event(track, "ada", "go")
    event(track, "bob", "go")
    event(track, "cem", "go")
    feed(ws)
    assert entered(by_tree) == ["ada"]
    assert entered(by_segment) == ["bob"]

    # Checked when the event arrives, not later: bob becomes pro, goes again and now enters.
    identify(track, "bob", plan="pro")
    event(track, "bob", "go")
    feed(ws)
    assert entered(by_tree) == ["ada", "bob"]


def run_through(track, ws, pid, name="go", data=None):
    """One trigger event, fed and ticked (the run of a one-step workflow completes)."""
    event(track, pid, name, data)
    feed(ws)
    tick()


def test_re_entry_once_always_and_after(tenant_a, track, clock):
    ws = tenant_a.workspace
    done = {"start": "check", "steps": {"check": {"type": "branch", "condition": PRO, "yes": None, "no": None}}}
    once = campaign(ws, name="Once", workflow=done, trigger={"type": "event", "name": "go"})
    always = campaign(ws, name="Always", workflow=done, re_entry={"mode": "always"},
                      trigger={"type": "event", "name": "go"})
    after = campaign(ws, name="After a day", workflow=done, re_entry={"mode": "after", "after": {"days": 1}},
                     trigger={"type": "event", "name": "go"})
    run_through(track, ws, "ada")
    assert [r.state for r in runs_of(once) + runs_of(always) + runs_of(after)] == ["completed"] * 3
    clock.shift(timedelta(hours=23))
    run_through(track, ws, "ada")
    assert (len(runs_of(once)), len(runs_of(always)), len(runs_of(after))) == (1, 2, 1)
    clock.shift(timedelta(hours=1, seconds=1))
    run_through(track, ws, "ada")
    assert (len(runs_of(once)), len(runs_of(always)), len(runs_of(after))) == (1, 3, 2)


def test_one_live_run_per_person_unless_concurrent(tenant_a, track, clock):
    ws = tenant_a.workspace
    single = campaign(ws, name="Single", workflow=HOLD, re_entry={"mode": "always"},
                      trigger={"type": "event", "name": "go"})
    concurrent = campaign(ws, name="Concurrent", workflow=HOLD, re_entry={"mode": "always", "concurrent": True},
                          trigger={"type": "event", "name": "go"})
    event(track, "ada", "go")
    event(track, "ada", "go")  # the same batch
    feed(ws)
    tick()
    event(track, "ada", "go")  # a later batch, the first run still waiting
    feed(ws)
    assert len(runs_of(single)) == 1
    assert len(runs_of(concurrent, state__in=["active", "waiting"])) == 3
    clock.shift(timedelta(hours=1))
    tick()
    event(track, "ada", "go")
    feed(ws)
    assert [r.state for r in runs_of(single)] == ["completed", "active"]


def test_journey_key_gives_each_order_its_own_run(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, name="Orders", journey_key="order_id", exit={"events": ["order_cancelled"]},
                    trigger={"type": "event", "name": "order_placed"},
                    workflow={"start": "shipped", "steps": {
                        "shipped": {"type": "wait_until", "event": {"name": "order_shipped"}, "within": {"days": 3},
                                    "matched": "thanks", "timeout": None},
                        "thanks": {"type": "update_attributes",
                                   "attributes": {"last_shipped": "{{ journey.events.order_shipped.order_id }}"}},
                    }})
    event(track, "ada", "order_placed", {"order_id": 1, "total": 10})
    event(track, "ada", "order_placed", {"order_id": "2", "total": 20})
    feed(ws)
    tick()
    first, second = runs_of(made)
    assert (first.key, second.key) == ("1", "2")
    assert first.state == second.state == "waiting"

    event(track, "ada", "order_cancelled", {"order_id": "2"})
    event(track, "ada", "order_cancelled", {})  # no key: no run of this person's orders
    feed(ws)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (second.state, second.exit_reason) == ("exited", "exit_event")
    assert first.state == "waiting"

    event(track, "ada", "order_shipped", {"order_id": 1})
    event(track, "ada", "order_shipped", {"order_id": 3})  # an order without a run: nothing
    event(track, "ada", "order_placed", {"order_id": 1})  # re-entry "once" per key
    feed(ws)
    tick()
    first.refresh_from_db()
    assert first.state == "completed"
    assert log(first)[-2:] == [("shipped", "matched"), ("thanks", "updated")]
    assert person(ws, "ada").attributes["last_shipped"] == "1"
    assert len(runs_of(made)) == 2


# --- exits ------------------------------------------------------------------------------------------------------

def test_exit_events_end_live_runs(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, workflow=HOLD, exit={"events": ["unsubscribed_all", "cancelled"]},
                    trigger={"type": "event", "name": "go"})
    for pid in ("ada", "bob", "cem"):
        event(track, pid, "go")
    feed(ws)
    tick()
    event(track, "ada", "cancelled")
    event(track, "bob", "something_else")
    feed(ws)
    assert run_of(made, "ada").exit_reason == "exit_event"
    assert run_of(made, "bob").state == "waiting"
    assert log(run_of(made, "ada"))[-1] == ("hold", "exited")
    # A person who enters and leaves within one ingest batch is out too.
    event(track, "cem", "cancelled")
    event(track, "dan", "go")
    event(track, "dan", "cancelled")
    feed(ws)
    assert run_of(made, "cem").state == "exited"
    assert (run_of(made, "dan").state, run_of(made, "dan").exit_reason) == ("exited", "exit_event")
    clock.shift(timedelta(hours=2))
    tick()
    assert run_of(made, "bob").state == "completed" and run_of(made, "dan").state == "exited"


def test_when_unmatched_is_checked_before_a_send_and_on_wake(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, audience=PRO, exit={"when_unmatched": True}, trigger={"type": "event", "name": "go"},
                    workflow={"start": "hello", "steps": {
                        "hello": {"type": "send", "channel": "email", "content": MAIL, "next": "later"},
                        "later": {"type": "delay", "duration": {"hours": 1}, "next": "mark"},
                        "mark": {"type": "update_attributes", "attributes": {"reached": True}},
                    }})
    for pid in ("ada", "bob", "cem"):
        identify(track, pid, plan="pro", email=f"{pid}@example.test", first_name=pid.title())
        event(track, pid, "go")
    feed(ws)
    identify(track, "cem", plan="free")  # between entry and the first send
    feed(ws)
    tick()
    assert run_of(made, "cem").exit_reason == "unmatched"
    assert log(run_of(made, "cem")) == [("hello", "exited")]
    assert len(sends(ws)) == 2

    identify(track, "bob", plan="free")  # while waiting
    feed(ws)
    clock.shift(timedelta(hours=1))
    tick()
    assert (run_of(made, "bob").state, run_of(made, "bob").exit_reason) == ("exited", "unmatched")
    assert "reached" not in person(ws, "bob").attributes
    assert run_of(made, "ada").state == "completed" and person(ws, "ada").attributes["reached"] is True


def test_exit_step(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "pick", "steps": {
        "pick": {"type": "branch", "condition": PRO, "yes": "leave", "no": "hold"},
        "leave": {"type": "exit"},
        "hold": {"type": "delay", "duration": {"hours": 1}}}})
    identify(track, "ada", plan="pro")
    event(track, "ada", "go")
    event(track, "bob", "go")
    feed(ws)
    tick()
    ada = run_of(made, "ada")
    assert (ada.state, ada.exit_reason, ada.ended_at) == ("exited", "exit_step", T0)
    assert log(ada) == [("pick", "yes"), ("leave", "exited")]
    assert run_of(made, "bob").state == "waiting"


# --- goals ---------------------------------------------------------------------------------------------------

def test_goal_converts_the_run_and_its_last_message(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    steps = {"start": "first", "steps": {
        "first": {"type": "send", "channel": "email", "content": MAIL, "next": "pause"},
        "pause": {"type": "delay", "duration": {"hours": 1}, "next": "second"},
        "second": {"type": "send", "channel": "email", "content": MAIL, "next": "linger"},
        "linger": {"type": "delay", "duration": {"days": 5}}}}
    goal = {"event": {"name": "purchase", "filters": [{"field": "total", "operator": "gte", "value": 10}]},
            "within": {"days": 2}}
    made = campaign(ws, goal=goal, workflow=steps, trigger={"type": "event", "name": "go"})
    leaves = campaign(ws, name="Leaves on goal", goal=goal, exit={"on_goal": True}, workflow=steps,
                      trigger={"type": "event", "name": "go"})
    for pid in ("ada", "bob", "cem"):
        identify(track, pid, email=f"{pid}@example.test", first_name=pid.title())
        event(track, pid, "go")
    feed(ws)
    tick()
    clock.shift(timedelta(hours=1))
    tick()
    event(track, "ada", "purchase", {"total": 50})
    event(track, "bob", "purchase", {"total": 5})  # filtered out
    feed(ws)

    ada = run_of(made, "ada")
    assert ada.converted_at == T0 + timedelta(hours=1)
    first, second = [Delivery.objects.for_workspace(ws).get(pk=row.delivery_id)
                     for row in JourneyStep.objects.for_workspace(ws).filter(journey=ada, outcome="sent")]
    assert second.converted_at == T0 + timedelta(hours=1) and first.converted_at is None
    assert ada.last_delivery_id == second.pk
    assert ada.state == "waiting"
    assert run_of(made, "bob").converted_at is None
    left = run_of(leaves, "ada")
    assert (left.state, left.exit_reason, left.converted_at) == ("exited", "goal", T0 + timedelta(hours=1))
    assert run_of(leaves, "bob").state == "waiting"

    # Outside the window after the last message: no conversion.
    clock.shift(timedelta(days=2, seconds=1))
    event(track, "cem", "purchase", {"total": 50})
    feed(ws)
    assert run_of(made, "cem").converted_at is None
    assert run_of(leaves, "cem").state == "waiting"


# --- states -----------------------------------------------------------------------------------------------------

TWO_WAITS = {"start": "one", "steps": {
    "one": {"type": "delay", "duration": {"hours": 1}, "next": "mark"},
    "mark": {"type": "update_attributes", "attributes": {"step": "mark"}, "next": "two"},
    "two": {"type": "delay", "duration": {"hours": 1}, "next": "done"},
    "done": {"type": "update_attributes", "attributes": {"step": "done"}}}}


def test_pause_holds_runs_and_resume_runs_what_fell_due(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, workflow=TWO_WAITS, trigger={"type": "event", "name": "go"})
    event(track, "ada", "go")
    feed(ws)
    tick()
    made = services.pause_campaign(campaign=made)
    clock.shift(timedelta(hours=5))
    assert tick() == 0
    event(track, "bob", "go")  # nobody enters a paused campaign
    feed(ws)
    assert entered(made) == ["ada"]
    assert run_of(made, "ada").step == "one" and "step" not in person(ws, "ada").attributes

    services.resume_campaign(campaign=made)
    assert tick() == 1
    ada = run_of(made, "ada")
    assert ada.step == "two" and ada.state == "waiting"
    assert log(ada) == [("one", "waiting"), ("one", "waited"), ("mark", "updated"), ("two", "waiting")]
    assert ada.next_run_at == T0 + timedelta(hours=6)  # the second wait counts from when it began
    clock.shift(timedelta(hours=1))
    tick()
    assert run_of(made, "ada").state == "completed" and person(ws, "ada").attributes["step"] == "done"


def test_stop_exit_ends_every_live_run(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, workflow=TWO_WAITS, trigger={"type": "event", "name": "go"})
    other = campaign(ws, name="Other", workflow=TWO_WAITS, trigger={"type": "event", "name": "go"})
    event(track, "ada", "go")
    event(track, "bob", "go")
    feed(ws)
    tick()
    services.stop_campaign(campaign=made, mode="exit")
    assert {(r.state, r.exit_reason) for r in runs_of(made)} == {("exited", "campaign_stopped")}
    assert all(log(run)[-1] == ("one", "exited") for run in runs_of(made))
    assert {r.state for r in runs_of(other)} == {"waiting"}
    event(track, "cem", "go")
    feed(ws)
    clock.shift(timedelta(hours=2))
    tick()
    assert entered(made) == ["ada", "bob"]
    assert {r.state for r in runs_of(made)} == {"exited"}
    assert all(log(run) == [("one", "waiting"), ("one", "exited")] for run in runs_of(made))
    assert [(r.profile.external_id, r.step) for r in runs_of(other)] == [("ada", "two"), ("bob", "two"),
                                                                          ("cem", "one")]


def test_stop_drain_admits_nobody_and_lets_runs_finish(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, workflow=TWO_WAITS, trigger={"type": "event", "name": "go"})
    event(track, "ada", "go")
    feed(ws)
    tick()
    made = services.stop_campaign(campaign=made, mode="drain")
    assert made.state == "draining"
    event(track, "bob", "go")
    feed(ws)
    assert entered(made) == ["ada"]
    clock.shift(timedelta(hours=1))
    tick()
    clock.shift(timedelta(hours=1))
    tick()
    ada = run_of(made, "ada")
    assert ada.state == "completed" and person(ws, "ada").attributes["step"] == "done"


# --- flow steps ------------------------------------------------------------------------------------------------

def test_split_takes_the_first_matching_branch_else_the_fallback(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "route", "steps": {
        "route": {"type": "split", "branches": [
            {"condition": PRO, "next": "pro"},
            {"condition": {"attribute": {"field": "plan", "operator": "exists"}}, "next": "other"}],
            "else": "none"},
        "pro": {"type": "update_attributes", "attributes": {"route": "pro"}},
        "other": {"type": "update_attributes", "attributes": {"route": "other"}},
        "none": {"type": "update_attributes", "attributes": {"route": "none"}}}})
    identify(track, "ada", plan="pro")
    identify(track, "bob", plan="free")
    for pid in ("ada", "bob", "cem"):
        event(track, pid, "go")
    feed(ws)
    tick()
    assert [person(ws, pid).attributes["route"] for pid in ("ada", "bob", "cem")] == ["pro", "other", "none"]
    assert log(run_of(made, "ada"))[0] == ("route", "branch_0")
    assert log(run_of(made, "bob"))[0] == ("route", "branch_1")
    assert log(run_of(made, "cem"))[0] == ("route", "else")


def test_random_split_respects_weights_and_is_stable_per_run(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "coin", "steps": {
        "coin": {"type": "random_split", "cohorts": [{"weight": 3, "next": "a"}, {"weight": 1, "next": "b"}]},
        "a": {"type": "delay", "duration": {"hours": 1}, "next": "coin"},
        "b": {"type": "delay", "duration": {"hours": 1}, "next": "coin"}}})
    batch = [{"type": "person", "action": "event", "identifiers": {"id": f"p{n}"}, "name": "go"} for n in range(200)]
    assert track.post("/api/v2/batch", {"batch": batch}, format="json").status_code == 200
    feed(ws)
    assert tick() == 200
    clock.shift(timedelta(hours=1))
    assert tick() == 200
    draws: dict[int, list[str]] = {}
    for journey_id, outcome in JourneyStep.objects.for_workspace(ws).filter(step="coin").values_list(
            "journey_id", "outcome"):
        draws.setdefault(journey_id, []).append(outcome)
    assert len(draws) == 200 and all(len(set(outcomes)) == 1 and len(outcomes) == 2 for outcomes in draws.values())
    steps = dict(Journey.objects.for_workspace(ws).filter(campaign=made).values_list("pk", "step"))
    assert all(steps[pk] == ("a" if outcomes[0] == "cohort_0" else "b") for pk, outcomes in draws.items())
    counts = Counter(outcomes[0] for outcomes in draws.values())
    assert 125 <= counts["cohort_0"] <= 175, counts  # 150 expected (3:1)
    assert counts["cohort_0"] + counts["cohort_1"] == 200


def test_update_attributes_with_liquid_values(tenant_a, track, clock):
    ws = tenant_a.workspace
    campaign(ws, trigger={"type": "event", "name": "upgraded"}, workflow={"start": "set", "steps": {
        "set": {"type": "update_attributes", "attributes": {
            "plan": "{{ trigger.plan }}", "greeting": "Hello {{ customer.first_name | upcase }}",
            "campaign_name": "{{ campaign.name }}", "score": 7, "old_flag": None}}}})
    identify(track, "ada", first_name="Ada", plan="free", old_flag=True)
    event(track, "ada", "upgraded", {"plan": "pro"})
    feed(ws)
    since = Change.objects.for_workspace(ws).order_by("-id").values_list("id", flat=True).first()
    tick()
    ada = person(ws, "ada")
    assert {k: ada.attributes.get(k) for k in ("plan", "greeting", "campaign_name", "score", "old_flag")} == {
        "plan": "pro", "greeting": "Hello ADA", "campaign_name": "Welcome", "score": 7, "old_flag": None}
    (change,) = Change.objects.for_workspace(ws).filter(id__gt=since, kind="attributes")
    assert change.profile_id == ada.pk
    assert change.data["attributes"] == {"plan": {"old": "free", "new": "pro"},
                                         "greeting": {"old": None, "new": "Hello ADA"},
                                         "campaign_name": {"old": None, "new": "Welcome"},
                                         "score": {"old": None, "new": 7},
                                         "old_flag": {"old": True, "new": None}}


def test_update_object_relates_the_person(tenant_a, track, clock):
    ws = tenant_a.workspace
    campaign(ws, trigger={"type": "event", "name": "joined_team"}, workflow={"start": "account", "steps": {
        "account": {"type": "update_object", "object_type_id": "1", "object_id": "{{ trigger.account }}",
                    "attributes": {"owner": "{{ customer.email }}", "seats": 5}}}})
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "joined_team", {"account": "acme"})
    feed(ws)
    since = Change.objects.for_workspace(ws).order_by("-id").values_list("id", flat=True).first()
    tick()
    acme = CustomObject.objects.for_workspace(ws).get(object_id="acme")
    assert acme.object_type.type_id == "1"
    assert acme.attributes == {"owner": "ada@example.test", "seats": 5}
    assert Relationship.objects.for_workspace(ws).filter(object=acme, profile=person(ws, "ada")).exists()
    kinds = list(Change.objects.for_workspace(ws).filter(id__gt=since).order_by("id").values_list("kind", flat=True))
    assert "object" in kinds and "relationship" in kinds


def test_only_if_skips_a_step_for_people_who_fail_it(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "pros_only", "steps": {
        "pros_only": {"type": "update_attributes", "only_if": PRO, "attributes": {"perk": "yes"}, "next": "all"},
        "all": {"type": "update_attributes", "attributes": {"seen": "yes"}}}})
    identify(track, "ada", plan="pro")
    identify(track, "bob", plan="free")
    event(track, "ada", "go")
    event(track, "bob", "go")
    feed(ws)
    tick()
    assert log(run_of(made, "ada")) == [("pros_only", "updated"), ("all", "updated")]
    assert log(run_of(made, "bob")) == [("pros_only", "skipped"), ("all", "updated")]
    assert person(ws, "ada").attributes["perk"] == "yes" and "perk" not in person(ws, "bob").attributes
    assert person(ws, "bob").attributes["seen"] == "yes"
