"""A deleted person's journeys end and their run data goes with them; the data subject export
lists their journeys with the step log."""

import pytest

from campaigns.models import Journey, JourneyStep
from compliance.deletion import request_deletion, run_deletion
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import campaign, feed, tick
from tests.compliance.test_dsar import bundle_of, compliance_client, export

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def email_config(tenant_a):
    return make_config(tenant_a.workspace, settings={"host": "127.0.0.1", "port": 9})

WORKFLOW = {"start": "hello", "steps": {
    "hello": {"type": "send", "channel": "email", "content": {"subject": "Hi", "body": "Order {{ trigger.order }}"},
              "next": "later"},
    "later": {"type": "wait_until", "event": {"name": "paid"}, "within": {"days": 3}, "matched": None,
              "timeout": None},
}}


def in_a_journey(tenant, track, name):
    track.put(f"/api/v1/customers/{name}", {"email": f"{name}@example.test"}, format="json")
    track.post(f"/api/v1/customers/{name}/events", {"name": "ordered", "data": {"order": "A-1"}}, format="json")


def test_deletion_removes_the_persons_runs_and_step_log_and_nobody_elses(tenant_a, track, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "ordered"}, workflow=WORKFLOW)
    in_a_journey(tenant_a, track, "ann")
    in_a_journey(tenant_a, track, "bob")
    feed(ws)
    tick()
    runs = Journey.unscoped.filter(campaign=made)
    assert sorted(runs.values_list("state", flat=True)) == ["waiting", "waiting"]
    ann = runs.get(profile__external_id="ann").profile
    record = run_deletion(request_deletion(workspace=ws, identifiers={"id": "ann"}, source="api"))
    assert record.status == "completed"
    assert record.counts["campaigns.Journey"] == 1 and record.counts["campaigns.JourneyStep"] == 2
    assert list(Journey.unscoped.filter(campaign=made).values_list("profile__external_id", flat=True)) == ["bob"]
    assert not JourneyStep.unscoped.filter(journey__profile_id=ann.pk).exists()
    assert JourneyStep.unscoped.filter(campaign=made).count() == 2  # Bob's: sent, waiting


def test_the_export_lists_the_persons_journeys_with_their_step_log(tenant_a, tenant_b, track, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "ordered"}, workflow=WORKFLOW)
    in_a_journey(tenant_a, track, "ann")
    in_a_journey(tenant_a, track, "bob")
    feed(ws)
    tick()
    bundle = bundle_of(export(compliance_client(tenant_a), {"id": "ann"}))
    [journey] = bundle["journeys"]
    assert journey["campaign"] == {"id": made.pk, "name": "Welcome"}
    assert journey["state"] == "waiting" and journey["trigger_data"]["order"] == "A-1"
    assert [(s["step"], s["outcome"]) for s in journey["steps"]] == [("hello", "sent"), ("later", "waiting")]
    assert journey["steps"][0]["delivery_id"]
    assert bundle["not_yet_collected"] == []


def test_deletion_takes_the_person_out_of_pending_broadcasts_and_their_errors(tenant_a, email_config):
    from campaigns.journeys import broadcasts
    from campaigns.models import BroadcastError, BroadcastTrigger
    from tests.support.factories import ProfileFactory

    ws = tenant_a.workspace
    ann = ProfileFactory(workspace=ws, external_id="ann", email="ann@example.test")
    ProfileFactory(workspace=ws, external_id="bob", email="bob@example.test")
    sale = campaign(ws, name="Sale", type="broadcast", workflow={"start": "m", "steps": {"m": {
        "type": "send", "channel": "email", "content": {"subject": "S", "body": "B"}}}})
    pending, _ = broadcasts.trigger_broadcast(campaign=sale, body={"ids": ["ann", "bob"], "send_at": 4102444800})
    started, _ = broadcasts.trigger_broadcast(campaign=sale, body={"emails": ["ann@example.test", "gone@x.test"]})
    broadcasts.start_due()
    BroadcastError.unscoped.create(workspace=ws, trigger=started, identifier="ann", reason="test row naming her")
    run_deletion(request_deletion(workspace=ws, identifiers={"id": ann.external_id}, source="api"))
    pending.refresh_from_db()
    assert pending.audience["values"] == ["bob"]
    assert list(BroadcastError.unscoped.filter(trigger=started).values_list("identifier", flat=True)) == [
        "gone@x.test"]
    assert not BroadcastTrigger.unscoped.filter(audience__values__contains=["ann"]).exists()
