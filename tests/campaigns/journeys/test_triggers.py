"""Every trigger type through the real ingest path: Track API (or the inbound SMS service), the
ingest processor, the change feed consumer `journeys`, then the tick. The clock is frozen."""

from datetime import timedelta

import pytest

from campaigns.models import Journey
from channels.inbound import receive_message
from profiles.models import SegmentKind
from profiles.segments import services as segments
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, person, runs_of, tick

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = {"start": "hold", "steps": {"hold": {"type": "delay", "duration": {"days": 1}}}}










def entered(made) -> list[str]:
    """External ids (or phones) of the people with a run of the campaign, in order of entry."""
    return [run.profile.external_id or run.profile.phone for run in runs_of(made)]


def test_event_trigger_matches_name_and_filters_on_its_data(tenant_a, tenant_b, track, track_b, clock):
    ws = tenant_a.workspace
    big = campaign(ws, name="Big orders", workflow=HOLD, trigger={
        "type": "event", "name": "purchase",
        "filters": [{"field": "total", "operator": "gt", "value": 50},
                    {"field": "currency", "operator": "in", "value": ["EUR", "TRY"]}]})
    any_order = campaign(ws, name="Any order", workflow=HOLD, trigger={"type": "event", "name": "purchase"})
    event(track, "small", "purchase", {"total": 20, "currency": "EUR"})
    event(track, "dollars", "purchase", {"total": 99, "currency": "USD"})
    event(track, "other", "refund", {"total": 99, "currency": "EUR"})
    event(track, "big", "purchase", {"total": 99, "currency": "TRY", "sku": "A-1"})
    event(track_b, "theirs", "purchase", {"total": 99, "currency": "TRY"})  # another workspace's event
    feed(ws)
    feed(tenant_b.workspace)

    assert entered(big) == ["big"]
    assert entered(any_order) == ["small", "dollars", "big"]
    run = runs_of(big)[0]
    assert run.trigger_data == {"name": "purchase", "total": 99, "currency": "TRY", "sku": "A-1",
                                "timestamp": T0.isoformat()}
    assert run.step == "hold" and run.state == "active" and run.next_run_at == T0
    assert not Journey.objects.for_workspace(tenant_b.workspace).exists()
    assert tick() == 4
    assert {r.state for r in runs_of(big) + runs_of(any_order)} == {"waiting"}


def test_only_events_at_most_72_hours_old_trigger(tenant_a, track, clock):
    ws = tenant_a.workspace
    made = campaign(ws, workflow=HOLD, trigger={"type": "event", "name": "signed_up"})
    recent = campaign(ws, name="Fresh only", workflow=HOLD,
                      trigger={"type": "event", "name": "signed_up", "max_age_hours": 1})
    event(track, "old", "signed_up", timestamp=int((T0 - timedelta(hours=72, minutes=1)).timestamp()))
    event(track, "days", "signed_up", timestamp=int((T0 - timedelta(hours=71)).timestamp()))
    event(track, "hour", "signed_up", timestamp=int((T0 - timedelta(minutes=59)).timestamp()))
    event(track, "future", "signed_up", timestamp=int((T0 + timedelta(minutes=5)).timestamp()))
    feed(ws)
    assert entered(made) == ["days", "hour", "future"]
    assert entered(recent) == ["hour", "future"]
    # The old event was stored all the same: it only does not trigger.
    assert person(ws, "old").pk


def test_segment_entered_and_segment_exited(tenant_a, track, clock):
    ws = tenant_a.workspace
    pros = segments.create_segment(workspace=ws, name="Pros", kind=SegmentKind.DATA,
                                   conditions={"attribute": {"field": "plan", "operator": "eq", "value": "pro"}})
    segments.recompute(pros)
    joined = campaign(ws, name="Joined", workflow=HOLD, trigger={"type": "segment_entered", "segment_id": pros.pk})
    left = campaign(ws, name="Left", workflow=HOLD, trigger={"type": "segment_exited", "segment_id": pros.pk})
    identify(track, "ada", plan="pro")
    identify(track, "bob", plan="free")
    feed(ws)
    assert entered(joined) == ["ada"] and entered(left) == []
    assert runs_of(joined)[0].trigger_data == {"segment_id": pros.pk}

    identify(track, "ada", plan="free")
    identify(track, "bob", plan="basic")  # not a member before, not one now: no exit
    feed(ws)
    assert entered(left) == ["ada"]
    assert entered(joined) == ["ada"]


