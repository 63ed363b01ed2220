"""Data subject export (DSAR): everything Ulak holds about one person, as one JSON document.

The document is streamed: the person, identities, devices and relationships are small and built
up front; events are read with a server-side cursor in timestamp order and written out in
batches, so a person with millions of events never sits in memory. Streaming is this issue's
answer to "large exports are streamed or produced in the background": the bundle is produced
while it is downloaded, so there is no stored file to expire or to delete later.

Deliveries (with their events), inbound messages and demo-inbox copies of the deliveries are
streamed the same way, after the events.
Ingest operations naming the person that the processor could not apply (dead letters, found as the
deletion finds them) are listed as `ingest_dead_letters`; the person's journeys (campaign runs) with
their step log as `journeys`.
Times are ISO 8601 with microseconds, the stored values as they are (the App API's Unix seconds
would truncate them). Parts whose features do not exist yet are present, empty and listed in
`not_yet_collected`; they are filled in as those features land.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Journey, JourneyStep
from channels.models import (
    ConsentRecord, Delivery, DeliveryEvent, DemoMessage, InboundMessage, SubscriptionPreference,
)
from core.audit import record_action
from compliance.deletion import Subject, operations_naming, person_addresses, suppressions_of, unlinked_deliveries_q
from compliance.subjects import clean_identifiers, people_named
from core.context import workspace_scope
from core.errors import InvalidInput
from profiles.models import Device, Event, Identity, IngestDeadLetter, Profile, Relationship, SegmentMembership

EXPORT_ACTION = "personal_data_export"
NOT_YET_COLLECTED: tuple[str, ...] = ()
EVENT_CHUNK = 2000  # rows per database round trip
EVENTS_PER_WRITE = 500  # events per yielded piece of the document
DELIVERIES_PER_WRITE = 200  # deliveries per yielded piece, and per query for their events


class PersonNotFound(Exception):
    """No person of the workspace has the identifier."""


@dataclass(frozen=True)
class PersonExport:
    person: Profile
    event_count: int
    chunks: Iterator[bytes]

    @property
    def filename(self) -> str:
        return f"ulak-export-{self.person.cio_id}.json"


def find_subject(*, workspace, identifiers) -> Profile:
    id_type, value = clean_identifiers(identifiers)
    matches = list(people_named(workspace, id_type, value)[:2])
    if not matches:
        raise PersonNotFound("No person has this identifier.")
    if len(matches) > 1:  # phone numbers are not unique; one bundle must hold one person
        raise InvalidInput(f"identifiers.{id_type}", "matches several people; name the person by id, email or cio_id")
    return matches[0]


def export_person(*, workspace, identifiers) -> Iterator[bytes]:
    """The bundle of the person `identifiers` names, as JSON in pieces.

    The person is looked up now (InvalidInput, PersonNotFound); the document is produced as the
    iterator is consumed, which needs no workspace in scope.
    """
    return bundle_chunks(workspace=workspace, person=find_subject(workspace=workspace, identifiers=identifiers))


def open_export(*, workspace, identifiers) -> PersonExport:
    """Find the person, record the export in the audit log, and hand back the bundle to stream."""
    person = find_subject(workspace=workspace, identifiers=identifiers)
    with workspace_scope(workspace):
        event_count = person_events(workspace, person).count()
    record_action(target=person, action=EXPORT_ACTION, workspace=workspace, details={"events": event_count})
    chunks = bundle_chunks(workspace=workspace, person=person)
    return PersonExport(person=person, event_count=event_count, chunks=chunks)


def person_events(workspace, person: Profile):
    """The person's events, and those of their anonymous ids that were never merged into them
    (older than the merge window when the id was linked): both are data about the person.

    A UNION ALL rather than an OR, so that each half is served by its own index
    (event_ws_profile_time, event_ws_anonymous) instead of a walk over the workspace's events.
    """
    own = Event.objects.filter(workspace=workspace, profile=person)
    anonymous_ids = list(Identity.objects.filter(workspace=workspace, profile=person)
                         .values_list("anonymous_id", flat=True))
    if not anonymous_ids:
        return own
    unmerged = Event.objects.filter(workspace=workspace, profile__isnull=True, anonymous_id__in=anonymous_ids)
    return own.union(unmerged, all=True)


def person_deliveries(workspace, person: Profile, addresses: dict):
    """The person's deliveries, and those to their email or phone that name nobody (a message to a
    bare address): the same ones the deletion removes. A UNION ALL, each half on delivery_ws_profile.
    `addresses` as `compliance.deletion.person_addresses` gives them."""
    own = Delivery.objects.for_workspace(workspace).filter(profile=person)
    unlinked = unlinked_deliveries_q(addresses)
    if unlinked is None:
        return own
    return own.union(Delivery.objects.for_workspace(workspace).filter(Q(profile__isnull=True) & unlinked), all=True)


def person_inbound_messages(workspace, person: Profile, addresses: dict):
    """Messages the person sent, and those from their phone number matched to nobody."""
    own = InboundMessage.objects.for_workspace(workspace).filter(profile=person)
    if not addresses["phone"]:
        return own
    return own.union(InboundMessage.objects.for_workspace(workspace).filter(profile__isnull=True,
                                                    from_address__in=addresses["phone"]), all=True)


def person_dead_letters(workspace, person: Profile) -> list[dict]:
    """Ingest operations naming the person that were kept as dead letters (any state): the ones
    the deletion's `ingest_dead_letters` step removes."""
    match = operations_naming(Subject(workspace.pk, person.pk))
    if match is None:
        return []
    rows = IngestDeadLetter.objects.for_workspace(workspace).filter(match).order_by("created_at", "pk")
    return [_dead_letter(row) for row in rows]


