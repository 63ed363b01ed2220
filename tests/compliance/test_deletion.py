"""Deleting a person: nothing of them is left in any table, they stay gone, and the job resumes."""

import base64
import json
import secrets
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from channels.consent import record_consent, suppress
from channels.deliveries import queue_delivery
from channels.feedback import record_delivery_event
from channels.models import (
    ConsentRecord, Delivery, DeliveryEvent, InboundMessage, ReportingWebhook, ReportingWebhookCall,
    SubscriptionPreference, SubscriptionTopic, Suppression,
)
from compliance import deletion
from compliance.deletion_tasks import run_deletion_task
from compliance.models import DeletionRecord, DeletionStatus
from profiles.models import SuppressedIdentifier, WorkspaceSecret
from core.models import AuditEntry
from core.context import Actor, acting_as, workspace_scope
from tests.support.factories import ChannelConfigFactory
from profiles.ingest.processor import process_pending
from profiles.models import Device, Event, InboundOperation, Profile, Relationship

P = "/api/v1/customers"


def unique(label: str) -> str:
    return f"{label}{secrets.token_hex(6)}"


@pytest.fixture
def person(tenant_a, track, process):
    """A person with unique identifiers and values in every table that can hold them."""
    s = {
        "id": unique("pid"), "email": f"{unique('mail')}@example.com",
        "phone": "+9055" + str(secrets.randbelow(10**8)).zfill(8),
        "attr": unique("attr"), "anon": unique("anon"), "anon_data": unique("anondata"), "event": unique("evt"),
        "token": unique("tok"), "device_attr": unique("devattr"), "rel": unique("rel"), "staged": unique("staged"),
        "admin_attr": unique("adminattr"),
    }
    track.post("/api/v1/events", {"name": "viewed", "anonymous_id": s["anon"], "data": {"v": s["anon_data"]}},
               format="json")
    process(tenant_a)
    track.put(f"{P}/{s['id']}", {
        "email": s["email"], "phone": s["phone"], "secret": s["attr"], "anonymous_id": s["anon"],
        "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "acme"},
                               "relationship_attributes": {"role": s["rel"]}}],
    }, format="json")
    track.post(f"{P}/{s['id']}/events", {"name": "purchase", "data": {"sku": s["event"]}}, format="json")
    track.put(f"{P}/{s['id']}/devices", {"device": {"id": s["token"], "platform": "ios", "model": s["device_attr"]}},
              format="json")
    process(tenant_a)
    profile = Profile.unscoped.get(workspace=tenant_a.workspace, external_id=s["id"])
    # A change in the console: audit entries (auditlog) and Django's own admin history.
    with workspace_scope(tenant_a.workspace), acting_as(Actor(source="admin", user=tenant_a.owner)):
        profile.attributes["note"] = s["admin_attr"]
        profile.save()
        for row in (profile, Device.unscoped.get(profile=profile)):
            request = RequestFactory().post("/admin/")
            request.user = tenant_a.owner
            admin.site._registry[type(row)].log_change(request, row, [{"changed": {"fields": ["attributes"]}}])
        relationship = Relationship.unscoped.get(profile=profile)
        relationship.attributes["since"] = s["admin_attr"]
        relationship.save()
    # Accepted but not applied yet.
    track.put(f"{P}/{s['id']}", {"later": s["staged"]}, format="json")
    s.update(add_messaging(tenant_a.workspace, profile, email=s["email"], phone=s["phone"], token=s["token"]))
    s["profile"] = profile
    return s


