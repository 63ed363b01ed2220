"""Live membership upkeep: re-check only the people who changed, only in the segments it can affect.

    refresh_people(workspace, profile_ids, changes)   the same change tags for every person
    refresh_changes(workspace, changes_by_person)     {profile_id: tags}; what the ingest hook uses
    BatchTracker(workspace, operations)               the ingest processor's hook (see `track`)

Change tags are those of `conditions.depends_on`: "attributes", "events:<name>", "objects",
"channels", "segments:<id>"; "*" means "anything may have changed" (merges, anonymous ids).

For each data segment (state ready or building) whose dependencies meet a person's tags, one
statement re-checks those people: `matching(...).filter(pk__in=ids)` in a CTE feeding an INSERT of
new memberships and an UPDATE closing the open rows of people who no longer match. `member_count`
moves by the difference and `segment_entered` / `segment_exited` go out on commit. Segments that
use a changed segment (`segments:<id>`) are then re-checked for the people whose membership
changed, up to MAX_DEPTH levels (a cycle of segments stops there).

Everything runs in the caller's transaction. A workspace without live data segments costs one query.
"""

import logging
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from profiles.changefeed.recording import segment_changes
from profiles.models import Identity, Profile, Relationship, Segment, SegmentKind, SegmentMembership, SegmentState
from profiles.segments import conditions
from profiles.segments.signals import segment_entered, segment_exited, send_on_commit

logger = logging.getLogger(__name__)
MAX_DEPTH = 5
ALL = "*"
LIVE_STATES = (SegmentState.READY, SegmentState.BUILDING)
TIME = "time"


class _Live:
    """A data segment as the refresh needs it: id, workspace, conditions and its dependencies."""

    __slots__ = ("pk", "workspace_id", "conditions", "deps")

    def __init__(self, pk, workspace_id, tree):
        self.pk, self.workspace_id, self.conditions = pk, workspace_id, tree
        self.deps = conditions.depends_on(tree) - {TIME}

    def affected_by(self, tags) -> bool:
        return ALL in tags or bool(self.deps & tags)


def live_segments(workspace) -> list[_Live]:
    """The workspace's data segments kept live (one query)."""
    rows = Segment.objects.for_workspace(workspace).filter(kind=SegmentKind.DATA, state__in=LIVE_STATES).values_list(
        "pk", "workspace_id", "conditions")
    return [_Live(*row) for row in rows]


def refresh_people(workspace, profile_ids, changes: set[str], *, segments=None) -> dict[int, tuple[list, list]]:
    """Re-check `profile_ids` in every live data segment that `changes` can affect.
    Returns {segment_id: (entered ids, exited ids)} for the segments whose membership changed."""
    ids = set(profile_ids)
    return refresh_changes(workspace, {pk: set(changes) for pk in ids}, segments=segments)