def person_journeys(workspace, person: Profile) -> list[dict]:
    """The person's campaign runs, oldest first, each with its step log (two queries)."""
    runs = list(Journey.objects.for_workspace(workspace).filter(profile=person).select_related("campaign")
                .order_by("entered_at", "pk"))
    steps: dict[int, list] = {run.pk: [] for run in runs}
    for step in JourneyStep.objects.for_workspace(workspace).filter(journey_id__in=steps).select_related(
            "delivery").order_by("journey_id", "seq"):
        steps[step.journey_id].append(_journey_step(step))
    return [_journey(run, steps[run.pk]) for run in runs]


def bundle_chunks(*, workspace, person: Profile) -> Iterator[bytes]:
    # Querysets are built (and the small parts read) while the workspace is in scope: the
    # returned generator runs later, when a streaming response is consumed.
    with workspace_scope(workspace):
        head = {
            "generated_at": timezone.now(),
            "workspace": {"id": workspace.pk, "name": workspace.name},
            "person": _person(person),
            "identities": [_identity(row) for row in
                           Identity.objects.filter(workspace=workspace, profile=person).order_by("pk")],
            "devices": [_device(row) for row in
                        Device.objects.filter(workspace=workspace, profile=person).order_by("pk")],
            "relationships": [_relationship(row) for row in
                              Relationship.objects.filter(workspace=workspace, profile=person)
                              .select_related("object__object_type").order_by("pk")],
        }
        events = person_events(workspace, person).order_by("timestamp", "pk")
        memberships = [
            {"segment_id": m.segment_id, "segment": m.segment.name, "entered_at": m.entered_at,
             "exited_at": m.exited_at}
            for m in SegmentMembership.objects.filter(workspace=workspace, profile=person)
            .select_related("segment").order_by("entered_at", "pk")
        ]
    addresses = person_addresses(workspace.pk, person.pk)
    consent = [_consent(row) for row in ConsentRecord.objects.for_workspace(workspace).filter(profile=person)
               .order_by("created_at", "pk")]
    preferences = [_preference(row) for row in SubscriptionPreference.objects.for_workspace(workspace).filter(
        profile=person).select_related("topic").order_by("channel", "topic__key", "pk")]
    suppressions = [_suppression(row) for row in
                    suppressions_of(workspace.pk, person.pk, addresses).order_by("created_at", "pk")]
    dead_letters = person_dead_letters(workspace, person)
    journeys = person_journeys(workspace, person)
    deliveries = person_deliveries(workspace, person, addresses).order_by("created_at", "pk")
    inbound = person_inbound_messages(workspace, person, addresses).order_by("received_at", "pk")
    # What demo-provider configurations stored of those deliveries instead of sending them.
    demo = (DemoMessage.objects.for_workspace(workspace).select_related("delivery").order_by("pk")
            .filter(delivery_id__in=person_deliveries(workspace, person, addresses).values("pk")))
    streamed = (
        ("events", _rows(events.iterator(chunk_size=EVENT_CHUNK), _event, EVENTS_PER_WRITE)),
        ("deliveries", _deliveries(workspace, deliveries)),
        ("inbound_messages", _rows(inbound.iterator(chunk_size=EVENT_CHUNK), _inbound, EVENTS_PER_WRITE)),
        ("demo_messages", _rows(demo.iterator(chunk_size=EVENT_CHUNK), _demo_message, EVENTS_PER_WRITE)),
    )
    tail = {"segment_memberships": memberships, "consent": consent, "subscription_preferences": preferences,
            "suppressions": suppressions, "ingest_dead_letters": dead_letters, "journeys": journeys} | {
        name: [] for name in NOT_YET_COLLECTED} | {
        "not_yet_collected": list(NOT_YET_COLLECTED)}
    return _document(head, streamed, tail)


