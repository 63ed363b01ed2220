"""A publish against the change feed: a run kept on an older version waits for events by that
version's step, and runs that enter while a publish is being made start on the version it makes."""

import threading

import pytest
from django.db import connection, connections, transaction

from campaigns.journeys import services
from campaigns.journeys.triggers import enter_from_webhook
from campaigns.models import Campaign, Journey
from tests.campaigns.journeys.conftest import campaign, event, feed, identify, person, runs_of, tick
from tests.support.factories import ProfileFactory
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HOOK = {"type": "webhook"}


def paid_over(amount: int) -> dict:
    return {"start": "pay", "steps": {
        "pay": {"type": "wait_until", "event": {"name": "paid", "filters": [
            {"field": "amount", "operator": "gt", "value": amount}]}, "within": {"days": 7},
            "matched": "thanks", "timeout": None},
        "thanks": {"type": "exit"}}}


def test_a_run_kept_on_its_version_waits_for_that_versions_event(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "ordered"}, workflow=paid_over(100))
    identify(track, "ada")
    event(track, "ada", "ordered")
    feed(ws)
    tick()
    (run,) = runs_of(made)
    assert (run.state, run.step, run.version) == ("waiting", "pay", 1)
    body = {"name": made.name, "trigger": {"type": "event", "name": "ordered"}, "workflow": paid_over(1000)}
    services.update_campaign(campaign=made, definition=body, publish={"runs": "stay"})
    # 500 is over version 1's 100 (the run's) and under version 2's 1000.
    event(track, "ada", "paid", {"amount": 500})
    feed(ws)
    run.refresh_from_db()
    assert run.version == 1 and run.wait.get("matched") == {"amount": 500}
    tick()
    run.refresh_from_db()
    assert (run.state, run.step) == ("exited", "thanks")  # matched: on to `thanks`, an exit step
    assert person(ws, "ada").pk == run.profile_id


@pytest.mark.parametrize("choice", [{"runs": "exit"}, {"runs": "move", "removed": {"old": "new"}}])
def test_a_run_entering_during_a_publish_starts_on_the_new_version(tenant_a, choice):
    runs = choice["runs"]
    ws = tenant_a.workspace
    v1 = {"start": "old", "steps": {"old": {"type": "delay", "duration": {"days": 1}, "next": None}}}
    v2 = {"start": "new", "steps": {"new": {"type": "delay", "duration": {"hours": 1}, "next": None}}}
    made = campaign(ws, trigger=HOOK, workflow=v1)
    first = ProfileFactory(workspace=ws, external_id="first")
    enter_from_webhook(campaign=made, body={"identifiers": {"id": "first"}})
    later = ProfileFactory(workspace=ws, external_id="later")
    stale = Campaign.unscoped.get(pk=made.pk)  # read before the publish, as the consumer reads it
    entering_done, published, problems = threading.Event(), threading.Event(), []

    def publish():
        try:
            with transaction.atomic():
                services.update_campaign(campaign=Campaign.unscoped.get(pk=made.pk), publish=choice,
                                         definition={"name": made.name, "trigger": HOOK, "workflow": v2})
                published.set()
                # Commit once the entry waits on the campaign row (or, without that lock, has finished).
                wait_until(lambda: entering_done.is_set() or lock_waiters() > 0, timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            problems.append(exc)
            published.set()
        finally:
            connections.close_all()

    def lock_waiters() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            return cursor.fetchone()[0]

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert published.wait(30) and not problems, problems
    try:
        run, created = enter_from_webhook(campaign=stale, body={"identifiers": {"id": "later"}})
    finally:
        entering_done.set()
        publisher.join(30)
    assert not problems and created
    run.refresh_from_db()
    assert (run.profile_id, run.version, run.step, run.state) == (later.pk, 2, "new", "active")
    earlier = Journey.unscoped.get(campaign=made, profile=first)
    assert earlier.version == (2 if runs == "move" else 1)
    assert earlier.state == ("exited" if runs == "exit" else "active")
