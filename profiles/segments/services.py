"""Segments: definitions and membership.

- `create_segment` / `update_segment` / `delete_segment` manage definitions. A data segment's
  conditions are checked by `conditions.validate`; changing them raises `version`, sets the state
  to building and schedules `segments.recompute` on commit (creating a data segment does too).
  Manual segments have no conditions and are ready at once.
- `recompute(segment)` rebuilds a data segment's membership from its conditions in two SQL
  statements, whatever the number of people: an INSERT ... SELECT of the matching people who
  have no open membership row, and an UPDATE that closes (`exited_at`) the open rows of people
  who no longer match. History rows are never deleted; a person who re-enters gets a new row.
- `add_people` / `remove_people` change a manual segment's membership by person references
  (`{"id"|"email"|"cio_id": value}`); unknown people are reported back, never created.

Every entry and exit sends `segment_entered` / `segment_exited` after commit (see `signals`), and
is recorded in the change feed in the same transaction (docs/change-feed.md).
The workspace is always the segment's own; nothing here reads the scope.
"""

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import InvalidInput
from profiles.changefeed.recording import segment_changes
from profiles.models import Profile, Segment, SegmentKind, SegmentMembership, SegmentState
from profiles.segments.signals import segment_entered, segment_exited, send_on_commit
from profiles.services import resolve_people

MAX_NAME = 200
PERSON_REF_KEYS = ("id", "email", "cio_id")
DEFINITION_FIELDS = ("name", "description", "conditions")


# --- definitions ------------------------------------------------------------------------------------

def _clean_name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("name", "is required")
    if len(value.strip()) > MAX_NAME:
        raise InvalidInput("name", f"must be at most {MAX_NAME} characters")
    return value.strip()


def _clean_description(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("description", "must be a string")
    return value


def _clean_conditions(kind: str, tree, workspace):
    if kind == SegmentKind.MANUAL:
        if tree not in (None, {}):
            raise InvalidInput("conditions", "a manual segment has no conditions")
        return {}
    from profiles.segments import conditions

    return conditions.validate(tree, workspace=workspace)


def _save(segment: Segment, **kwargs) -> None:
    try:
        with transaction.atomic():
            segment.save(**kwargs)
    except IntegrityError as exc:
        raise InvalidInput("name", "another segment already has this name") from exc


def _schedule_recompute(segment: Segment) -> None:
    from profiles.segment_tasks import recompute_segment

    recompute_segment.delay_on_commit(workspace_id=segment.workspace_id, segment_id=segment.pk,
                                      version=segment.version)


def create_segment(*, workspace, name, kind, conditions, description="") -> Segment:
    if kind not in SegmentKind.values:
        raise InvalidInput("kind", f"must be one of {', '.join(SegmentKind.values)}")
    manual = kind == SegmentKind.MANUAL
    segment = Segment(
        workspace=workspace, name=_clean_name(name), description=_clean_description(description), kind=kind,
        conditions=_clean_conditions(kind, conditions, workspace),
        state=SegmentState.READY if manual else SegmentState.BUILDING,
        progress=100 if manual else 0, computed_at=timezone.now() if manual else None,
    )
    _save(segment)
    if not manual:
        _schedule_recompute(segment)
    return segment


def update_segment(*, segment: Segment, **changes) -> Segment:
    """Change `name`, `description` and (data segments) `conditions`. The kind cannot change."""
    unknown = set(changes) - set(DEFINITION_FIELDS)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "cannot be changed")
    fields = set()
    if "name" in changes:
        segment.name = _clean_name(changes["name"])
        fields.add("name")
    if "description" in changes:
        segment.description = _clean_description(changes["description"])
        fields.add("description")
    redefined = False
    if "conditions" in changes:
        tree = _clean_conditions(segment.kind, changes["conditions"], segment.workspace)
        redefined = segment.kind == SegmentKind.DATA and tree != segment.conditions
        segment.conditions = tree
        fields.add("conditions")
    if redefined:
        segment.version = F("version") + 1
        segment.state, segment.progress = SegmentState.BUILDING, 0
        fields |= {"version", "state", "progress"}
    if fields:
        _save(segment, update_fields=sorted(fields | {"updated_at"}))
        if redefined:
            segment.refresh_from_db(fields=["version"])
            _schedule_recompute(segment)
    return segment