def _rows(rows, serialize, per_write) -> Iterator[list[str]]:
    """Serialized rows, `per_write` at a time."""
    batch: list[str] = []
    for row in rows:
        batch.append(_dumps(serialize(row)))
        if len(batch) == per_write:
            yield batch
            batch = []
    if batch:
        yield batch


def _deliveries(workspace, deliveries) -> Iterator[list[str]]:
    """Deliveries with their events: one query for the events of each batch of deliveries."""
    batch: list[Delivery] = []

    def written():
        events: dict[int, list] = {}
        for event in DeliveryEvent.objects.for_workspace(workspace).filter(delivery_id__in=[d.pk for d in batch]) \
                .order_by("at", "pk"):
            events.setdefault(event.delivery_id, []).append(_delivery_event(event))
        return [_dumps(_delivery(d, events.get(d.pk, []))) for d in batch]

    for delivery in deliveries.iterator(chunk_size=EVENT_CHUNK):
        batch.append(delivery)
        if len(batch) == DELIVERIES_PER_WRITE:
            yield written()
            batch = []
    if batch:
        yield written()


def _document(head: dict, streamed, tail: dict) -> Iterator[bytes]:
    opening = _dumps(head)[:-1] + ", "
    for key, batches in streamed:
        yield (opening + f"{_dumps(key)}: [").encode()
        first = True
        for batch in batches:
            yield (("" if first else ",") + ",".join(batch)).encode()
            first = False
        opening = "], "
    yield (opening + _dumps(tail)[1:]).encode()


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime):
            return o.isoformat()  # DjangoJSONEncoder would cut microseconds to milliseconds
        return super().default(o)


def _dumps(value) -> str:
    return json.dumps(value, cls=_Encoder, ensure_ascii=False)


def _person(person: Profile) -> dict:
    return {
        "id": person.external_id, "cio_id": person.cio_id, "email": person.email, "phone": person.phone,
        "attributes": person.attributes, "time_zone": person.time_zone, "unsubscribed": person.unsubscribed,
        "suppressed": person.suppressed, "created_at": person.created_at, "updated_at": person.updated_at,
    }


def _identity(identity: Identity) -> dict:
    return {"anonymous_id": identity.anonymous_id, "created_at": identity.created_at}


def _device(device: Device) -> dict:
    return {"id": device.token, "platform": device.platform, "attributes": device.attributes,
            "last_used": device.last_used, "created_at": device.created_at}


