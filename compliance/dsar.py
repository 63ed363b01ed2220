"""Data subject export (DSAR): everything Ulak holds about one person, as one JSON document.

The document is streamed: the person, identities, devices and relationships are small and built
up front; events are read with a server-side cursor in timestamp order and written out in
batches, so a person with millions of events never sits in memory. Streaming is this issue's
answer to "large exports are streamed or produced in the background": the bundle is produced
while it is downloaded, so there is no stored file to expire or to delete later.

Times are ISO 8601 with microseconds, the stored values as they are (the App API's Unix seconds
would truncate them). Parts whose features do not exist yet are present, empty and listed in
`not_yet_collected`; they are filled in as those features land.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from compliance.audit import record_action
from compliance.subjects import clean_identifiers, people_named
from core.context import workspace_scope
from profiles.ingest.errors import InvalidInput
from profiles.models import Device, Event, Identity, Profile, Relationship, SegmentMembership

EXPORT_ACTION = "personal_data_export"
NOT_YET_COLLECTED = ("journeys", "deliveries", "consent", "inbound_messages")
EVENT_CHUNK = 2000  # rows per database round trip
EVENTS_PER_WRITE = 500  # events per yielded piece of the document


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
    tail = {"segment_memberships": memberships} | {name: [] for name in NOT_YET_COLLECTED} | {
        "not_yet_collected": list(NOT_YET_COLLECTED)}
    return _document(head, events, tail)


def _document(head: dict, events, tail: dict) -> Iterator[bytes]:
    yield (_dumps(head)[:-1] + ', "events": [').encode()
    batch: list[str] = []
    first = True
    for event in events.iterator(chunk_size=EVENT_CHUNK):
        batch.append(_dumps(_event(event)))
        if len(batch) == EVENTS_PER_WRITE:
            yield (("" if first else ",") + ",".join(batch)).encode()
            batch, first = [], False
    if batch:
        yield (("" if first else ",") + ",".join(batch)).encode()
    yield ("], " + _dumps(tail)[1:]).encode()


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