def recompute_dependents(workspace, tag: str) -> list[int]:
    """Schedule a full recompute (on commit) of the live data segments whose conditions depend on
    `tag` (a `conditions.depends_on` tag): for changes that reach everyone at once, such as a
    subscription topic's default or its deletion (`topics:<key>`). Returns the segment ids."""
    from profiles.segments.incremental import live_segments

    ids = [live.pk for live in live_segments(workspace) if tag in live.deps]
    for segment in Segment.objects.for_workspace(workspace).filter(pk__in=ids).only("pk", "workspace_id", "version"):
        _schedule_recompute(segment)
    return ids


def delete_segment(*, segment: Segment) -> None:
    """Delete the segment and its membership history. No exit signals: the audience is gone."""
    segment.delete()


# --- recompute ---------------------------------------------------------------------------------------

def _table() -> str:
    return connection.ops.quote_name(SegmentMembership._meta.db_table)


def _matching_sql(segment: Segment) -> tuple[str, tuple]:
    from profiles.segments import conditions

    queryset = conditions.matching(segment.workspace, segment.conditions).values("id").order_by()
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)


def _enter_matching(segment: Segment, now) -> list[int]:
    sql, params = _matching_sql(segment)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {_table()} (workspace_id, segment_id, profile_id, entered_at, exited_at)
                SELECT %s, %s, m.id, %s, NULL FROM ({sql}) AS m
                WHERE NOT EXISTS (SELECT 1 FROM {_table()} AS sm
                                  WHERE sm.workspace_id = %s AND sm.segment_id = %s
                                    AND sm.profile_id = m.id AND sm.exited_at IS NULL)
                ON CONFLICT DO NOTHING
                RETURNING profile_id""",
            (segment.workspace_id, segment.pk, now, *params, segment.workspace_id, segment.pk),
        )
        return [row[0] for row in cursor.fetchall()]


def _exit_unmatched(segment: Segment, now) -> list[int]:
    sql, params = _matching_sql(segment)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table()} AS sm SET exited_at = %s
                WHERE sm.workspace_id = %s AND sm.segment_id = %s AND sm.exited_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM ({sql}) AS m WHERE m.id = sm.profile_id)
                RETURNING sm.profile_id""",
            (now, segment.workspace_id, segment.pk, *params),
        )
        return [row[0] for row in cursor.fetchall()]


def _current_count(segment: Segment) -> int:
    return SegmentMembership.objects.for_workspace(segment.workspace_id).filter(segment=segment,
                                             exited_at__isnull=True).count()


def recompute(segment: Segment, *, version: int | None = None) -> dict:
    """Bring the membership in line with the definition. Returns counts of what changed.

    The segment row is locked for the duration, so two recomputes of one segment run one after
    the other; the second finds nothing to change. With `version`, a segment whose definition has
    moved on is left alone (`{"skipped": True}`): the newer definition has its own recompute queued.
    A failure rolls back every change and leaves the segment in state failed.
    """
    try:
        with transaction.atomic():
            locked = Segment.objects.for_workspace(segment.workspace_id).select_for_update().get(pk=segment.pk)
            if version is not None and locked.version != version:
                return {"skipped": True, "entered": 0, "exited": 0, "member_count": locked.member_count}
            now = timezone.now()
            entered = exited = []
            if locked.kind == SegmentKind.DATA:
                entered = _enter_matching(locked, now)
                exited = _exit_unmatched(locked, now)
            locked.member_count = _current_count(locked)
            locked.state, locked.progress, locked.computed_at = SegmentState.READY, 100, now
            locked.save(update_fields=["member_count", "state", "progress", "computed_at", "updated_at"])
            segment_changes(locked.workspace_id, locked.pk, entered, exited)  # the change feed, same transaction
            send_on_commit(segment_entered, segment=locked, profile_ids=entered)
            send_on_commit(segment_exited, segment=locked, profile_ids=exited)
    except Exception:
        Segment.objects.for_workspace(segment.workspace_id).filter(pk=segment.pk).update(
            state=SegmentState.FAILED, updated_at=timezone.now())
        raise
    for field in ("member_count", "state", "progress", "computed_at", "version"):
        setattr(segment, field, getattr(locked, field))
    return {"skipped": False, "entered": len(entered), "exited": len(exited), "member_count": locked.member_count}


# --- manual membership -------------------------------------------------------------------------------

