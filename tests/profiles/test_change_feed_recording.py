"""The change feed is written in the transaction that makes the change: ingest batches, App API and
admin writes, segment membership and inbound messages. See docs/change-feed.md."""

import pytest
from django.db import connection, transaction

from channels.inbound import receive_message
from profiles.changefeed import recording as feed
from profiles.ingest import processor
from profiles.ingest.processor import process_batch, process_pending
from profiles.ingest.store import stage_operations
from profiles.models import (
    Change, ChangeKind, CustomObject, Event, InboundOperation, ObjectType, Profile, Segment, SegmentKind, SegmentState,
)
from profiles.segments import services as segments
from profiles.segments.incremental import BatchTracker
from tests.support.factories import ChannelConfigFactory, ProfileFactory

T = 1_700_000_000


def changes(workspace, **filters) -> list[Change]:
    return list(Change.objects.for_workspace(workspace).filter(**filters).order_by("txid", "id"))


def ingest(tenant, *ops) -> int:
    stage_operations(workspace=tenant.workspace, operations=list(ops), source="test")
    return process_pending(tenant.workspace)


def identify(person, ts=1.0, **fields):
    return {"op": "identify", "person": {"id": person}, "ts": T + ts, **fields}


def event(person, name="purchase", **extra):
    return {"op": "event", "person": {"id": person}, "name": name, "type": "event", "data": {"total": 5},
            "timestamp": T, **extra}


def attribute_rows(workspace, external_id):
    person = Profile.unscoped.get(workspace=workspace, external_id=external_id)
    return [c.data for c in changes(workspace, kind=ChangeKind.ATTRIBUTES, profile_id=person.pk)]


def pro_segment(workspace) -> Segment:
    return Segment.unscoped.create(
        workspace=workspace, name="Pro", kind=SegmentKind.DATA, state=SegmentState.READY,
        conditions={"attribute": {"field": "plan", "operator": "eq", "value": "pro"}})


# --- ingest ---------------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_an_ingest_batch_records_every_kind_in_its_own_transaction(tenant_a, monkeypatch):
    ws = tenant_a.workspace
    ingest(tenant_a, identify("u2", attributes={"city": "Izmir"}))
    u2 = Profile.unscoped.get(workspace=ws, external_id="u2")
    segment = pro_segment(ws)
    before = {c.pk for c in changes(ws)}
    txids = []

    def probe(workspace, op):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            txids.append(cursor.fetchone()[0])

    monkeypatch.setitem(processor.HANDLERS, "probe", probe)
    acme = {"type_id": "1", "object_id": "acme"}
    assert ingest(
        tenant_a,
        identify("u1", email="ada@example.test", attributes={"plan": "pro"}),
        event("u1", dedupe_id="ev-1"),
        {"op": "object_identify", "object": acme, "ts": T + 2.0, "attributes": {"name": "Acme"},
         "people": [{"person": {"id": "u1"}, "attributes": {"role": "admin"}}]},
        {"op": "delete_relationships", "person": {"id": "u1"}, "objects": [{"object": acme}]},
        {"op": "merge", "primary": {"id": "u1"}, "secondary": {"id": "u2"}},
        {"op": "suppress", "person": {"id": "u1"}},
        {"op": "probe"},
    ) == 7
    u1 = Profile.unscoped.get(workspace=ws, external_id="u1")
    rows = [c for c in changes(ws) if c.pk not in before]
    # One transaction wrote them all: the batch's own.
    assert {c.txid for c in rows} == set(txids) and len(txids) == 1
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    assert set(by_kind) == {"attributes", "event", "object", "relationship", "person_merged", "segment_entered"}

    created, changed = by_kind["attributes"]
    assert created.profile_id == u1.pk and created.data["created"] is True
    assert created.data["attributes"] == {"plan": {"old": None, "new": "pro"}}
    assert created.data["fields"]["email"] == {"old": None, "new": "ada@example.test"}
    assert created.data["fields"]["id"] == {"old": None, "new": "u1"}
    assert created.data["fields"]["cio_id"] == {"old": None, "new": u1.cio_id}
    assert changed.profile_id == u1.pk and changed.data == {
        "created": False, "fields": {"suppressed": {"old": False, "new": True}},
        "attributes": {"city": {"old": None, "new": "Izmir"}}}

    [stored] = by_kind["event"]
    purchase = Event.unscoped.get(workspace=ws, dedupe_id="ev-1")
    assert stored.profile_id == u1.pk and stored.pk > created.pk
    assert stored.data == {"event_id": purchase.pk, "name": "purchase", "type": "event", "id": "ev-1",
                           "timestamp": "2023-11-14T22:13:20+00:00", "data": {"total": 5}}

    [obj] = by_kind["object"]
    assert obj.profile_id is None and obj.data == {
        "object_type_id": "1", "object_id": "acme", "action": "created",
        "attributes": {"name": {"old": None, "new": "Acme"}}}
    added, removed = by_kind["relationship"]
    assert (added.profile_id, added.data) == (u1.pk, {"object_type_id": "1", "object_id": "acme", "action": "added",
                                                      "attributes": {"role": "admin"}})
    assert (removed.profile_id, removed.data) == (u1.pk, {"object_type_id": "1", "object_id": "acme",
                                                          "action": "removed"})
    [merged] = by_kind["person_merged"]
    assert (merged.profile_id, merged.data) == (u1.pk, {"secondary_id": u2.pk})
    [entered] = by_kind["segment_entered"]
    assert (entered.profile_id, entered.data) == (u1.pk, {"segment_id": segment.pk})
    assert entered.pk == max(c.pk for c in rows)  # segment upkeep comes after the batch's data


