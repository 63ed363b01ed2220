"""Writes for people, events, devices, objects and relationships.

Called by the ingest processor (one workspace in scope, inside its transaction) and by the App
API and admin. Attribute writes are ordered by timestamp per attribute, so operations applied out
of arrival order still leave the newest value in place.
"""

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from profiles.changefeed import recording as feed
from profiles.models import CustomObject, Device, Event, EventType, Identity, ObjectType, Profile, Relationship
from profiles.ingest.operations import MAX_ATTRIBUTES

logger = logging.getLogger(__name__)

COLUMN_FIELDS = ("email", "phone", "unsubscribed")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --- resolving people ----------------------------------------------------------------------------

def find_person(workspace, ref: dict) -> Profile | None:
    key, value = next(iter(ref.items()))
    people = Profile.objects.for_workspace(workspace)
    if key == "id":
        return people.filter(external_id=value).first()
    if key == "email":
        return people.filter(email=value).first()
    if key == "cio_id":
        return people.filter(cio_id=value).first()
    identity = Identity.objects.for_workspace(workspace).filter(anonymous_id=value).select_related("profile").first()
    return identity.profile if identity else None


def get_or_create_person(workspace, ref: dict, *, create: bool = True) -> Profile | None:
    """The person `ref` names, created when missing (never for a cio_id, which Ulak assigns)."""
    person = find_person(workspace, ref)
    if person is not None or not create or "cio_id" in ref:
        return person
    key, value = next(iter(ref.items()))
    try:
        with transaction.atomic():
            if key == "anonymous_id":
                person = Profile.objects.for_workspace(workspace).create()
                Identity.objects.for_workspace(workspace).create(profile=person, anonymous_id=value)
            elif key == "email":
                person = Profile.objects.for_workspace(workspace).create(email=value)
            else:
                person = Profile.objects.for_workspace(workspace).create(external_id=value)
    except IntegrityError:  # created concurrently (e.g. from the App API)
        return find_person(workspace, ref)
    feed.person_changed(person, None)
    return person


# --- attributes ---------------------------------------------------------------------------------

def merge_attributes(current: dict, stamps: dict, incoming: dict, ts: float) -> bool:
    """Apply `incoming` where it is at least as new as what is stored. "" or null removes."""
    changed = False
    for name, value in incoming.items():
        if stamps.get(name, float("-inf")) > ts:
            continue
        stamps[name] = ts
        if value is None or value == "":
            changed |= current.pop(name, None) is not None
        elif name in current or len(current) < MAX_ATTRIBUTES:
            changed |= current.get(name) != value
            current[name] = value
        else:
            logger.warning("attribute limit reached; attribute dropped", extra={"attribute": name})
    return changed


def identify(workspace, op: dict) -> Profile | None:
    ts, ref = op["ts"], op["person"]
    person = find_person(workspace, ref)
    fields = set()
    if person is None:
        if op.get("update_only") or "cio_id" in ref:
            return None
        # Identify by id with an email that an id-less person already has: that person gets the id.
        if "id" in ref and op.get("email"):
            person = Profile.objects.for_workspace(workspace).filter(
                email=op["email"], external_id__isnull=True).first()
            if person is not None:
                before = feed.snapshot(person)
                person.external_id = ref["id"]
                fields.add("external_id")
        if person is None:
            person = get_or_create_person(workspace, ref)
    if not fields:
        before = feed.snapshot(person)
    if op.get("set_id") and not person.external_id and not Profile.objects.for_workspace(workspace).filter(
        external_id=op["set_id"]
    ).exists():
        person.external_id = op["set_id"]
        fields.add("external_id")
    fields |= _apply_columns(workspace, person, op, ts)
    if op.get("attributes"):
        merge_attributes(person.attributes, person.attribute_timestamps, op["attributes"], ts)
        fields |= {"attributes", "attribute_timestamps"}
    if fields:
        person.save(update_fields=sorted(fields | {"updated_at"}))
        feed.person_changed(person, before)
    if op.get("anonymous_id"):
        link_anonymous_id(workspace, person, op["anonymous_id"])
    if op.get("relationships"):
        relationships = op["relationships"]
        relate_person(workspace, person, relationships["objects"], remove=relationships["action"] == "delete")
    return person


