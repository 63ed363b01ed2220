"""Time in journeys with a controlled clock: delays, time windows in the person's IANA time zone
(or the workspace's) across DST changes and in zones far apart, windows spanning midnight,
wait-until (condition and event, each with its timeout) and date triggers (an offset from a date
at a time of day in the person's zone; yearly, with 29 February)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from campaigns.journeys.dates import run_date_triggers
from campaigns.models import Journey, JourneyStep
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, person, tick

pytestmark = pytest.mark.django_db(transaction=True)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)








def run_of(made, pid) -> Journey:
    return Journey.objects.for_workspace(made.workspace_id).select_related("profile").get(
        campaign=made, profile__external_id=pid)


def log(run) -> list[tuple[str, str]]:
    return list(JourneyStep.objects.for_workspace(run.workspace_id).filter(journey=run)
                .values_list("step", "outcome"))


def windowed(window: dict) -> dict:
    """A workflow that waits for the window, then marks the person."""
    return {"start": "window", "steps": {
        "window": {"type": "time_window", **window, "next": "mark"},
        "mark": {"type": "update_attributes", "attributes": {"marked": "yes"}}}}


def enter(track, ws, pid, **attributes):
    """The person (with attributes) sends the trigger event; the run is fed and ticked."""
    if attributes:
        identify(track, pid, **attributes)
    event(track, pid, "go")
    feed(ws)
    tick()


# --- delay --------------------------------------------------------------------------------------------------------

def test_delay_waits_exactly_its_duration(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "wait", "steps": {
        "wait": {"type": "delay", "duration": {"minutes": 90}, "next": "mark"},
        "mark": {"type": "update_attributes", "attributes": {"marked": "yes"}}}})
    enter(track, ws, "ada")
    run = run_of(made, "ada")
    assert (run.state, run.step, run.next_run_at) == ("waiting", "wait", T0 + timedelta(minutes=90))
    clock.shift(timedelta(minutes=89, seconds=59))
    assert tick() == 0
    clock.shift(timedelta(seconds=1))
    assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed" and person(ws, "ada").attributes["marked"] == "yes"
    assert log(run) == [("wait", "waiting"), ("wait", "waited"), ("mark", "updated")]


# --- time windows -------------------------------------------------------------------------------------------------

def test_window_in_the_persons_zone_across_the_us_spring_change(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"},
                    workflow=windowed({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}))
    clock.move_to(at(2026, 3, 6, 23, 0))  # Friday 18:00 EST, after the window; clocks spring forward on Sunday
    enter(track, ws, "ada", timezone="America/New_York")
    run = run_of(made, "ada")
    assert run.next_run_at == at(2026, 3, 9, 13, 0)  # Monday 09:00 EDT (not 14:00 UTC: the offset changed)
    assert JourneyStep.objects.for_workspace(ws).get(journey=run).detail["time_zone"] == "America/New_York"
    clock.move_to(at(2026, 3, 9, 12, 59, 59))
    assert tick() == 0
    clock.move_to(at(2026, 3, 9, 13, 0))
    assert tick() == 1
    assert person(ws, "ada").attributes["marked"] == "yes"
    # Inside the window the run goes straight on.
    enter(track, ws, "bob", timezone="America/New_York")
    assert log(run_of(made, "bob")) == [("window", "in_window"), ("mark", "updated")]


def test_window_in_the_workspace_zone_across_both_european_changes(tenant_a, track, clock):
    ws = tenant_a.workspace
    ws.time_zone = "Europe/Berlin"
    ws.save(update_fields=["time_zone"])
    made = campaign(ws, trigger={"type": "event", "name": "go"},
                    workflow=windowed({"start": "09:00", "end": "10:00"}))
    clock.move_to(at(2026, 3, 28, 12, 0))  # Saturday 13:00 CET; CEST from Sunday 02:00
    enter(track, ws, "spring")
    enter(track, ws, "mars", timezone="Mars/Olympus_Mons")  # not a zone: the workspace's applies
    enter(track, ws, "tokyo", timezone="Asia/Tokyo")  # the person's own zone wins over the workspace's
    assert run_of(made, "spring").next_run_at == at(2026, 3, 29, 7, 0)  # Sunday 09:00 CEST
    assert run_of(made, "mars").next_run_at == at(2026, 3, 29, 7, 0)
    assert run_of(made, "tokyo").next_run_at == at(2026, 3, 29, 0, 0)  # Sunday 09:00 JST
    clock.move_to(at(2026, 10, 24, 12, 0))  # Saturday 14:00 CEST; CET from Sunday 03:00
    enter(track, ws, "autumn")
    assert run_of(made, "autumn").next_run_at == at(2026, 10, 25, 8, 0)  # Sunday 09:00 CET
    clock.move_to(at(2026, 10, 25, 7, 59))
    assert tick() == 0
    clock.move_to(at(2026, 10, 25, 8, 0))
    assert tick() == 1
    assert run_of(made, "autumn").state == "completed"


def test_windows_of_zones_far_apart(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"},
                    workflow=windowed({"days": ["tue"], "start": "09:00", "end": "10:00"}))
    # T0 is Monday 10:00 UTC: Monday 23:00 in Auckland (NZDT), Monday 02:00 in Los Angeles (PST).
    identify(track, "kiwi", timezone="Pacific/Auckland")
    identify(track, "angeleno", timezone="America/Los_Angeles")
    enter(track, ws, "kiwi")
    enter(track, ws, "angeleno")
    assert run_of(made, "kiwi").next_run_at == at(2026, 3, 2, 20, 0)  # Tuesday 09:00 NZDT
    assert run_of(made, "angeleno").next_run_at == at(2026, 3, 3, 17, 0)  # Tuesday 09:00 PST
    clock.move_to(at(2026, 3, 2, 20, 0))
    assert tick() == 1
    assert run_of(made, "kiwi").state == "completed" and run_of(made, "angeleno").state == "waiting"
    clock.move_to(at(2026, 3, 3, 17, 0))
    assert tick() == 1
    assert run_of(made, "angeleno").state == "completed"


def test_window_spanning_midnight_belongs_to_the_day_it_starts(tenant_a, track, clock):
    ws = tenant_a.workspace
    night = {"start": "22:00", "end": "06:00", "time_zone": "Europe/Istanbul"}  # UTC+3 all year
    monday = campaign(ws, name="Monday night", trigger={"type": "event", "name": "go"},
                      workflow=windowed({**night, "days": ["mon"]}))
    tuesday = campaign(ws, name="Tuesday night", trigger={"type": "event", "name": "go"},
                       workflow=windowed({**night, "days": ["tue"]}))
    clock.move_to(at(2026, 3, 3, 0, 30))  # Tuesday 03:30 in Istanbul: inside Monday night's window
    enter(track, ws, "early")
    assert log(run_of(monday, "early"))[0] == ("window", "in_window")
    assert run_of(tuesday, "early").next_run_at == at(2026, 3, 3, 19, 0)  # Tuesday 22:00 +03
    clock.move_to(at(2026, 3, 3, 3, 30))  # 06:30: Monday night is over
    enter(track, ws, "late")
    assert run_of(monday, "late").next_run_at == at(2026, 3, 9, 19, 0)  # next Monday 22:00
    clock.move_to(at(2026, 3, 3, 19, 0))
    assert tick() == 2  # both Tuesday-night runs
    assert run_of(tuesday, "late").state == "completed" and run_of(monday, "late").state == "waiting"


# --- wait until ----------------------------------------------------------------------------------------------------

WAIT_FOR_PRO = {"start": "upgrade", "steps": {
    "upgrade": {"type": "wait_until", "condition": {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
                "within": {"days": 2}, "matched": "won", "timeout": "lost"},
    "won": {"type": "update_attributes", "attributes": {"outcome": "won"}},
    "lost": {"type": "update_attributes", "attributes": {"outcome": "lost"}}}}


def test_wait_until_condition_matches_when_an_attribute_changes_else_times_out(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=WAIT_FOR_PRO)
    enter(track, ws, "already", plan="pro")
    enter(track, ws, "ada", plan="free")
    enter(track, ws, "bob", plan="free")
    assert log(run_of(made, "already")) == [("upgrade", "matched"), ("won", "updated")]
    assert run_of(made, "ada").next_run_at == T0 + timedelta(days=2)

    clock.shift(timedelta(hours=3))
    identify(track, "ada", plan="pro")
    identify(track, "bob", city="Izmir")  # a change that does not meet the condition: still waiting
    feed(ws)
    assert tick() == 2
    assert person(ws, "ada").attributes["outcome"] == "won"
    assert log(run_of(made, "ada"))[-2:] == [("upgrade", "matched"), ("won", "updated")]
    bob = run_of(made, "bob")
    assert (bob.state, bob.next_run_at) == ("waiting", T0 + timedelta(days=2))

    clock.move_to(T0 + timedelta(days=2) - timedelta(seconds=1))
    assert tick() == 0
    clock.move_to(T0 + timedelta(days=2))
    assert tick() == 1
    assert person(ws, "bob").attributes["outcome"] == "lost"
    assert log(run_of(made, "bob"))[-2:] == [("upgrade", "timeout"), ("lost", "updated")]


def test_wait_until_event_matches_with_filters_else_times_out(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow={"start": "pay", "steps": {
        "pay": {"type": "wait_until", "event": {"name": "paid", "filters": [
            {"field": "amount", "operator": "gte", "value": 10}]}, "within": {"hours": 24},
                "matched": "won", "timeout": "lost"},
        "won": {"type": "update_attributes", "attributes": {"outcome": "paid {{ journey.events.paid.amount }}"}},
        "lost": {"type": "update_attributes", "attributes": {"outcome": "lost"}}}})
    event(track, "ada", "paid", {"amount": 50})  # before the run waits: does not count
    feed(ws)
    enter(track, ws, "ada")
    enter(track, ws, "bob")
    clock.shift(timedelta(hours=1))
    event(track, "ada", "paid", {"amount": 5})  # filtered out
    event(track, "bob", "refund", {"amount": 50})  # another event
    feed(ws)
    assert tick() == 0
    event(track, "ada", "paid", {"amount": 20})
    feed(ws)
    assert tick() == 1
    assert person(ws, "ada").attributes["outcome"] == "paid 20"
    assert run_of(made, "ada").data["events"]["paid"] == {"amount": 20}
    clock.move_to(T0 + timedelta(hours=24))
    assert tick() == 1
    assert person(ws, "bob").attributes["outcome"] == "lost"


# --- date triggers ---------------------------------------------------------------------------------------------------

def test_date_trigger_offset_and_time_in_the_persons_zone(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "date", "attribute": "trial_ends_at", "offset": {"days": -3}, "at": "09:00"},
                    workflow={"start": "hold", "steps": {"hold": {"type": "delay", "duration": {"days": 30}}}})
    identify(track, "berlin", timezone="Europe/Berlin", trial_ends_at="2026-03-13T00:00:00Z")
    identify(track, "newyork", timezone="America/New_York", trial_ends_at=int(at(2026, 3, 13, 12).timestamp()))
    identify(track, "past", trial_ends_at="2026-03-04")  # 1 March 09:00 UTC: before activation
    identify(track, "none", trial_ends_at="soon")
    feed(ws)
    assert run_date_triggers() == 0  # at T0 nothing is due, and 1 March 09:00 was before activation

    clock.move_to(at(2026, 3, 10, 7, 59))
    assert run_date_triggers() == 0
    clock.move_to(at(2026, 3, 10, 8, 0))  # 09:00 CET, three days before the 13th
    assert run_date_triggers() == 1
    clock.move_to(at(2026, 3, 10, 12, 59))
    assert run_date_triggers() == 0
    clock.move_to(at(2026, 3, 10, 13, 0))  # 09:00 EDT
    assert run_date_triggers() == 1
    assert run_date_triggers() == 0  # a second run of the same minute starts nothing
    runs = Journey.objects.for_workspace(ws).filter(campaign=made).select_related("profile").order_by("pk")
    assert [(r.profile.external_id, r.entered_at) for r in runs] == [("berlin", at(2026, 3, 10, 8, 0)),
                                                                       ("newyork", at(2026, 3, 10, 13, 0))]
    assert runs[0].trigger_data == {"attribute": "trial_ends_at", "date": "2026-03-13", "fired_on": "2026-03-10"}
    clock.move_to(at(2026, 3, 11, 13, 0))
    assert run_date_triggers() == 0


def test_yearly_date_trigger_with_29_february(tenant_a, track):
    ws = tenant_a.workspace
    with time_machine.travel(T0, tick=False) as clock:
        made = campaign(ws, re_entry={"mode": "always"},
                        trigger={"type": "date", "attribute": "birthday", "yearly": True, "at": "09:00"},
                        workflow={"start": "greet", "steps": {
                            "greet": {"type": "update_attributes",
                                      "attributes": {"greeted": "{{ trigger.fired_on }}"}}}})
        identify(track, "leap", birthday="2000-02-29")
        identify(track, "eve", birthday="1990-02-28")
        identify(track, "kiwi", birthday="1985-03-01", timezone="Pacific/Auckland")
        feed(ws)

        def fire(moment) -> list[str]:
            clock.move_to(moment)
            run_date_triggers()
            tick()
            assert run_date_triggers() == 0  # again: nothing new, the runs just completed included
            return sorted(Journey.objects.for_workspace(ws).filter(campaign=made, entered_at=moment)
                          .values_list("profile__external_id", flat=True))

        # 2027 has no 29 February: the leap-day birthday is on the 28th.
        assert fire(at(2027, 2, 28, 9, 0)) == ["eve", "leap"]
        assert person(ws, "leap").attributes["greeted"] == "2027-02-28"
        assert fire(at(2027, 2, 28, 20, 0)) == ["kiwi"]  # 1 March 09:00 in Auckland
        assert fire(at(2028, 2, 28, 9, 0)) == ["eve"]
        assert fire(at(2028, 2, 29, 9, 0)) == ["leap"]
        assert person(ws, "leap").attributes["greeted"] == "2028-02-29"
        assert Journey.objects.for_workspace(ws).filter(campaign=made).count() == 5