def test_manual_segment_moves_through_the_app_api_trigger_too(tenant_a, track, clock):
    ws = tenant_a.workspace
    vips = segments.create_segment(workspace=ws, name="VIPs", kind=SegmentKind.MANUAL, conditions={})
    made = campaign(ws, workflow=HOLD, trigger={"type": "segment_entered", "segment_id": vips.pk})
    identify(track, "ada", email="ada@example.test")
    feed(ws)
    response = tenant_a.app_client().post(f"/v1/segments/{vips.pk}/add_customers", {"ids": ["ada"]}, format="json")
    assert response.status_code in (200, 202, 204), response.content
    feed(ws)
    assert entered(made) == ["ada"]


def test_attribute_changed_with_field_and_from_to(tenant_a, track, clock):
    ws = tenant_a.workspace
    upgraded = campaign(ws, name="Upgraded", workflow=HOLD,
                        trigger={"type": "attribute_changed", "field": "plan", "from": "free", "to": "pro"})
    any_change = campaign(ws, name="Plan changed", workflow=HOLD, re_entry={"mode": "always"},
                          trigger={"type": "attribute_changed", "field": "plan"})
    new_email = campaign(ws, name="Email", workflow=HOLD, trigger={"type": "attribute_changed", "field": "email"})
    identify(track, "ada", plan="free")
    identify(track, "bob", plan="trial")
    feed(ws)
    # A new person's values change from nothing: only the campaign without from/to admits them.
    assert entered(upgraded) == [] and entered(any_change) == ["ada", "bob"]
    tick()

    identify(track, "ada", plan="pro", city="Izmir")
    identify(track, "bob", plan="pro")
    identify(track, "cem", email="cem@example.test")
    feed(ws)
    assert entered(upgraded) == ["ada"]
    assert runs_of(upgraded)[0].trigger_data == {"field": "plan", "from": "free", "to": "pro"}
    assert entered(new_email) == ["cem"]
    # "always" admits again once the live run is over; meanwhile each person keeps one live run.
    assert entered(any_change) == ["ada", "bob"]

    identify(track, "ada", city="Ankara")  # another attribute: nothing
    feed(ws)
    assert len(runs_of(any_change)) == 2 and len(runs_of(upgraded)) == 1


def test_inbound_message_with_keywords_and_any_reply(tenant_a, sms_config, clock):
    ws = tenant_a.workspace
    joins = campaign(ws, name="Join", workflow=HOLD,
                     trigger={"type": "inbound_message", "channel": "sms", "keywords": ["JOIN", "katil"]})
    replies = campaign(ws, name="Any reply", workflow=HOLD, trigger={"type": "inbound_message"})
    on_whatsapp = campaign(ws, name="WhatsApp", workflow=HOLD, trigger={"type": "inbound_message",
                                                                        "channel": "whatsapp"})

    def text(sender, body, sid):
        receive_message(sms_config, from_address=sender, provider_message_id=sid, body=body,
                        to_address=sms_config.sender)

    text("+905551110001", "join now please", "SM1")
    text("+905551110002", "Katil", "SM2")
    text("+905551110003", "hello there", "SM3")
    text("+905551110004", "rejoin", "SM4")
    text("+905551110001", "join", "SM1")  # the provider retried its webhook: nothing new
    feed(ws)

    assert entered(joins) == ["+905551110001", "+905551110002"]
    assert sorted(entered(replies)) == ["+905551110001", "+905551110002", "+905551110003", "+905551110004"]
    assert entered(on_whatsapp) == []
    run = runs_of(joins)[0]
    assert run.trigger_data["body"] == "join now please" and run.trigger_data["channel"] == "sms"
    assert run.trigger_data["from"] == "+905551110001"