def add_messaging(workspace, profile, *, email, phone, token) -> dict:
    """Deliveries (rendered content with the email in it, events, reporting calls), inbound messages,
    consent, preferences and suppressions of the person, as the channels services make them.
    Returns the unique strings they hold."""
    s = {"subject": unique("subj"), "message_data": unique("mdata"), "click": unique("click"),
         "evidence": unique("evid"), "inbound": unique("inb"), "unlinked_inbound": unique("uinb"),
         "note": unique("note"), "unlinked_subject": unique("usubj")}
    ChannelConfigFactory(workspace=workspace, type="email", provider="smtp", is_default=True)
    sms = ChannelConfigFactory(workspace=workspace, type="sms", provider="twilio", is_default=True)
    ReportingWebhook.unscoped.create(workspace=workspace, name="metrics", url="https://hooks.example.test/m",
                                     secret_encrypted="x")
    delivery, _ = queue_delivery(workspace, channel="email", source="transactional", profile=profile,
                                 message_data={"trigger": {"code": s["message_data"]}})
    Delivery.unscoped.filter(pk=delivery.pk).update(
        subject=s["subject"], body=f"<p>Hello {email}</p>", body_plain=f"Hello {email}",
        rendered_payload={"to": email})
    delivery.refresh_from_db()
    record_delivery_event(delivery, "sent")
    record_delivery_event(delivery, "clicked", data={"href": f"https://shop.example.test/?c={s['click']}"})
    # A transactional message to the bare address, naming no person.
    bare, _ = queue_delivery(workspace, channel="email", source="transactional", recipient=email.upper())
    Delivery.unscoped.filter(pk=bare.pk).update(subject=s["unlinked_subject"])
    InboundMessage.unscoped.create(workspace=workspace, channel_config=sms, channel="sms", profile=profile,
                                   from_address=phone, to_address="+15550000000", body=s["inbound"],
                                   provider_message_id=unique("SM"))
    InboundMessage.unscoped.create(workspace=workspace, channel_config=sms, channel="sms", from_address=phone,
                                   body=s["unlinked_inbound"], provider_message_id=unique("SM"))
    topic = SubscriptionTopic.unscoped.create(workspace=workspace, key="news", name="News")
    record_consent(workspace, profile, subscribed=False, source="unsubscribe_link", topic=topic,
                   evidence={"user_agent": s["evidence"]})
    record_consent(workspace, profile, subscribed=True, source="api", channel="sms")
    suppress(workspace, channel="email", address=email, reason="complaint", profile=profile, note=s["note"])
    suppress(workspace, channel="sms", address=phone, reason="stop")
    suppress(workspace, channel="push", address=token, reason="invalid")
    return s


def database_dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        rows = []
        for table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            rows.extend(f"{table}: {row[0]}" for row in cursor.fetchall())
    return "\n".join(rows)


def leftovers(strings: dict) -> dict:
    dump = database_dump()
    return {name: value for name, value in strings.items() if isinstance(value, str) and value in dump}


def request(tenant, identifiers, **kwargs) -> DeletionRecord:
    kwargs.setdefault("source", "api")
    return deletion.request_deletion(workspace=tenant.workspace, identifiers=identifiers, reason="asked", **kwargs)


def test_a_deleted_person_leaves_nothing_in_any_table(tenant_a, person):
    strings = {k: v for k, v in person.items() if k != "profile"}
    assert leftovers(strings) == strings  # all of them are there before, so the dump can find them

    record = request(tenant_a, {"email": person["email"].upper()})
    record = deletion.run_deletion(record)

    assert record.status == DeletionStatus.COMPLETED and record.completed_at
    assert leftovers(strings) == {}
    assert record.counts["profiles.Profile"] == 1
    # its own event, the linked anonymous one, and email_sent / email_clicked of its delivery
    assert record.counts["profiles.Event"] == 4
    assert record.counts["profiles.InboundOperation"] == 1
    assert record.counts["profiles.Device"] == record.counts["profiles.Relationship"] == 1
    assert record.counts["core.AuditEntry (masked)"] >= 1
    assert record.counts["channels.Delivery"] == 2  # theirs, and the one to their bare address
    assert record.counts["channels.DeliveryEvent"] == 4  # queued, sent, clicked; queued
    assert record.counts["channels.ReportingWebhookCall"] == 2  # sent, clicked
    assert record.counts["channels.InboundMessage"] == 2
    assert record.counts["channels.ConsentRecord"] == 2
    assert record.counts["channels.SubscriptionPreference"] == 2
    assert record.counts["channels.Suppression"] == 3
    for model in (Delivery, DeliveryEvent, ReportingWebhookCall, InboundMessage, ConsentRecord,
                  SubscriptionPreference, Suppression):
        assert not model.unscoped.filter(workspace=tenant_a.workspace).exists(), model
    assert {s.kind for s in SuppressedIdentifier.unscoped.filter(deletion_id=record.pk)} == {"id", "email", "phone"}
    assert record.progress == {name: True for name, _ in deletion.STEPS}
    # The audit trail still shows that something was changed, by whom, and that it was masked.
    with workspace_scope(tenant_a.workspace):
        entry = AuditEntry.scoped.get(content_type=ContentType.objects.get_for_model(Profile),
                                      object_pk=str(person["profile"].pk), action=AuditEntry.Action.UPDATE)
    assert entry.actor_id == tenant_a.owner.pk and set(entry.changes.values()) == {"[masked]"}
    actions = [e.changes["action"] for e in AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(DeletionRecord), object_pk=str(record.pk), action=3,
    ).order_by("timestamp")]
    assert actions == ["deletion_requested", "deletion_completed"]