def _apply_columns(workspace, person: Profile, op: dict, ts: float, *, email_taken=None) -> set[str]:
    """email, phone and unsubscribed live in columns but are ordered like attributes.

    `email_taken(email, person)` answers whether someone else has the email (default: a query; the
    set-based identify path answers from the people it loaded, profiles/ingest/identify_batch.py)."""
    email_taken = email_taken or (lambda email, person: _email_taken(workspace, email, person))
    fields = set()
    for column in COLUMN_FIELDS:
        stamp = f"_{column}"
        if column not in op or person.attribute_timestamps.get(stamp, float("-inf")) > ts:
            continue
        value = op[column]
        if column == "email" and value and email_taken(value, person):
            logger.warning("email already belongs to another person; not changed")
            continue
        person.attribute_timestamps[stamp] = ts
        fields.add("attribute_timestamps")
        if getattr(person, column) != value:
            setattr(person, column, value)
            fields.add(column)
    return fields


def _email_taken(workspace, email: str, person: Profile) -> bool:
    return Profile.objects.for_workspace(workspace).filter(email=email).exclude(pk=person.pk).exists()


# --- anonymous ids and merging --------------------------------------------------------------------

def link_anonymous_id(workspace, person: Profile, anonymous_id: str) -> None:
    """Tie an anonymous id to `person`, absorbing an anonymous profile and its recent events."""
    identity = Identity.objects.for_workspace(workspace).filter(
        anonymous_id=anonymous_id).select_related("profile").first()
    if identity is not None and identity.profile_id != person.pk:
        other = identity.profile
        if other.external_id or other.email:
            return  # the anonymous id already belongs to a known person
        merge_people(workspace, primary=person, secondary=other)
    elif identity is None:
        Identity.objects.for_workspace(workspace).create(profile=person, anonymous_id=anonymous_id)
    since = datetime.now(UTC) - timedelta(days=settings.ULAK_ANONYMOUS_MERGE_DAYS)
    Event.objects.for_workspace(workspace).filter(anonymous_id=anonymous_id, profile__isnull=True, timestamp__gte=since
    ).update(profile=person)


def merge_people(workspace, *, primary: Profile, secondary: Profile) -> Profile:
    """Fold `secondary` into `primary`: events, identities, devices, relationships, attributes."""
    if primary.pk == secondary.pk:
        return primary
    before, secondary_id = feed.snapshot(primary), secondary.pk
    Event.objects.for_workspace(workspace).filter(profile=secondary).update(profile=primary)
    Identity.objects.for_workspace(workspace).filter(profile=secondary).update(profile=primary)
    Device.objects.for_workspace(workspace).filter(profile=secondary).update(profile=primary)
    taken = Relationship.objects.for_workspace(workspace).filter(profile=primary).values("object_id")
    Relationship.objects.for_workspace(workspace).filter(profile=secondary).exclude(object_id__in=taken).update(
        profile=primary
    )
    for name, value in secondary.attributes.items():
        if name not in primary.attributes and len(primary.attributes) < MAX_ATTRIBUTES:
            primary.attributes[name] = value
            primary.attribute_timestamps[name] = secondary.attribute_timestamps.get(name, 0)
    email, phone = secondary.email, secondary.phone
    secondary.delete()  # frees the secondary's unique email before the primary takes it
    if not primary.email and email:
        primary.email = email
    if not primary.phone and phone:
        primary.phone = phone
    primary.unsubscribed = primary.unsubscribed or secondary.unsubscribed
    primary.suppressed = primary.suppressed or secondary.suppressed
    primary.save(update_fields=["attributes", "attribute_timestamps", "email", "phone", "unsubscribed",
                                "suppressed", "updated_at"])
    feed.person_merged(primary, secondary_id)
    feed.person_changed(primary, before)
    return primary


def merge(workspace, op: dict) -> Profile | None:
    primary = find_person(workspace, op["primary"])
    secondary = find_person(workspace, op["secondary"])
    if primary is None or secondary is None:
        logger.info("merge skipped: a person does not exist")
        return primary
    return merge_people(workspace, primary=primary, secondary=secondary)


def alias(workspace, op: dict) -> None:
    """Segment alias: `previous_id` (anonymous id or an older user id) becomes `person`."""
    person = get_or_create_person(workspace, op["person"])
    previous = op["previous_id"]
    if not Identity.objects.for_workspace(workspace).filter(anonymous_id=previous).exists():
        older = Profile.objects.for_workspace(workspace).filter(external_id=previous).first()
        if older is not None:
            merge_people(workspace, primary=person, secondary=older)
            return
    link_anonymous_id(workspace, person, previous)


# --- events ---------------------------------------------------------------------------------------