def test_a_rolled_back_batch_leaves_no_feed_rows(tenant_a, monkeypatch):
    ws = tenant_a.workspace
    pro_segment(ws)

    def crash(self):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(BatchTracker, "finish", crash)
    stage_operations(workspace=ws, operations=[
        identify("u1", attributes={"plan": "pro"}), event("u1"),
        {"op": "object_identify", "object": {"type_id": "1", "object_id": "acme"}, "ts": T, "attributes": {"a": 1},
         "people": [{"person": {"id": "u1"}}]},
    ], source="test")
    with pytest.raises(RuntimeError):
        process_batch(ws)
    assert not Change.unscoped.exists()
    assert not Event.unscoped.exists() and not Profile.unscoped.exists()
    assert InboundOperation.unscoped.count() == 3
    monkeypatch.undo()
    assert process_batch(ws) == 3
    assert {c.kind for c in changes(ws)} == {"attributes", "event", "object", "relationship", "segment_entered"}


def test_a_failed_operation_drops_only_its_own_rows(tenant_a, monkeypatch):
    """Rows noted before a savepoint that are written inside it and rolled back with it come back."""
    ws = tenant_a.workspace

    def half_done(workspace, op):
        from profiles.services import get_or_create_person

        get_or_create_person(workspace, {"id": "ghost"})
        raise ValueError("broken operation")

    monkeypatch.setitem(processor.HANDLERS, "half_done", half_done)
    ingest(
        tenant_a,
        identify("u1", attributes={"plan": "a"}),  # noted, waiting to be written
        {"op": "half_done"},  # creates a person, then fails: its savepoint and its row go
        event("u1", name="ok"),  # the event run writes u1's row first, inside its savepoint ...
        event("u1", name="x" * 300),  # ... which this event breaks (name too long): the run is redone one by one
    )
    assert not Profile.unscoped.filter(external_id="ghost").exists()
    assert [c.kind for c in changes(ws)] == ["attributes", "event"]
    assert attribute_rows(ws, "u1") == [{"created": True, "fields": attribute_rows(ws, "u1")[0]["fields"],
                                         "attributes": {"plan": {"old": None, "new": "a"}}}]
    assert changes(ws, kind="event")[0].data["name"] == "ok"