def test_anonymous_events_of_the_person_that_were_never_attached_are_deleted(tenant_a, track, process):
    old = (timezone.now() - timedelta(days=90)).isoformat()
    anon, data = unique("anon"), unique("data")
    track.post("/api/v1/events", {"name": "old", "anonymous_id": anon, "timestamp": old, "data": {"d": data}},
               format="json")
    track.put(f"{P}/u1", {"anonymous_id": anon}, format="json")
    process(tenant_a)
    assert Event.unscoped.get(anonymous_id=anon).profile_id is None  # beyond the merge window
    deletion.run_deletion(request(tenant_a, {"id": "u1"}))
    assert leftovers({"anon": anon, "data": data}) == {}


def test_resending_stores_nothing_and_lifting_allows_it_again(tenant_a, track, process, person):
    deletion.run_deletion(request(tenant_a, {"id": person["id"]}))

    assert track.put(f"{P}/{person['id']}", {"plan": "pro"}, format="json").status_code == 200
    assert track.post(f"{P}/{person['id']}/events", {"name": "again"}, format="json").status_code == 200
    track.put(f"{P}/other", {"email": person["email"], "x": 1}, format="json")  # carries a suppressed email
    track.post("/api/v2/entity", {"type": "person", "action": "identify", "identifiers": {"email": person["email"]}},
               format="json")
    process(tenant_a)

    assert not Profile.unscoped.filter(workspace=tenant_a.workspace).exists()
    assert not Event.unscoped.filter(workspace=tenant_a.workspace).exists()
    dropped = dict(SuppressedIdentifier.unscoped.values_list("kind", "dropped"))
    assert dropped == {"id": 2, "email": 2, "phone": 0}

    id_suppression = SuppressedIdentifier.unscoped.get(kind="id")
    deletion.lift_suppression(suppression=id_suppression, user=tenant_a.owner)
    id_suppression.refresh_from_db()
    assert id_suppression.lifted_at and id_suppression.lifted_by == tenant_a.owner
    track.put(f"{P}/{person['id']}", {"plan": "back"}, format="json")
    process(tenant_a)
    assert Profile.unscoped.get(workspace=tenant_a.workspace).attributes == {"plan": "back"}
    # A later deletion may suppress the id again: only active suppressions are unique.
    deletion.run_deletion(request(tenant_a, {"id": person["id"]}))
    assert SuppressedIdentifier.unscoped.filter(kind="id").count() == 2


def test_suppression_is_per_workspace(tenant_a, tenant_b, track, track_b, process):
    request(tenant_a, {"id": "same"})
    track_b.put(f"{P}/same", {"plan": "b"}, format="json")
    track.put(f"{P}/same", {"plan": "a"}, format="json")
    process(tenant_a, tenant_b)
    assert Profile.unscoped.get(external_id="same").workspace == tenant_b.workspace
    # Each workspace hashes with its own secret.
    request(tenant_b, {"id": "same"})
    hashes = set(SuppressedIdentifier.unscoped.values_list("hash", flat=True))
    assert len(hashes) == 2 and WorkspaceSecret.unscoped.count() == 2