def resolve_people(workspace, refs: Iterable[dict], *, create: bool = True) -> dict[tuple, Profile]:
    """Many person references at once: one query per kind of identifier, missing ones created.

    People found by id, email or cio_id come with only their primary key and that identifier loaded
    (callers need the key; other fields load on first access): decoding a thousand people's
    attributes would cost an ingest batch more than storing its events."""
    wanted: dict[str, set] = {}
    for ref in refs:
        key, value = next(iter(ref.items()))
        wanted.setdefault(key, set()).add(value)
    column = {"id": "external_id", "email": "email", "cio_id": "cio_id"}
    found: dict[tuple, Profile] = {}
    for key, values in wanted.items():
        if key == "anonymous_id":
            identities = Identity.objects.for_workspace(workspace).filter(
                anonymous_id__in=values).select_related("profile")
            found.update({(key, i.anonymous_id): i.profile for i in identities})
        else:
            people = Profile.objects.for_workspace(workspace).filter(**{f"{column[key]}__in": values}).only(
                "pk", "workspace_id", column[key])
            found.update({(key, getattr(p, column[key])): p for p in people})
    if create:
        for key, values in wanted.items():
            for value in values:
                if (key, value) not in found and key != "cio_id":
                    found[(key, value)] = get_or_create_person(workspace, {key: value})
    return found


EVENT_COLUMNS = ("workspace_id", "profile_id", "anonymous_id", "name", "type", "data", "timestamp", "received_at",
                 "dedupe_id")
_EVENT_STAGE = """CREATE TEMP TABLE IF NOT EXISTS ulak_event_stage (
    workspace_id bigint, profile_id bigint, anonymous_id varchar(200), name varchar(255), type varchar(10),
    data jsonb, timestamp timestamptz, received_at timestamptz, dedupe_id varchar(200))"""


def insert_events(rows: list[tuple]) -> None:
    """COPY rows (in EVENT_COLUMNS order) into a session temp table, then into the events table;
    a dedupe id already stored, or repeated among the rows, is stored once. The same statement
    writes a change feed row for each event stored (docs/change-feed.md)."""
    columns = ", ".join(EVENT_COLUMNS)
    feed.flush()  # what was noted before these events goes first
    with connection.cursor() as cursor:
        cursor.execute(_EVENT_STAGE)
        with cursor.cursor.copy(f"COPY ulak_event_stage ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"""WITH stored AS (
                    INSERT INTO {Event._meta.db_table} ({columns}) SELECT {columns} FROM ulak_event_stage
                    ON CONFLICT DO NOTHING
                    RETURNING id, workspace_id, profile_id, anonymous_id, name, type, data, timestamp, dedupe_id)
                INSERT INTO {feed.CHANGE_TABLE} (workspace_id, kind, profile_id, anonymous_id, data)
                SELECT workspace_id, 'event', profile_id, anonymous_id, {feed.EVENT_DATA_SQL}
                FROM stored ORDER BY id""")
        cursor.execute("TRUNCATE ulak_event_stage")


def record_person_event(*, workspace_id: int, profile_id: int, name: str, data: dict, timestamp: datetime) -> None:
    """One event of a known person (delivery feedback: `email_opened`...), stored with its change
    feed row in one statement; nothing to resolve or deduplicate, so no staging table."""
    columns = ", ".join(EVENT_COLUMNS)
    feed.flush()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH stored AS (
                    INSERT INTO {Event._meta.db_table} ({columns})
                    VALUES (%s, %s, NULL, %s, %s, %s::jsonb, %s, %s, NULL)
                    RETURNING id, workspace_id, profile_id, anonymous_id, name, type, data, timestamp, dedupe_id)
                INSERT INTO {feed.CHANGE_TABLE} (workspace_id, kind, profile_id, anonymous_id, data)
                SELECT workspace_id, 'event', profile_id, anonymous_id, {feed.EVENT_DATA_SQL} FROM stored""",
            [workspace_id, profile_id, name, EventType.EVENT, json.dumps(data), timestamp, datetime.now(UTC)])


def record_events(workspace, ops: list[dict]) -> int:
    """Store event operations together, resolving (and creating) their people in bulk."""
    refs = [op["person"] for op in ops if op.get("person")]
    refs += [{"anonymous_id": op["anonymous_id"]} for op in ops if op.get("anonymous_id") and not op.get("person")]
    people = resolve_people(workspace, [r for r in refs if "anonymous_id" not in r])
    people.update(resolve_people(workspace, [r for r in refs if "anonymous_id" in r], create=False))
    linked = set()
    now = datetime.now(UTC)
    rows = []
    for op in ops:
        ref = op.get("person")
        if ref is not None:
            person = people.get(next(iter(ref.items())))
            if person is None:
                continue  # a cio_id that does not exist
            if op.get("anonymous_id") and (person.pk, op["anonymous_id"]) not in linked:
                link_anonymous_id(workspace, person, op["anonymous_id"])
                linked.add((person.pk, op["anonymous_id"]))
        else:
            person = people.get(("anonymous_id", op.get("anonymous_id")))
        rows.append((workspace.pk, person.pk if person else None, op.get("anonymous_id"), op["name"], op["type"],
                     json.dumps(op["data"]), _dt(op["timestamp"]), now, op.get("dedupe_id")))
    insert_events(rows)
    return len(rows)