def refresh_changes(workspace, changes_by_person: dict[int, set[str]], *, segments=None) -> dict:
    """Like `refresh_people`, with each person's own change tags."""
    if not changes_by_person:
        return {}
    segments = live_segments(workspace) if segments is None else segments
    if not segments:
        return {}
    by_id = {segment.pk: segment for segment in segments}
    now = timezone.now()
    result: dict[int, tuple[list, list]] = {}
    # Direct effects: each segment once, for the people whose tags meet its dependencies.
    pending: dict[int, set[int]] = {}
    for segment in segments:
        ids = {pk for pk, tags in changes_by_person.items() if segment.affected_by(tags)}
        if ids:
            changed = _refresh_segment(segment, ids, now, result)
            if changed:
                pending[segment.pk] = changed
    # Propagation through "member of segment X" conditions.
    for _ in range(MAX_DEPTH):
        if not pending:
            break
        wave: dict[int, set[int]] = defaultdict(set)
        for segment in segments:
            for source_id, people in pending.items():
                if f"segments:{source_id}" in segment.deps:
                    wave[segment.pk] |= people
        pending = {}
        for segment_id, ids in wave.items():
            changed = _refresh_segment(by_id[segment_id], ids, now, result)
            if changed:
                pending[segment_id] = changed
    return result


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _refresh_segment(segment: _Live, ids: set[int], now, result: dict) -> set[int]:
    """One statement: enter the matching `ids` without an open row, exit open rows of `ids` that no
    longer match. Returns the ids whose membership changed."""
    queryset = conditions.matching(segment.workspace_id, segment.conditions, now=now,
                                   profile_ids=sorted(ids)).values("id").order_by()
    sql, params = queryset.query.sql_with_params()
    memberships = _table(SegmentMembership)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH m AS ({sql}),
                ins AS (
                    INSERT INTO {memberships} (workspace_id, segment_id, profile_id, entered_at, exited_at)
                    SELECT %s, %s, m.id, %s, NULL FROM m
                    WHERE NOT EXISTS (SELECT 1 FROM {memberships} AS sm
                                      WHERE sm.workspace_id = %s AND sm.segment_id = %s
                                        AND sm.profile_id = m.id AND sm.exited_at IS NULL)
                    ON CONFLICT DO NOTHING
                    RETURNING profile_id),
                upd AS (
                    UPDATE {memberships} AS sm SET exited_at = %s
                    WHERE sm.workspace_id = %s AND sm.segment_id = %s AND sm.exited_at IS NULL
                      AND sm.profile_id = ANY(%s::bigint[])
                      AND NOT EXISTS (SELECT 1 FROM m WHERE m.id = sm.profile_id)
                    RETURNING sm.profile_id)
                SELECT true, profile_id FROM ins UNION ALL SELECT false, profile_id FROM upd""",
            (*params, segment.workspace_id, segment.pk, now, segment.workspace_id, segment.pk,
             now, segment.workspace_id, segment.pk, sorted(ids)),
        )
        rows = cursor.fetchall()
    entered = [pk for is_entry, pk in rows if is_entry]
    exited = [pk for is_entry, pk in rows if not is_entry]
    if not rows:
        return set()
    delta = len(entered) - len(exited)
    Segment.objects.for_workspace(segment.workspace_id).filter(pk=segment.pk).update(
        member_count=F("member_count") + delta, computed_at=now)
    segment_changes(segment.workspace_id, segment.pk, entered, exited)  # the change feed, same transaction
    send_on_commit(segment_entered, segment=segment, profile_ids=entered)
    send_on_commit(segment_exited, segment=segment, profile_ids=exited)
    before = result.get(segment.pk, ([], []))
    result[segment.pk] = (before[0] + entered, before[1] + exited)
    return set(entered) | set(exited)


# --- the ingest hook --------------------------------------------------------------------------------

def _person_refs(op: dict) -> tuple[list[dict], set[str]]:
    """The people an operation names (refs) and what it may change about them (tags)."""
    kind = op.get("op")
    if kind == "identify":
        refs = [op["person"]]
        refs += [{"email": op["email"]}] if op.get("email") else []
        refs += [{"id": op["set_id"]}] if op.get("set_id") else []
        tags = {"attributes", "channels"}
        if op.get("relationships"):
            tags.add("objects")
        if op.get("anonymous_id"):  # may absorb an anonymous profile: its events, devices, ...
            tags.add(ALL)
        return refs, tags
    if kind == "event":
        if op.get("person"):
            return [op["person"]], ({ALL} if op.get("anonymous_id") else {f"events:{op['name']}"})
        if op.get("anonymous_id"):
            return [{"anonymous_id": op["anonymous_id"]}], {f"events:{op['name']}"}
        return [], set()
    if kind in ("add_device", "delete_device", "suppress", "unsuppress"):
        return [op["person"]], {"channels"}
    if kind == "merge":
        return [op["primary"], op["secondary"]], {ALL}
    if kind == "alias":
        previous = op["previous_id"]
        return [op["person"], {"id": previous}, {"anonymous_id": previous}], {ALL}
    if kind in ("object_identify", "add_relationships", "delete_relationships"):
        refs = [op["person"]] if "person" in op else []
        refs += [item["person"] for item in op.get("people", [])]
        return refs, {"objects"}
    return [], set()  # delete (compliance, in the background), object_delete (see _objects)


def _object_refs(op: dict) -> list[dict]:
    """Objects whose related people are affected by the operation (attributes or deletion)."""
    if op.get("op") in ("object_identify", "object_delete", "add_relationships", "delete_relationships") \
            and "object" in op:
        return [op["object"]]
    return []


REF_COLUMNS = {"id": "external_id", "email": "email", "cio_id": "cio_id"}


def _resolve(workspace, refs: set[tuple]) -> dict[tuple, set[int]]:
    """Profile ids for (key, value) references: one query per kind of identifier."""
    wanted: dict[str, set] = defaultdict(set)
    for key, value in refs:
        wanted[key].add(value)
    found: dict[tuple, set[int]] = defaultdict(set)
    for key, values in wanted.items():
        if key == "anonymous_id":
            rows = Identity.objects.for_workspace(workspace).filter(anonymous_id__in=values).values_list(
                "anonymous_id", "profile_id")
        elif key in REF_COLUMNS:
            rows = Profile.objects.for_workspace(workspace).filter(**{f"{REF_COLUMNS[key]}__in": values}).values_list(
                REF_COLUMNS[key], "pk")
        else:
            continue
        for value, pk in rows:
            found[(key, value)].add(pk)
    return found


def _related_people(workspace, objects: set[tuple]) -> set[int]:
    if not objects:
        return set()
    q = Q()
    for type_id, object_id in objects:
        q |= Q(object__object_type__type_id=type_id, object__object_id=object_id)
    return set(Relationship.objects.for_workspace(workspace).filter(q).values_list("profile_id", flat=True))


class BatchTracker:
    """Collects who an ingest batch changes and how, then refreshes their segments once.

        tracker = BatchTracker(workspace, operations)   # one query; more only if segments care
        apply_operations(...)
        tracker.finish()                                # inside the batch's transaction

    People are found from the operations' references both before and after applying, so a changed
    email, a merged-away secondary or a newly created person are all covered.
    """

    def __init__(self, workspace, operations: list[dict]):
        self.workspace = workspace
        self.segments = live_segments(workspace)
        self.by_ref: dict[tuple, set[str]] = defaultdict(set)
        self.objects: set[tuple] = set()
        self.before: dict[tuple, set[int]] = {}
        self.object_people: set[int] = set()
        if not self.segments:
            return
        wanted = set().union(*(segment.deps for segment in self.segments)) | {ALL}
        for op in operations:
            try:
                refs, tags = _person_refs(op)
                objects = {(ref["type_id"], str(ref["object_id"])) for ref in _object_refs(op)}
            except (KeyError, TypeError, AttributeError):
                continue  # a malformed operation: the processor logs and skips it
            if tags & wanted:
                for ref in refs:
                    if isinstance(ref, dict) and len(ref) == 1:
                        self.by_ref[next(iter(ref.items()))] |= tags
            if "objects" in wanted:
                self.objects |= objects
        if self.by_ref:
            self.before = _resolve(workspace, set(self.by_ref))
        self.object_people = _related_people(workspace, self.objects)
        # A merge deletes its secondary, and the cascade takes their open memberships with it: note
        # them now so the counts can follow (no exit signal: the person is gone, not changed).
        merging = {pk for ref, tags in self.by_ref.items() if ALL in tags for pk in self.before.get(ref, ())}
        self.open_rows = list(SegmentMembership.objects.for_workspace(workspace).filter(
            profile_id__in=merging, exited_at__isnull=True).values_list(
            "segment_id", "profile_id")) if merging else []

    def finish(self) -> dict:
        """Refresh the batch's people. A failure here is logged and rolled back to a savepoint, never
        allowed to stop ingestion; the next full recompute (or time-based run) repairs the drift."""
        if not self.segments or not (self.by_ref or self.objects):
            return {}
        try:
            with transaction.atomic():
                return self._refresh()
        except Exception:
            logger.exception("segment upkeep failed for an ingest batch", extra={"workspace_id": self.workspace.pk})
            return {}

    def _refresh(self) -> dict:
        after = _resolve(self.workspace, set(self.by_ref)) if self.by_ref else {}
        existed = set().union(*self.before.values()) if self.before else set()
        changes: dict[int, set[str]] = defaultdict(set)
        for ref, tags in self.by_ref.items():
            for pk in self.before.get(ref, set()) | after.get(ref, set()):
                # Someone new may match any segment (a "not", a not_member); check them everywhere.
                changes[pk] |= tags if pk in existed else {ALL}
        if self.open_rows:
            self._drop_vanished()
        for pk in self.object_people | _related_people(self.workspace, self.objects):
            changes[pk].add("objects")
        return refresh_changes(self.workspace, dict(changes), segments=self.segments)


    def _drop_vanished(self) -> None:
        gone = {pk for _, pk in self.open_rows} - set(
            Profile.objects.for_workspace(self.workspace).filter(pk__in={pk for _, pk in self.open_rows}).values_list(
                "pk", flat=True))
        lost: dict[int, int] = defaultdict(int)
        for segment_id, pk in self.open_rows:
            if pk in gone:
                lost[segment_id] += 1
        for segment_id, count in lost.items():
            Segment.objects.for_workspace(self.workspace).filter(pk=segment_id, member_count__gte=count).update(
                member_count=F("member_count") - count)


# --- time ------------------------------------------------------------------------------------------

def time_based_segments(workspace=None):
    """Data segments kept live whose result can change with time alone (windows, relative dates)."""
    segments = Segment.unscoped.filter(kind=SegmentKind.DATA, state__in=LIVE_STATES).order_by("workspace_id", "pk")
    if workspace is not None:
        segments = segments.filter(workspace=workspace)
    return [segment for segment in segments.select_related("workspace")
            if TIME in conditions.depends_on(segment.conditions)]
