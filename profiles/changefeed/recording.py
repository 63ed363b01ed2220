"""Writing the change feed, inside the transaction that makes the change.

Two ways rows are written:

- **Set-based**, in the statement that makes the change: events (`profiles.services.insert_events`
  stores the events and their feed rows in one statement) and segment entries/exits
  (`segment_changes`, one INSERT per segment refresh).
- **Noted** by the services (`person_changed`, `relationship_changed`, ...). Outside a recording
  block a note is written at once (App API, admin, inbound messages). Inside one — the ingest
  processor wraps each batch in `recording()` — notes are buffered and written with one
  bulk INSERT when the block ends, or earlier, just before a set-based write, so rows keep the
  order in which things happened. A person's attribute notes between two writes are folded into
  one row (old value before the first, new value after the last; nothing when nothing changed).

A savepoint that can roll back while notes are buffered must be opened with `atomic()` (the
processor does so for every operation): a rollback then also drops the notes made inside it and
brings back those written inside it that were noted before it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import groupby

from django.db import connection, transaction
from psycopg.types.json import Jsonb

from profiles.models import Change, ChangeKind

_recorder: ContextVar[_Recorder | None] = ContextVar("ulak_change_recorder", default=None)


# --- people ------------------------------------------------------------------------------------------

def snapshot(person) -> dict:
    """What an attributes row compares: the profile's own fields (named as segment conditions name
    them) and a copy of its attributes. Take it before changing the person."""
    deferred = person.get_deferred_fields()
    if deferred:  # e.g. people from services.resolve_people: one query for the rest
        person.refresh_from_db(fields=sorted(deferred))
    return {
        "fields": {"id": person.external_id, "cio_id": person.cio_id, "email": person.email, "phone": person.phone,
                   "unsubscribed": person.unsubscribed, "suppressed": person.suppressed},
        "attributes": dict(person.attributes),
    }


def _same(a, b) -> bool:
    if type(a) is not type(b):  # 1 and True, 1 and 1.0 are different values here
        return False
    if isinstance(a, (dict, list)):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    return a == b


def _diff(before: dict, after: dict) -> dict:
    return {name: {"old": before.get(name), "new": after.get(name)}
            for name in sorted(before.keys() | after.keys()) if not _same(before.get(name), after.get(name))}


def differs(before: dict, after: dict) -> bool:
    """Whether two attribute dicts hold different values (by JSON value: 1 is not true)."""
    return bool(_diff(before, after))


def attributes_data(before: dict | None, after: dict) -> dict | None:
    """The data of an attributes row, or None when nothing changed. `before` None: created."""
    created = before is None
    before = before or {"fields": {}, "attributes": {}}
    fields, attributes = _diff(before["fields"], after["fields"]), _diff(before["attributes"], after["attributes"])
    if not (created or fields or attributes):
        return None
    return {"created": created, "fields": fields, "attributes": attributes}


# --- buffering ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class _Note:
    workspace_id: int
    kind: str
    profile_id: int | None = None
    data: dict | None = None
    before: dict | None = None  # attributes notes: snapshots before and after
    after: dict | None = None
    seq: int = 0


@dataclass(eq=False)
class _Frame:
    start: int  # the first note sequence number made inside the savepoint
    flushed: list = field(default_factory=list)  # notes made before it, written while it was open


class _Recorder:
    def __init__(self):
        self.pending: list[_Note] = []
        self.frames: list[_Frame] = []
        self.seq = 0

    def add(self, note: _Note) -> None:
        note.seq = self.seq
        self.seq += 1
        self.pending.append(note)

    def flush(self) -> None:
        if not self.pending:
            return
        notes, self.pending = self.pending, []
        for frame in self.frames:
            frame.flushed.extend(note for note in notes if note.seq < frame.start)
        _write(notes)

    def rolled_back(self, frame: _Frame) -> None:
        """The savepoint of `frame` rolled back: drop notes made inside it; notes made before it and
        written inside it were rolled back too, so they are pending again."""
        self.frames.remove(frame)
        restored = set(frame.flushed)
        for outer in self.frames:
            outer.flushed = [note for note in outer.flushed if note not in restored]
        kept = [note for note in self.pending if note.seq < frame.start]
        self.pending = sorted(kept + frame.flushed, key=lambda note: note.seq)


def _rows(notes: list[_Note]) -> list[Change]:
    """Notes in order → rows; a person's attributes notes become one row at the first one's place."""
    folded: dict[tuple, list] = {}
    order: list = []
    for note in notes:
        if note.kind != ChangeKind.ATTRIBUTES:
            order.append(note)
            continue
        key = (note.workspace_id, note.profile_id)
        if key in folded:
            folded[key][1] = note.after
        else:
            folded[key] = [note.before, note.after, note]
            order.append(key)
    rows = []
    for item in order:
        if isinstance(item, _Note):
            rows.append(Change(workspace_id=item.workspace_id, kind=item.kind, profile_id=item.profile_id,
                               data=item.data or {}))
            continue
        before, after, first = folded[item]
        data = attributes_data(before, after)
        if data is not None:
            rows.append(Change(workspace_id=first.workspace_id, kind=ChangeKind.ATTRIBUTES,
                               profile_id=first.profile_id, data=data))
    return rows


def _write(notes: list[_Note]) -> None:
    rows = _rows(notes)
    for workspace_id, group in groupby(rows, key=lambda row: row.workspace_id):
        Change.objects.for_workspace(workspace_id).bulk_create(list(group))


def _note(note: _Note) -> None:
    recorder = _recorder.get()
    if recorder is None:
        _write([note])
    else:
        recorder.add(note)


@contextmanager
def recording():
    """Buffer the notes of a block of work (an ingest batch) and write them when it ends. Use inside
    the transaction that makes the changes; a nested block joins the outer one."""
    if _recorder.get() is not None:
        yield
        return
    recorder = _Recorder()
    token = _recorder.set(recorder)
    try:
        yield
        recorder.flush()
    finally:
        _recorder.reset(token)


@contextmanager
def atomic():
    """`transaction.atomic()` (a savepoint when nested) whose rollback also undoes buffered notes."""
    recorder = _recorder.get()
    if recorder is None:
        with transaction.atomic():
            yield
        return
    frame = _Frame(start=recorder.seq)
    recorder.frames.append(frame)
    try:
        with transaction.atomic():
            yield
    except BaseException:
        recorder.rolled_back(frame)
        raise
    recorder.frames.remove(frame)


def flush() -> None:
    """Write buffered notes now (before a set-based write, to keep the feed in order)."""
    recorder = _recorder.get()
    if recorder is not None:
        recorder.flush()


# --- notes ---------------------------------------------------------------------------------------------

def person_changed(person, before: dict | None) -> None:
    """`person` was saved; `before` is its snapshot() from before the change, None if it was created."""
    _note(_Note(person.workspace_id, ChangeKind.ATTRIBUTES, person.pk, before=before, after=snapshot(person)))


def person_merged(primary, secondary_id: int) -> None:
    _note(_Note(primary.workspace_id, ChangeKind.PERSON_MERGED, primary.pk, data={"secondary_id": secondary_id}))


def object_changed(obj, type_id: str, action: str, *, before: dict | None = None) -> None:
    """An object was "created", "updated" or "deleted"; `before` its attributes before the change.
    An update that changed no value records nothing."""
    data = {"object_type_id": type_id, "object_id": obj.object_id, "action": action}
    if action != "deleted":
        data["attributes"] = _diff(before or {}, obj.attributes)
        if action == "updated" and not data["attributes"]:
            return
    _note(_Note(obj.workspace_id, ChangeKind.OBJECT, data=data))


def relationship_changed(workspace_id: int, profile_id: int, type_id: str, object_id: str, action: str,
                         attributes: dict | None = None) -> None:
    """A person's relationship to an object was "added", "updated" or "removed"."""
    data = {"object_type_id": type_id, "object_id": object_id, "action": action}
    if action != "removed":
        data["attributes"] = dict(attributes or {})
    _note(_Note(workspace_id, ChangeKind.RELATIONSHIP, profile_id, data=data))