def _relationship(relationship: Relationship) -> dict:
    obj = relationship.object
    return {"object_type_id": obj.object_type.type_id, "object_id": obj.object_id,
            "relationship_attributes": relationship.attributes, "object_attributes": obj.attributes,
            "created_at": relationship.created_at, "updated_at": relationship.updated_at}


def _event(event: Event) -> dict:
    return {"id": str(event.pk), "type": event.type, "name": event.name, "timestamp": event.timestamp,
            "data": event.data, "anonymous_id": event.anonymous_id, "dedupe_id": event.dedupe_id,
            "received_at": event.received_at}


def _delivery(delivery: Delivery, events: list) -> dict:
    return {
        "id": delivery.public_id, "channel": delivery.channel, "source": delivery.source,
        "source_id": delivery.source_id, "transactional_message_id": delivery.transactional_message_id,
        "status": delivery.status, "recipient": delivery.recipient, "subject": delivery.subject,
        "body": delivery.body, "body_plain": delivery.body_plain, "payload": delivery.rendered_payload,
        "content": delivery.content, "message_data": delivery.message_data,
        "content_purged_at": delivery.content_purged_at, "failure_reason": delivery.failure_reason,
        "created_at": delivery.created_at, "send_at": delivery.send_at, "sent_at": delivery.sent_at,
        "delivered_at": delivery.delivered_at, "opened_at": delivery.opened_at, "clicked_at": delivery.clicked_at,
        "converted_at": delivery.converted_at, "failed_at": delivery.failed_at, "events": events,
    }


def _demo_message(row: DemoMessage) -> dict:
    return {"delivery_id": row.delivery.public_id, "channel": row.channel, "recipient": row.recipient,
            "sender": row.sender, "reply_to": row.reply_to, "subject": row.subject, "body": row.body,
            "body_plain": row.body_plain, "headers": row.headers, "payload": row.payload, "created_at": row.created_at}


def _delivery_event(event: DeliveryEvent) -> dict:
    return {"kind": event.kind, "at": event.at, "data": event.data}


def _inbound(message: InboundMessage) -> dict:
    return {"channel": message.channel, "from": message.from_address, "to": message.to_address,
            "body": message.body, "media": message.media, "keyword": message.keyword,
            "received_at": message.received_at}


def _consent(record: ConsentRecord) -> dict:
    return {"channel": record.channel, "topic": record.topic_key, "action": record.action, "source": record.source,
            "evidence": record.evidence, "created_at": record.created_at}


def _preference(preference: SubscriptionPreference) -> dict:
    return {"channel": preference.channel, "topic": preference.topic.key if preference.topic else None,
            "subscribed": preference.subscribed, "source": preference.source, "updated_at": preference.updated_at}


def _suppression(suppression) -> dict:
    return {"channel": suppression.channel, "address": suppression.address, "reason": suppression.reason,
            "note": suppression.note, "created_at": suppression.created_at}


def _journey(run: Journey, steps: list) -> dict:
    return {"id": run.pk, "campaign": {"id": run.campaign_id, "name": run.campaign.name}, "key": run.key,
            "state": run.state, "exit_reason": run.exit_reason, "step": run.step, "trigger_data": run.trigger_data,
            "data": {k: v for k, v in run.data.items() if not k.startswith("_")}, "entered_at": run.entered_at,
            "ended_at": run.ended_at, "converted_at": run.converted_at, "steps": steps}


def _journey_step(step: JourneyStep) -> dict:
    return {"seq": step.seq, "step": step.step, "type": step.type, "outcome": step.outcome, "detail": step.detail,
            "delivery_id": step.delivery.public_id if step.delivery else None, "at": step.created_at}


def _dead_letter(letter: IngestDeadLetter) -> dict:
    return {"kind": letter.kind, "source": letter.source, "payload": letter.payload,
            "received_at": letter.received_at, "state": letter.state, "attempts": letter.attempts,
            "error": {"type": letter.error_type, "message": letter.error_message},
            "created_at": letter.created_at, "failed_at": letter.failed_at, "replayed_at": letter.replayed_at,
            "discarded_at": letter.discarded_at}