# --- devices and status ---------------------------------------------------------------------------

def add_device(workspace, op: dict) -> Device | None:
    person = get_or_create_person(workspace, op["person"])
    if person is None:
        return None
    spec = op["device"]
    defaults = {"profile": person, "platform": spec["platform"], "attributes": spec.get("attributes") or {}}
    if spec.get("last_used") is not None:
        defaults["last_used"] = _dt(spec["last_used"])
    device, _ = Device.objects.for_workspace(workspace).update_or_create(token=spec["token"], defaults=defaults)
    return device


def delete_device(workspace, op: dict) -> None:
    person = find_person(workspace, op["person"])
    if person is not None:
        Device.objects.for_workspace(workspace).filter(profile=person, token=op["token"]).delete()


def set_suppressed(workspace, op: dict, suppressed: bool) -> None:
    person = find_person(workspace, op["person"])
    if person is not None and person.suppressed != suppressed:
        before = feed.snapshot(person)
        person.suppressed = suppressed
        person.save(update_fields=["suppressed", "updated_at"])
        feed.person_changed(person, before)


# --- objects and relationships --------------------------------------------------------------------

def _get_object(workspace, ref: dict, *, create: bool = True) -> tuple[CustomObject | None, bool]:
    """(the object, whether it was created); its object_type is loaded."""
    object_type = ObjectType.objects.for_workspace(workspace).filter(type_id=ref["type_id"]).first()
    if object_type is None:
        if not create:
            return None, False
        object_type, _ = ObjectType.objects.for_workspace(workspace).get_or_create(
            type_id=ref["type_id"], defaults={"name": f"Object type {ref['type_id']}"}
        )
    if not create:
        obj, created = CustomObject.objects.for_workspace(workspace).filter(object_type=object_type,
                                                    object_id=ref["object_id"]).first(), False
    else:
        obj, created = CustomObject.objects.for_workspace(workspace).get_or_create(object_type=object_type,
                                                           object_id=ref["object_id"])
    if obj is not None:
        obj.object_type = object_type
    return obj, created


def get_object(workspace, ref: dict, *, create: bool = True) -> CustomObject | None:
    obj, created = _get_object(workspace, ref, create=create)
    if created:
        feed.object_changed(obj, obj.object_type.type_id, "created")
    return obj


def identify_object(workspace, op: dict) -> CustomObject:
    obj, created = _get_object(workspace, op["object"])
    before = dict(obj.attributes)
    if merge_attributes(obj.attributes, obj.attribute_timestamps, op.get("attributes", {}), op["ts"]):
        obj.save(update_fields=["attributes", "attribute_timestamps", "updated_at"])
    feed.object_changed(obj, obj.object_type.type_id, "created" if created else "updated", before=before)
    for item in op.get("people", []):
        person = get_or_create_person(workspace, item["person"])
        if person is not None:
            _relate(workspace, person, obj, item.get("attributes") or {})
    return obj


def _object_deleted(obj: CustomObject, people: Iterable[int]) -> None:
    """Feed rows for an object about to be deleted: its relationships removed, then the object."""
    type_id = obj.object_type.type_id
    for profile_id in people:
        feed.relationship_changed(obj.workspace_id, profile_id, type_id, obj.object_id, "removed")
    feed.object_changed(obj, type_id, "deleted")


def delete_object(workspace, op: dict) -> None:
    obj = get_object(workspace, op["object"], create=False)
    if obj is not None:
        _object_deleted(obj, _related_people(obj))
        obj.delete()


def _relate(workspace, person: Profile, obj: CustomObject, attributes: dict) -> None:
    relationship, created = Relationship.objects.for_workspace(workspace).get_or_create(
        profile=person, object=obj, defaults={"attributes": attributes}
    )
    if created:
        feed.relationship_changed(workspace.pk, person.pk, obj.object_type.type_id, obj.object_id, "added",
                                  relationship.attributes)
    elif attributes:
        before = dict(relationship.attributes)
        relationship.attributes.update(attributes)
        relationship.save(update_fields=["attributes", "updated_at"])
        if feed.differs(before, relationship.attributes):
            feed.relationship_changed(workspace.pk, person.pk, obj.object_type.type_id, obj.object_id, "updated",
                                      relationship.attributes)