def _resolve(segment: Segment, people) -> tuple[list[int], list[dict]]:
    """Profile ids for the references (looked up together), and the references naming nobody."""
    cleaned = []
    for index, ref in enumerate(people):
        if not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in PERSON_REF_KEYS:
            raise InvalidInput(f"people.{index}", 'must be {"id"|"email"|"cio_id": value}')
        key, value = next(iter(ref.items()))
        if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
            raise InvalidInput(f"people.{index}.{key}", "must be a non-empty string")
        cleaned.append((ref, key, str(value).strip().lower() if key == "email" else str(value)))
    known = resolve_people(segment.workspace, [{key: value} for _, key, value in cleaned], create=False)
    found, unknown = [], []
    for ref, key, value in cleaned:
        person = known.get((key, value))
        if person is None:
            unknown.append(ref)
        else:
            found.append(person.pk)
    return list(dict.fromkeys(found)), unknown


def _refresh_dependents(segment: Segment, profile_ids) -> None:
    """Data segments built on this one ("member of segment X") follow its manual changes."""
    from profiles.segments.incremental import refresh_people

    if profile_ids:
        refresh_people(segment.workspace, profile_ids, {f"segments:{segment.pk}"})


def _require_manual(segment: Segment) -> None:
    if segment.kind != SegmentKind.MANUAL:
        raise InvalidInput("segment", "people can only be added to or removed from a manual segment")


def add_people(*, segment: Segment, people) -> dict:
    """Open a membership for each person not already a member. Returns the profile ids that
    entered and the references that matched nobody."""
    _require_manual(segment)
    ids, unknown = _resolve(segment, people)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {_table()} (workspace_id, segment_id, profile_id, entered_at, exited_at)
                    SELECT %s, %s, p.id, %s, NULL FROM unnest(%s::bigint[]) AS p(id)
                    ON CONFLICT DO NOTHING
                    RETURNING profile_id""",
                (segment.workspace_id, segment.pk, timezone.now(), ids),
            )
            entered = [row[0] for row in cursor.fetchall()]
        _bump_count(segment, len(entered))
        segment_changes(segment.workspace_id, segment.pk, entered, [])
        send_on_commit(segment_entered, segment=segment, profile_ids=entered)
        _refresh_dependents(segment, entered)
    return {"entered": entered, "unknown": unknown}


def apply_segment_add(workspace, op: dict) -> None:
    """The ingest operation a CSV import stages after a row's identify (profiles/imports.py): add
    the row's person to the manual segment chosen for the import. A segment deleted or made
    non-manual since adds nobody."""
    segment = Segment.objects.for_workspace(workspace.pk).filter(pk=op["segment_id"], kind=SegmentKind.MANUAL).first()
    if segment is not None:
        add_people(segment=segment, people=[op["person"]])


def remove_people(*, segment: Segment, people) -> dict:
    """Close the open membership of each person named. Returns the profile ids that exited and
    the references that matched nobody."""
    _require_manual(segment)
    ids, unknown = _resolve(segment, people)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {_table()} SET exited_at = %s
                    WHERE workspace_id = %s AND segment_id = %s AND exited_at IS NULL
                      AND profile_id = ANY(%s::bigint[])
                    RETURNING profile_id""",
                (timezone.now(), segment.workspace_id, segment.pk, ids),
            )
            exited = [row[0] for row in cursor.fetchall()]
        _bump_count(segment, -len(exited))
        segment_changes(segment.workspace_id, segment.pk, [], exited)
        send_on_commit(segment_exited, segment=segment, profile_ids=exited)
        _refresh_dependents(segment, exited)
    return {"exited": exited, "unknown": unknown}


def _bump_count(segment: Segment, delta: int) -> None:
    if delta:
        Segment.objects.for_workspace(segment.workspace_id).filter(pk=segment.pk).update(
            member_count=F("member_count") + delta, computed_at=timezone.now())
        segment.refresh_from_db(fields=["member_count", "computed_at"])


# --- reads -------------------------------------------------------------------------------------------

def current_members(segment: Segment):
    """The segment's current members, as a Profile queryset (one query, ordered by pk)."""
    open_rows = SegmentMembership.objects.for_workspace(segment.workspace_id).filter(segment=segment,
                                                  exited_at__isnull=True)
    return Profile.objects.for_workspace(segment.workspace_id).filter(
                                   pk__in=open_rows.values("profile_id")).order_by("pk")