def test_attribute_rows_only_for_values_that_changed(tenant_a):
    ws = tenant_a.workspace
    ingest(tenant_a, identify("u1", 1, attributes={"plan": "a"}), identify("u1", 2, attributes={"plan": "b"}),
           identify("u1", 3, attributes={"plan": "b"}))
    # One batch: the person's changes between two writes fold into one row, from nothing to "b".
    [created] = attribute_rows(ws, "u1")
    assert created["created"] and created["attributes"] == {"plan": {"old": None, "new": "b"}}

    ingest(tenant_a, identify("u1", 4, attributes={"plan": "b"}), identify("u1", 0.5, attributes={"plan": "old"}))
    assert len(attribute_rows(ws, "u1")) == 1  # same value, and an older write that does not apply

    ingest(tenant_a, identify("u1", 5, attributes={"plan": "c", "seats": 1}))
    ingest(tenant_a, identify("u1", 6, attributes={"seats": True, "plan": ""}))  # 1 → true is a change; "" removes
    assert attribute_rows(ws, "u1")[1:] == [
        {"created": False, "fields": {}, "attributes": {"plan": {"old": "b", "new": "c"},
                                                        "seats": {"old": None, "new": 1}}},
        {"created": False, "fields": {}, "attributes": {"plan": {"old": "c", "new": None},
                                                        "seats": {"old": 1, "new": True}}},
    ]


def test_only_stored_events_are_recorded(tenant_a, tenant_b):
    ingest(tenant_a, event("u1", dedupe_id="same"), event("u1", dedupe_id="same"))
    ingest(tenant_a, event("u1", dedupe_id="same"))
    anonymous = {"op": "event", "anonymous_id": "anon-1", "name": "viewed", "type": "page", "data": {},
                 "timestamp": T}
    ingest(tenant_b, anonymous)
    assert len(changes(tenant_a.workspace, kind="event")) == 1
    [row] = changes(tenant_b.workspace)
    assert (row.kind, row.profile_id, row.anonymous_id, row.data["type"]) == ("event", None, "anon-1", "page")
    assert not changes(tenant_b.workspace, profile__isnull=False)


# --- outside ingest ----------------------------------------------------------------------------------------

def test_app_api_object_and_relationship_writes_are_recorded(tenant_a):
    ws = tenant_a.workspace
    ObjectType.unscoped.create(workspace=ws, type_id="1", name="Companies")
    ann = ProfileFactory(workspace=ws, external_id="ann")
    client = tenant_a.app_client()
    assert client.put("/v1/objects/1/acme", {"attributes": {"plan": "pro"}}, format="json").status_code == 201
    assert client.put("/v1/objects/1/acme", {"attributes": {"plan": "pro"}}, format="json").status_code == 200
    assert client.post("/v1/customers/ann/relationships", {"cio_relationships": [
        {"identifiers": {"object_type_id": "1", "object_id": "acme"}, "relationship_attributes": {"role": "x"}},
    ]}, format="json").status_code == 200
    assert client.put("/v1/objects/1/acme", {"attributes": {"plan": "free"}}, format="json").status_code == 200
    assert client.delete("/v1/objects/1/acme").status_code == 204
    assert [(c.kind, c.profile_id, c.data.get("action"), c.data.get("attributes")) for c in changes(ws)] == [
        ("object", None, "created", {"plan": {"old": None, "new": "pro"}}),
        ("relationship", ann.pk, "added", {"role": "x"}),
        ("object", None, "updated", {"plan": {"old": "pro", "new": "free"}}),
        ("relationship", ann.pk, "removed", None),
        ("object", None, "deleted", None),
    ]


def test_deleting_an_object_type_records_its_objects_and_relationships(tenant_a):
    from profiles.services import delete_object_type

    ws = tenant_a.workspace
    ingest(tenant_a, {"op": "add_relationships", "person": {"id": "u1"},
                      "objects": [{"object": {"type_id": "7", "object_id": "a"}},
                                  {"object": {"type_id": "7", "object_id": "b"}}]})
    u1 = Profile.unscoped.get(workspace=ws, external_id="u1")
    before = {c.pk for c in changes(ws)}
    delete_object_type(object_type=ObjectType.unscoped.get(workspace=ws, type_id="7"))
    rows = [(c.kind, c.profile_id, c.data) for c in changes(ws) if c.pk not in before]
    assert rows == [
        ("relationship", u1.pk, {"object_type_id": "7", "object_id": "a", "action": "removed"}),
        ("relationship", u1.pk, {"object_type_id": "7", "object_id": "b", "action": "removed"}),
        ("object", None, {"object_type_id": "7", "object_id": "a", "action": "deleted"}),
        ("object", None, {"object_type_id": "7", "object_id": "b", "action": "deleted"}),
    ]
    assert not CustomObject.unscoped.filter(workspace=ws).exists()