def test_inbound_message_over_the_twilio_webhook(tenant_a, clock, settings):
    from tests.channels.test_inbound import inbound
    from tests.channels.test_sms import FakeTwilio, twilio_config

    ws = tenant_a.workspace
    made = campaign(ws, workflow=HOLD, trigger={"type": "inbound_message", "channel": "sms", "keywords": ["start"]})
    with FakeTwilio() as fake:
        config = twilio_config(tenant_a, fake.server.url)
        from rest_framework.test import APIClient

        response = inbound(APIClient(), config, "START please", sender="+905551119999")
    assert response.status_code in (200, 204), response.content
    feed(ws)
    assert entered(made) == ["+905551119999"]


def test_object_changed_enters_every_related_person(tenant_a, track, clock):
    ws = tenant_a.workspace
    created = campaign(ws, name="New account", workflow=HOLD,
                       trigger={"type": "object_changed", "object_type_id": "1", "actions": ["created"]})
    updated = campaign(ws, name="Account changed", workflow=HOLD,
                       trigger={"type": "object_changed", "object_type_id": 1, "actions": ["updated"]})
    other_type = campaign(ws, name="Other type", workflow=HOLD,
                          trigger={"type": "object_changed", "object_type_id": "2"})
    response = track.post("/api/v2/entity", {
        "type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "acme"},
        "attributes": {"plan": "enterprise"},
        "cio_relationships": [{"identifiers": {"id": "ada"}}, {"identifiers": {"id": "bob"}}]}, format="json")
    assert response.status_code == 200, response.content
    feed(ws)
    assert sorted(entered(created)) == ["ada", "bob"] and entered(updated) == [] and entered(other_type) == []
    assert runs_of(created)[0].trigger_data == {"object_type_id": "1", "object_id": "acme", "action": "created",
                                               "attributes": {"plan": "enterprise"}}

    track.post("/api/v2/entity", {"type": "object", "action": "identify",
                                  "identifiers": {"object_type_id": "1", "object_id": "acme"},
                                  "attributes": {"plan": "team"}}, format="json")
    feed(ws)
    assert sorted(entered(updated)) == ["ada", "bob"]
    assert len(runs_of(created)) == 2


def test_relationship_changed(tenant_a, track, clock):
    ws = tenant_a.workspace
    added = campaign(ws, name="Joined account", workflow=HOLD,
                     trigger={"type": "relationship_changed", "object_type_id": "1", "actions": ["added"]})
    removed = campaign(ws, name="Left account", workflow=HOLD,
                       trigger={"type": "relationship_changed", "object_type_id": "1", "actions": ["removed"]})
    track.post("/api/v2/entity", {"type": "person", "action": "identify", "identifiers": {"id": "ada"},
                                  "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"},
                                                         "relationship_attributes": {"role": "admin"}}]},
               format="json")
    identify(track, "bob", plan="free")
    feed(ws)
    assert entered(added) == ["ada"] and entered(removed) == []
    assert runs_of(added)[0].trigger_data == {"object_type_id": "1", "object_id": "acme", "action": "added",
                                             "attributes": {"role": "admin"}}
    track.post("/api/v2/entity", {"type": "object", "action": "delete_relationships",
                                  "identifiers": {"object_type_id": "1", "object_id": "acme"},
                                  "cio_relationships": [{"identifiers": {"id": "ada"}}]}, format="json")
    feed(ws)
    assert entered(removed) == ["ada"]


def test_the_same_change_fed_twice_starts_one_run(tenant_a, track, clock):
    from profiles.changefeed import rewind

    ws = tenant_a.workspace
    made = campaign(ws, workflow=HOLD, re_entry={"mode": "always", "concurrent": True},
                    trigger={"type": "event", "name": "signed_up"})
    event(track, "ada", "signed_up", id="01J0000000000000000000EVT1")
    event(track, "ada", "signed_up", id="01J0000000000000000000EVT1")  # a retried request: stored once
    feed(ws)
    assert len(runs_of(made)) == 1
    rewind(workspace=ws, consumer="journeys")
    feed(ws)
    assert len(runs_of(made)) == 1