def test_operations_after_a_delete_in_the_same_batch_are_dropped(tenant_a, track, process):
    track.post("/api/v2/batch", {"batch": [
        {"type": "person", "action": "identify", "identifiers": {"id": "u9"}, "attributes": {"a": 1}},
        {"type": "person", "action": "delete", "identifiers": {"id": "u9"}},
        {"type": "person", "action": "identify", "identifiers": {"id": "u9"}, "attributes": {"a": 2}},
    ]}, format="json")
    process(tenant_a)
    record = DeletionRecord.unscoped.get()
    deletion.run_deletion(record)
    assert not Profile.unscoped.exists()
    assert SuppressedIdentifier.unscoped.get().dropped == 1


def test_an_interrupted_deletion_resumes_and_completes(tenant_a, person):
    record = request(tenant_a, {"id": person["id"]})

    def crash(record):
        raise RuntimeError("worker lost")

    broken = [(name, crash if name == "devices" else step) for name, step in deletion.STEPS]
    with pytest.raises(RuntimeError):
        deletion.run_deletion(record, steps=broken)
    record.refresh_from_db()
    assert record.status == DeletionStatus.FAILED
    assert set(k for k, v in record.progress.items() if v is True) == {
        "people_imports", "inbound", "ingest_dead_letters", "events", "journeys", "deliveries", "inbound_messages", "consent",
        "subscription_preferences", "suppressions", "change_feed", "relationships"}
    assert not Event.unscoped.filter(profile=person["profile"]).exists()
    assert Device.unscoped.filter(profile=person["profile"]).exists()

    record = deletion.run_deletion(record)
    assert record.status == DeletionStatus.COMPLETED
    assert record.counts["profiles.Event"] == 4 and record.counts["profiles.Device"] == 1  # each counted once
    assert leftovers({k: v for k, v in person.items() if k != "profile"}) == {}
    assert deletion.run_deletion(record).counts == record.counts  # a repeat changes nothing


def test_a_request_for_nobody_still_suppresses_and_completes(tenant_a, track, process):
    record = deletion.run_deletion(request(tenant_a, {"email": "ghost@example.com"}))
    assert record.status == DeletionStatus.COMPLETED and record.counts == {} and record.profile_id is None
    track.put(f"{P}/x", {"email": "GHOST@example.com"}, format="json")
    process(tenant_a)
    assert not Profile.unscoped.exists()


@pytest.mark.parametrize("how", ["v1", "v2"])
def test_track_delete_becomes_a_deletion_request(tenant_a, track, person, how):
    if how == "v1":
        assert track.delete(f"{P}/{person['id']}", {}, format="json").status_code == 200
    else:
        body = {"type": "person", "action": "delete", "identifiers": {"email": person["email"]}}
        assert track.post("/api/v2/entity", body, format="json").status_code == 200
    process_pending(tenant_a.workspace)  # the ingest worker only; the deletion job runs below
    record = DeletionRecord.unscoped.get()
    assert (record.source, record.status, record.profile_id) == ("track", "pending", person["profile"].pk)
    assert not InboundOperation.unscoped.exists()  # the staged identify went with the deletion's suppression

    run_deletion_task.apply(kwargs={"workspace_id": tenant_a.workspace.pk, "request_id": record.pk})
    record.refresh_from_db()
    assert record.status == DeletionStatus.COMPLETED
    assert leftovers({k: v for k, v in person.items() if k != "profile"}) == {}


