"""The worker side: apply staged operations of one workspace, in order, exactly once.

A PostgreSQL advisory lock lets one processor work on a workspace at a time. Each batch is one
transaction that applies its operations and deletes their rows, so a crash rolls the batch back
whole and the next run applies it again; nothing is lost and nothing is applied twice. What a
batch changes is recorded in the change feed in the same transaction (docs/change-feed.md).

An operation whose handler raises is rolled back to its savepoint (its change feed rows too) and
kept, with its error, as an ingest dead letter written in the same transaction
(profiles/ingest/dead_letters.py); the rest of the batch applies and commits.

Consecutive events are stored together (`_apply_events`) and consecutive plain identifies are
applied set-based (`_apply_identifies`, profiles/ingest/identify_batch.py); a run that raises is
applied again one operation at a time, so only the failing operation becomes a dead letter.
"""

import logging
from collections import Counter
from itertools import groupby

from auditlog.context import disable_auditlog
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from profiles import services
from profiles.changefeed import recording as feed
from profiles.changefeed.consumers import nudge as nudge_consumers
from profiles.erasure import SuppressionFilter
from profiles.ingest import identify_batch
from profiles.ingest.dead_letters import Failure, keep_failures
from profiles.ingest.store import SCHEDULE_KEY
from profiles.models import InboundOperation
from profiles.segments import services as segment_services
from profiles.segments.incremental import BatchTracker

logger = logging.getLogger(__name__)
LOCK_CLASS = 0x1A6E  # advisory lock namespace for ingest processors


class WorkspaceBusy(Exception):
    """Another processor holds this workspace."""


# Operation kind -> handler(workspace, op). Kinds owned by higher layers are registered by their
# AppConfig.ready(): "delete" (compliance: a deletion request) and "delivery_metric" (channels).
HANDLERS = {
    "identify": services.identify,
    "add_device": services.add_device,
    "delete_device": services.delete_device,
    "suppress": lambda ws, op: services.set_suppressed(ws, op, True),
    "unsuppress": lambda ws, op: services.set_suppressed(ws, op, False),
    "merge": services.merge,
    "alias": services.alias,
    "object_identify": services.identify_object,
    "object_delete": services.delete_object,
    "add_relationships": lambda ws, op: services.change_relationships(ws, op, remove=False),
    "delete_relationships": lambda ws, op: services.change_relationships(ws, op, remove=True),
    "segment_add": segment_services.apply_segment_add,  # CSV imports' manual segment (profiles/imports.py)
}


def register_operation_handler(kind: str, handler) -> None:
    """Called from a higher layer's AppConfig.ready(): `handler(workspace, op)` applies `kind`."""
    if HANDLERS.get(kind, handler) is not handler:
        raise ValueError(f"an ingest handler for {kind!r} is already registered")
    HANDLERS[kind] = handler


def _lock(workspace_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_CLASS, workspace_id])
        return cursor.fetchone()[0]


def _apply_one(workspace, op: dict, failures: list[Failure]) -> None:
    try:
        with feed.atomic():  # a savepoint that also drops the feed rows noted inside it on failure
            HANDLERS[op["op"]](workspace, op)
    except Exception as exc:
        # One bad operation must not hold up the workspace's queue: it is set aside (a dead letter).
        logger.exception("ingest operation failed", extra={"op": op.get("op")})
        failures.append(Failure(op, exc))


def _apply_events(workspace, ops: list[dict], failures: list[Failure]) -> None:
    try:
        with feed.atomic():
            services.record_events(workspace, ops)
    except Exception as exc:
        if len(ops) == 1:
            logger.exception("ingest event failed")
            failures.append(Failure(ops[0], exc))
            return
        for op in ops:  # find and set aside the one that fails
            _apply_events(workspace, [op], failures)


# Identify operations applied in this process by path ("set_based", "one_by_one"): benchmarks and
# tests read it to see what share takes the set-based path.
IDENTIFY_PATHS: Counter = Counter()


def _apply_identifies(workspace, ops: list[dict], failures: list[Failure]) -> None:
    """A run of plain identifies in a few statements; if it raises, one by one (dead letters)."""
    try:
        with feed.atomic():
            identify_batch.identify_many(workspace=workspace, operations=ops)
    except Exception:
        logger.info("set-based identify failed; applying the run one by one", exc_info=True)
        IDENTIFY_PATHS["one_by_one"] += len(ops)
        for op in ops:
            _apply_one(workspace, op, failures)
        return
    IDENTIFY_PATHS["set_based"] += len(ops)


def _path(op: dict) -> str:
    if op["op"] == "event":
        return "event"
    if HANDLERS.get("identify") is services.identify and identify_batch.batchable(op):
        return "identify"
    if op["op"] == "identify":
        IDENTIFY_PATHS["one_by_one"] += 1
    return "one"


def apply_operations(workspace, operations: list[dict]) -> list[Failure]:
    """Apply in order; consecutive events go to the database together, and so do consecutive plain
    identifies (`_apply_identifies`). Operations naming a suppressed (deleted) identifier are
    dropped and counted. Returns the operations that raised
    (each rolled back to its own savepoint), in order; `process_batch` keeps them as dead letters."""
    failures: list[Failure] = []
    suppression = SuppressionFilter(workspace, operations)
    operations = suppression.filter(operations)
    for path, run in groupby(operations, key=_path):
        if path == "event":
            _apply_events(workspace, list(run), failures)
        elif path == "identify":
            _apply_identifies(workspace, list(run), failures)
        else:
            for op in run:
                _apply_one(workspace, op, failures)
    suppression.save()
    return failures


def _delete_applied(workspace_id: int, ids: list[int]) -> None:
    """One DELETE with the ids as a single array parameter (an IN list of a thousand placeholders
    costs more to build and send than the delete itself)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {InboundOperation._meta.db_table} WHERE workspace_id = %s AND id = ANY(%s)",
                       [workspace_id, ids])


def process_batch(workspace) -> int:
    with transaction.atomic():
        if not _lock(workspace.pk):
            raise WorkspaceBusy
        rows = list(
            InboundOperation.objects.for_workspace(workspace).order_by("id").values_list("id", "payload")[
                : settings.ULAK_INGEST_BATCH_SIZE
            ]
        )
        if rows:
            operations = [payload for _, payload in rows]
            upkeep = BatchTracker(workspace, operations)  # live segment membership (segments/incremental.py)
            # Ingested data is not audited row by row (compliance/audit.py); what it changes goes to
            # the change feed, buffered and written before the segment upkeep adds its own rows.
            with disable_auditlog(), feed.recording():
                failures = apply_operations(workspace, operations)
            upkeep.finish()
            if failures:
                # Matched by identity: the payloads handed out are the objects read above.
                row_of = {id(payload): pk for pk, payload in rows}
                keep_failures(workspace, [(row_of[id(f.operation)], f.error) for f in failures])
            _delete_applied(workspace.pk, [pk for pk, _ in rows])
            # What the batch changed is in the feed: its consumers (journeys) run as soon as it
            # commits, not at beat's next drive.
            transaction.on_commit(lambda: nudge_consumers(workspace.pk))
        return len(rows)


def process_pending(workspace) -> int:
    """Apply everything staged for `workspace`; raises WorkspaceBusy if another processor runs."""
    total = 0
    while True:
        applied = process_batch(workspace)
        total += applied
        if applied:
            continue
        # Let requests schedule a new run, then look once more: rows committed after the last
        # batch either show up here or find the key gone and schedule a run themselves.
        cache.delete(SCHEDULE_KEY.format(workspace.pk))
        if not process_batch(workspace):
            return total