def inbound_message(message) -> None:
    """An SMS/WhatsApp message a person sent (channels.inbound stored it)."""
    _note(_Note(message.workspace_id, ChangeKind.INBOUND_MESSAGE, message.profile_id, data={
        "channel": message.channel, "from": message.from_address, "to": message.to_address, "body": message.body,
        "media": message.media, "keyword": message.keyword, "message_id": message.provider_message_id,
        "inbound_message_id": message.pk,
    }))


# --- set-based writes ------------------------------------------------------------------------------------

CHANGE_TABLE = Change._meta.db_table

# The data of an event row, from the columns of profiles_event (see services.insert_events).
EVENT_DATA_SQL = ("jsonb_build_object('event_id', id, 'name', name, 'type', type, 'timestamp', timestamp,"
                  " 'id', dedupe_id, 'data', data)")


def object_type_deleted(object_type) -> None:
    """Before an object type is deleted with its objects: every relationship removed, then every
    object deleted; two INSERT ... SELECT, whatever the number of objects."""
    from profiles.models import CustomObject, Relationship

    flush()
    objects, relationships = CustomObject._meta.db_table, Relationship._meta.db_table
    params = [object_type.type_id, object_type.workspace_id, object_type.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {CHANGE_TABLE} (workspace_id, kind, profile_id, data)
                SELECT r.workspace_id, %s, r.profile_id,
                       jsonb_build_object('object_type_id', %s::text, 'object_id', o.object_id, 'action', 'removed')
                FROM {objects} AS o JOIN {relationships} AS r ON r.workspace_id = o.workspace_id AND r.object_id = o.id
                WHERE o.workspace_id = %s AND o.object_type_id = %s ORDER BY o.id, r.id""",
            [ChangeKind.RELATIONSHIP.value, *params])
        cursor.execute(
            f"""INSERT INTO {CHANGE_TABLE} (workspace_id, kind, data)
                SELECT o.workspace_id, %s,
                       jsonb_build_object('object_type_id', %s::text, 'object_id', o.object_id, 'action', 'deleted')
                FROM {objects} AS o WHERE o.workspace_id = %s AND o.object_type_id = %s ORDER BY o.id""",
            [ChangeKind.OBJECT.value, *params])


def segment_changes(workspace_id: int, segment_id: int, entered, exited) -> None:
    """One INSERT for the people who entered and exited a segment."""
    if not entered and not exited:
        return
    flush()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {CHANGE_TABLE} (workspace_id, kind, profile_id, data)
                SELECT %s, moves.kind, moves.profile_id, %s
                FROM (SELECT %s AS kind, unnest(%s::bigint[]) AS profile_id
                      UNION ALL SELECT %s, unnest(%s::bigint[])) AS moves""",
            [workspace_id, Jsonb({"segment_id": segment_id}), ChangeKind.SEGMENT_ENTERED.value, sorted(entered),
             ChangeKind.SEGMENT_EXITED.value, sorted(exited)],
        )