def test_admin_edits_to_a_person_are_recorded(client, tenant_a):
    from django.urls import reverse

    ws = tenant_a.workspace
    person = ProfileFactory(workspace=ws, external_id="ann", email="ann@example.test", attributes={"plan": "free"})
    client.force_login(tenant_a.owner)
    url = reverse("admin:profiles_profile_change", args=[person.pk])
    post = {"external_id": "ann", "email": "ann@example.test", "phone": "", "attributes": '{"plan": "pro"}',
            "time_zone": "", "unsubscribed": "on", "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
            "devices-TOTAL_FORMS": "0", "devices-INITIAL_FORMS": "0"}
    response = client.post(url, post)
    assert response.status_code == 302, response.context["adminform"].form.errors
    [row] = changes(ws)
    assert (row.kind, row.profile_id) == ("attributes", person.pk)
    assert row.data == {"created": False, "fields": {"unsubscribed": {"old": False, "new": True}},
                        "attributes": {"plan": {"old": "free", "new": "pro"}}}
    assert client.post(url, post).status_code == 302
    assert len(changes(ws)) == 1  # saved again unchanged: nothing


def test_segment_membership_changes_outside_ingest_are_recorded(tenant_a):
    ws = tenant_a.workspace
    manual = segments.create_segment(workspace=ws, name="VIP", kind="manual", conditions=None)
    ann, bob = ProfileFactory(workspace=ws, external_id="ann"), ProfileFactory(workspace=ws, external_id="bob")
    segments.add_people(segment=manual, people=[{"id": "ann"}, {"id": "bob"}])
    segments.remove_people(segment=manual, people=[{"id": "bob"}])
    assert [(c.kind, c.profile_id, c.data) for c in changes(ws)] == [
        ("segment_entered", ann.pk, {"segment_id": manual.pk}),
        ("segment_entered", bob.pk, {"segment_id": manual.pk}),
        ("segment_exited", bob.pk, {"segment_id": manual.pk}),
    ]
    data = Segment.unscoped.create(workspace=ws, name="Named", kind=SegmentKind.DATA, state=SegmentState.BUILDING,
                                   conditions={"attribute": {"field": "id", "operator": "eq", "value": "bob"}})
    segments.recompute(data)
    assert [(c.kind, c.profile_id) for c in changes(ws, data__segment_id=data.pk)] == [("segment_entered", bob.pk)]


def test_an_inbound_message_is_recorded_with_the_person_it_created(tenant_a):
    ws = tenant_a.workspace
    config = ChannelConfigFactory(workspace=ws, type="sms", provider="twilio", sender="+15550000000")
    received = receive_message(config, from_address="+905551112233", provider_message_id="SM1", body="hello there",
                               to_address="+15550000000")
    receive_message(config, from_address="+905551112233", provider_message_id="SM1", body="hello there")  # retried
    person = received.profile
    rows = changes(ws)
    assert [(c.kind, c.profile_id) for c in rows] == [
        ("attributes", person.pk), ("inbound_message", person.pk), ("event", person.pk)]
    assert rows[0].data["created"] and rows[0].data["fields"]["phone"] == {"old": None, "new": "+905551112233"}
    assert rows[1].data == {"channel": "sms", "from": "+905551112233", "to": "+15550000000", "body": "hello there",
                            "media": [], "keyword": "", "message_id": "SM1",
                            "inbound_message_id": received.message.pk}
    assert rows[2].data["name"] == "sms_received"