def test_the_task_message_holds_no_identifier(tenant_a, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        record = request(tenant_a, {"email": "someone@example.com"})
    [message] = broker.lrange("compliance", 0, -1)
    envelope = json.loads(message)
    body = json.loads(base64.b64decode(envelope["body"]))
    assert body[1] == {"workspace_id": tenant_a.workspace.pk, "request_id": record.pk}
    assert b"someone" not in message


def test_stuck_deletions_are_enqueued_again(tenant_a, broker):
    stuck, fresh = request(tenant_a, {"id": "a"}), request(tenant_a, {"id": "b"})
    done = deletion.run_deletion(request(tenant_a, {"id": "c"}))
    DeletionRecord.unscoped.filter(pk__in=[stuck.pk, done.pk]).update(updated_at=timezone.now() - timedelta(hours=1))
    assert deletion.resume_incomplete_deletions() == 1
    [message] = broker.lrange("compliance", 0, -1)
    assert json.loads(base64.b64decode(json.loads(message)["body"]))[1]["request_id"] == stuck.pk
    assert fresh.pk != stuck.pk


def test_every_model_holding_personal_data_has_a_deletion_step():
    from profiles.models import Profile

    step_names = {name for name, _ in deletion.STEPS}
    points_at_person = {
        m._meta.label for m in apps.get_models()
        if any(getattr(f, "related_model", None) is Profile and f.many_to_one for f in m._meta.get_fields())
    }
    declaring = {
        m._meta.label for m in apps.get_models() if getattr(m, "personal_data_fields", None)
    } - set(deletion.NOT_SUBJECT_DATA) | points_at_person
    missing = declaring - set(deletion.STEP_FOR_MODEL)
    assert missing == set(), f"add a deletion step for {sorted(missing)} to compliance/deletion.py"
    assert set(deletion.STEP_FOR_MODEL.values()) <= step_names
    assert declaring >= {"profiles.Profile", "profiles.Event", "profiles.InboundOperation"}


def test_deletion_lowers_the_member_count_of_current_segments(tenant_a):
    from django.utils import timezone

    from compliance.deletion import request_deletion, run_deletion
    from tests.support.factories import ProfileFactory
    from profiles.models import Segment, SegmentMembership

    person, other = ProfileFactory(workspace=tenant_a.workspace), ProfileFactory(workspace=tenant_a.workspace)
    vip = Segment.unscoped.create(workspace=tenant_a.workspace, name="VIP", kind="manual", member_count=2)
    for someone in (person, other):
        SegmentMembership.unscoped.create(workspace=tenant_a.workspace, segment=vip, profile=someone,
                                          entered_at=timezone.now())
    run_deletion(request_deletion(workspace=tenant_a.workspace, identifiers={"cio_id": person.cio_id},
                                  source="api"))
    vip.refresh_from_db()
    assert vip.member_count == 1
    assert list(SegmentMembership.unscoped.values_list("profile_id", flat=True)) == [other.pk]


def test_the_change_feed_of_a_deleted_person_goes_with_them(tenant_a, track, process):
    """Their rows, rows of people merged into them, and rows of anonymous events of their anonymous
    ids; not other people's."""
    from profiles.models import Change

    s = {"anon": unique("anon"), "anon_data": unique("anondata"), "plan": unique("plan"),
         "merged": unique("merged"), "merged_email": f"{unique('m')}@example.com"}
    other = unique("other")
    track.post("/api/v1/events", {"name": "viewed", "anonymous_id": s["anon"], "data": {"v": s["anon_data"]}},
               format="json")
    track.put(f"{P}/secondary", {"email": s["merged_email"], "merged": s["merged"]}, format="json")
    track.put(f"{P}/someone-else", {"plan": other}, format="json")
    process(tenant_a)
    track.put(f"{P}/main", {"anonymous_id": s["anon"], "plan": s["plan"]}, format="json")
    track.post("/api/v1/merge_customers", {"primary": {"id": "main"}, "secondary": {"id": "secondary"}},
               format="json")
    process(tenant_a)
    main = Profile.unscoped.get(workspace=tenant_a.workspace, external_id="main")
    someone = Profile.unscoped.get(workspace=tenant_a.workspace, external_id="someone-else")
    feed_dump = "\n".join(str(row) for row in Change.unscoped.values_list("anonymous_id", "data"))
    assert all(value in feed_dump for value in s.values()) and other in feed_dump

    record = deletion.run_deletion(request(tenant_a, {"id": "main"}))
    assert leftovers(s) == {}
    assert record.counts["profiles.Change"] == 4  # anonymous event, secondary created, main created, merge
    assert Change.unscoped.filter(profile_id=someone.pk).exists() and other in database_dump()
    assert not Change.unscoped.filter(profile_id=main.pk).exists()