def _set_relationship(workspace, person: Profile, obj: CustomObject, attributes: dict, *, remove: bool) -> None:
    if remove:
        removed, _ = Relationship.objects.for_workspace(workspace).filter(profile=person, object=obj).delete()
        if removed:
            feed.relationship_changed(workspace.pk, person.pk, obj.object_type.type_id, obj.object_id, "removed")
    else:
        _relate(workspace, person, obj, attributes or {})


def relate_person(workspace, person: Profile, objects: Iterable[dict], *, remove: bool = False) -> None:
    for item in objects:
        obj = get_object(workspace, item["object"], create=not remove)
        if obj is not None:
            _set_relationship(workspace, person, obj, item.get("attributes"), remove=remove)


def change_relationships(workspace, op: dict, *, remove: bool) -> None:
    if "person" in op:
        person = get_or_create_person(workspace, op["person"], create=not remove)
        if person is not None:
            relate_person(workspace, person, op["objects"], remove=remove)
        return
    obj = get_object(workspace, op["object"], create=not remove)
    if obj is None:
        return
    for item in op["people"]:
        person = get_or_create_person(workspace, item["person"], create=not remove)
        if person is not None:
            _set_relationship(workspace, person, obj, item.get("attributes"), remove=remove)



# --- App API: object types, objects and relationships (keyword-only, each one transaction) --------

class ObjectTypeExists(Exception):
    """The workspace already has an object type with this type_id."""


@transaction.atomic
def create_object_type(*, workspace, type_id: str, name: str) -> ObjectType:
    try:
        with transaction.atomic():
            return ObjectType.objects.for_workspace(workspace).create(type_id=type_id, name=name)
    except IntegrityError as exc:
        raise ObjectTypeExists(type_id) from exc


@transaction.atomic
def rename_object_type(*, object_type: ObjectType, name: str) -> ObjectType:
    object_type.name = name
    object_type.save(update_fields=["name"])
    return object_type


@transaction.atomic
def delete_object_type(*, object_type: ObjectType) -> None:
    """Its objects and their relationships go too, each through a workspace-led filter."""
    workspace_id = object_type.workspace_id
    feed.object_type_deleted(object_type)
    Relationship.objects.for_workspace(workspace_id).filter(object__object_type=object_type).delete()
    CustomObject.objects.for_workspace(workspace_id).filter(object_type=object_type).delete()
    object_type.delete()


@transaction.atomic
def replace_object_attributes(*, workspace, object_type: ObjectType, object_id: str,
                              attributes: dict) -> tuple[CustomObject, bool]:
    """Create the object or replace all its attributes. "" or null values are left out.

    Every attribute touched (old or new) is stamped now, so an older Track update applied later
    cannot bring back a replaced or removed value.
    """
    obj, created = CustomObject.objects.for_workspace(workspace).select_for_update().get_or_create(
        object_type=object_type, object_id=object_id
    )
    now = datetime.now(UTC).timestamp()
    before = dict(obj.attributes)
    kept = {name: value for name, value in attributes.items() if value is not None and value != ""}
    for name in set(obj.attributes) | set(attributes):
        obj.attribute_timestamps[name] = now
    obj.attributes = kept
    obj.save(update_fields=["attributes", "attribute_timestamps", "updated_at"])
    feed.object_changed(obj, object_type.type_id, "created" if created else "updated", before=before)
    keep_segments_live(workspace, _related_people(obj), {"objects"})
    return obj, created


@transaction.atomic
def delete_custom_object(*, obj: CustomObject) -> None:
    people = _related_people(obj)
    _object_deleted(obj, people)
    Relationship.objects.for_workspace(obj.workspace_id).filter(object=obj).delete()
    obj.delete()
    keep_segments_live(obj.workspace, people, {"objects"})


def _related_people(obj: CustomObject) -> list[int]:
    return list(Relationship.objects.for_workspace(obj.workspace_id).filter(object=obj)
                .values_list("profile_id", flat=True))


def keep_segments_live(workspace, profile_ids, changes: set[str]) -> None:
    """Keep data segments live after a change made outside ingest (App API, admin)."""
    from profiles.segments.incremental import refresh_people

    if profile_ids:
        refresh_people(workspace, profile_ids, changes)


@transaction.atomic
def change_person_relationships(*, workspace, person: Profile, objects: list[dict], remove: bool) -> None:
    """Add (creating missing objects) or remove relationships, all or nothing.

    `objects` is [{"object": {"type_id", "object_id"}, "attributes"}], as in ingest operations.
    """
    relate_person(workspace, person, objects, remove=remove)
    keep_segments_live(workspace, [person.pk], {"objects"})