@pytest.mark.parametrize("write", ["segment", "object", "inbound", "event"])
def test_changes_outside_ingest_roll_back_with_their_transaction(tenant_a, write):
    ws = tenant_a.workspace
    manual = segments.create_segment(workspace=ws, name="VIP", kind="manual", conditions=None)
    ProfileFactory(workspace=ws, external_id="ann")
    config = ChannelConfigFactory(workspace=ws, type="sms", provider="twilio", sender="+15550000000")
    object_type = ObjectType.unscoped.create(workspace=ws, type_id="1", name="Companies")
    writes = {
        "segment": lambda: segments.add_people(segment=manual, people=[{"id": "ann"}]),
        "object": lambda: __import__("profiles.services", fromlist=["x"]).replace_object_attributes(
            workspace=ws, object_type=object_type, object_id="acme", attributes={"a": 1}),
        "inbound": lambda: receive_message(config, from_address="+905551112299", provider_message_id="SM9",
                                           body="hi"),
        "event": lambda: __import__("profiles.services", fromlist=["x"]).record_events(ws, [event("ann")]),
    }
    with pytest.raises(RuntimeError), transaction.atomic():
        writes[write]()
        assert changes(ws)  # written, inside the transaction
        raise RuntimeError("rolled back")
    assert changes(ws) == []
    writes[write]()
    assert changes(ws)


def test_notes_outside_a_recording_block_are_written_at_once(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, attributes={"a": 1})
    before = feed.snapshot(person)
    person.attributes["a"] = 2
    person.save()
    feed.person_changed(person, before)
    assert [c.data["attributes"] for c in changes(tenant_a.workspace)] == [{"a": {"old": 1, "new": 2}}]


def test_admin_edits_and_deletions_of_objects_are_recorded(client, tenant_a):
    from django.urls import reverse

    from profiles.models import Relationship

    ws = tenant_a.workspace
    companies = ObjectType.unscoped.create(workspace=ws, type_id="1", name="Companies")
    acme = CustomObject.unscoped.create(workspace=ws, object_type=companies, object_id="acme",
                                        attributes={"tier": "gold"})
    ann = ProfileFactory(workspace=ws)
    Relationship.unscoped.create(workspace=ws, profile=ann, object=acme)
    client.force_login(tenant_a.owner)
    post = {"attributes": '{"tier": "silver"}', "relationships-TOTAL_FORMS": "0", "relationships-INITIAL_FORMS": "0"}
    response = client.post(reverse("admin:profiles_customobject_change", args=[acme.pk]), post)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert client.post(reverse("admin:profiles_customobject_delete", args=[acme.pk]), {"post": "yes"}).status_code == 302
    assert not CustomObject.unscoped.filter(pk=acme.pk).exists()
    assert [(c.kind, c.profile_id, c.data) for c in changes(ws)] == [
        ("object", None, {"object_type_id": "1", "object_id": "acme", "action": "updated",
                          "attributes": {"tier": {"old": "gold", "new": "silver"}}}),
        ("relationship", ann.pk, {"object_type_id": "1", "object_id": "acme", "action": "removed"}),
        ("object", None, {"object_type_id": "1", "object_id": "acme", "action": "deleted"}),
    ]


def test_a_global_unsubscribe_through_the_consent_ledger_is_recorded(tenant_a):
    from channels.consent import record_consent

    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    record_consent(tenant_a.workspace, person, subscribed=False, source="api")
    record_consent(tenant_a.workspace, person, subscribed=False, source="api")  # no change: no row
    rows = changes(tenant_a.workspace, kind=ChangeKind.ATTRIBUTES, profile_id=person.pk)
    assert [row.data["fields"] for row in rows] == [{"unsubscribed": {"old": False, "new": True}}]


def test_delivery_feedback_events_are_recorded_with_the_event(tenant_a):
    from channels.deliveries import queue_delivery
    from channels.feedback import record_delivery_event

    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", is_default=True)
    person = ProfileFactory(workspace=tenant_a.workspace, email="ada@example.test")
    delivery, _ = queue_delivery(tenant_a.workspace, channel="email", source="test", profile=person,
                                 content={"body": "x"})
    record_delivery_event(delivery, "opened")
    event_row = Event.unscoped.get(workspace=tenant_a.workspace, profile=person, name="email_opened")
    row, = changes(tenant_a.workspace, kind=ChangeKind.EVENT, profile_id=person.pk)
    assert (row.data["name"], row.data["event_id"], row.data["data"]["delivery_id"]) == (
        "email_opened", event_row.pk, delivery.public_id)
