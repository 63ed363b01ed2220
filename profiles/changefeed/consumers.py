"""Reading the change feed: registered consumers, their cursors, the beat jobs that drive them, and
pruning.

Ordering and safety. Sequence ids are handed out when rows are inserted, not when they commit, so
a reader that takes "id > last seen" can pass a row whose transaction commits later. Every row
instead carries the id of the transaction that wrote it (`txid`, set by PostgreSQL), and a
consumer reads only rows whose txid is below `pg_snapshot_xmin(pg_current_snapshot())`: every
transaction with a smaller id has finished, so no row can still appear below that horizon. Rows
are read in (txid, id) order after the consumer's cursor (txid, change_id).

Exactly-once application per cursor. A batch is one transaction: it locks the consumer's cursor
row for the workspace (FOR UPDATE), reads the next rows, calls the consumer's handler, and moves
the cursor. The handler's writes and the cursor commit together, or neither does: a worker killed
mid-batch leaves the cursor where it was, and two runs of one consumer on one workspace take
turns on the row lock, the second starting where the first stopped. A handler that also writes
outside this transaction, or that must survive a deliberate rewind (`rewind`), keys its writes by
the change id (`Change.pk`: unique, never reused, the same on every delivery), e.g. a unique
constraint on (workspace, change_id) with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from core.context import workspace_scope
from profiles.models import Change, ChangeFeedCursor, ChangeKind

logger = logging.getLogger(__name__)

END = 2**63 - 1  # a change id above every real one: (txid, END) is "all of transaction txid"
SCHEDULE_KEY = "change-feed-scheduled:{}:{}"
SCHEDULE_SECONDS = 60  # a consume task lost with its worker is scheduled again by beat after this
RUN_BATCHES = 40  # batches per consume task before it hands over to a fresh task
PRUNE_BATCH = 5000

_CHANGES = Change._meta.db_table
_CURSORS = ChangeFeedCursor._meta.db_table
_WORKSPACES = Workspace._meta.db_table
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


@dataclass(frozen=True)
class Consumer:
    """`handle(workspace, changes)` applies a list of `Change` rows, in (txid, id) order, inside the
    transaction that moves the cursor; it runs inside the workspace's scope. An exception rolls the
    batch back (cursor included) and is raised: the batch is offered again on the next run.
    `kinds` limits the rows handed over (the cursor still moves past the others)."""

    name: str
    handle: Callable
    kinds: frozenset[str] | None = None
    batch_size: int = 500
    queue: str = "default"


_consumers: dict[str, Consumer] = {}


def register_consumer(name: str, handle: Callable, *, kinds: Iterable[str] | None = None, batch_size: int = 500,
                      queue: str = "default") -> Consumer:
    """Called from a higher layer's AppConfig.ready(). `name` is stored with the cursors: keep it
    stable (renaming starts a new consumer from the oldest retained row). `queue` is the Celery queue
    its consume tasks go to."""
    if not name or len(name) > ChangeFeedCursor._meta.get_field("consumer").max_length:
        raise ValueError("a consumer name is 1 to 100 characters")
    unknown = set(kinds or ()) - set(ChangeKind.values)
    if unknown:
        raise ValueError(f"unknown change kinds: {sorted(unknown)}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    consumer = Consumer(name, handle, frozenset(kinds) if kinds else None, batch_size, queue)
    existing = _consumers.get(name)
    if existing is not None and existing != consumer:
        raise ValueError(f"a change feed consumer named {name!r} is already registered")
    _consumers[name] = consumer
    return consumer


def unregister_consumer(name: str) -> None:
    _consumers.pop(name, None)


def registered_consumers() -> list[Consumer]:
    return sorted(_consumers.values(), key=lambda consumer: consumer.name)


def get_consumer(name: str) -> Consumer | None:
    return _consumers.get(name)


# --- running a consumer ------------------------------------------------------------------------------------

def horizon() -> int:
    """Transaction ids below this have all finished: rows below it are complete and final."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_HORIZON}")
        return cursor.fetchone()[0]


def _locked_cursor(workspace_id: int, name: str, *, wait: bool) -> ChangeFeedCursor | None:
    rows = ChangeFeedCursor.objects.for_workspace(workspace_id).filter(consumer=name)
    locked = rows.select_for_update(skip_locked=not wait).first()
    if locked is None and not rows.exists():
        # A new consumer (or workspace) starts at the oldest row still retained.
        ChangeFeedCursor.objects.for_workspace(workspace_id).bulk_create(
            [ChangeFeedCursor(workspace_id=workspace_id, consumer=name)], ignore_conflicts=True)
        locked = rows.select_for_update(skip_locked=not wait).first()
    return locked


def _run_batch(workspace, consumer: Consumer, *, wait: bool) -> int | None:
    """One batch in one transaction; None when another run holds the cursor (and `wait` is off)."""
    with transaction.atomic():
        cursor = _locked_cursor(workspace.pk, consumer.name, wait=wait)
        if cursor is None:
            return None
        below = horizon()
        changes = Change.objects.for_workspace(workspace).filter(
            Q(txid__gt=cursor.txid) | Q(id__gt=cursor.change_id), txid__gte=cursor.txid, txid__lt=below)
        if consumer.kinds is not None:
            changes = changes.filter(kind__in=sorted(consumer.kinds))
        rows = list(changes.order_by("txid", "id")[:consumer.batch_size])
        if rows:
            with workspace_scope(workspace):
                consumer.handle(workspace, rows)
        if len(rows) == consumer.batch_size:
            position = (rows[-1].txid, rows[-1].id)
        else:  # everything below the horizon has been seen
            position = max((cursor.txid, cursor.change_id), (below - 1, END))
        if position != (cursor.txid, cursor.change_id):
            ChangeFeedCursor.objects.for_workspace(workspace).filter(pk=cursor.pk).update(
                txid=position[0], change_id=position[1], updated_at=timezone.now())
        return len(rows)


@dataclass
class RunResult:
    delivered: int = 0
    batches: int = 0
    busy: bool = False  # another run held the cursor
    more: bool = False  # stopped at max_batches with rows left


def run_consumer(workspace, name: str, *, max_batches: int | None = None, wait: bool = True) -> RunResult:
    """Apply the consumer to the workspace's rows after its cursor, batch by batch, until it has
    caught up with the horizon (or after `max_batches`). With `wait` off, a run finding the cursor
    locked by another run returns at once (`busy`)."""
    consumer = _consumers.get(name)
    if consumer is None:
        raise LookupError(f"no change feed consumer named {name!r}")
    result = RunResult()
    while max_batches is None or result.batches < max_batches:
        count = _run_batch(workspace, consumer, wait=wait)
        if count is None:
            result.busy = True
            return result
        result.delivered += count
        result.batches += 1
        if count < consumer.batch_size:
            return result
    result.more = True
    return result


@transaction.atomic
def rewind(*, workspace, consumer: str, before_change: Change | None = None) -> None:
    """Move a consumer's cursor back so that it is offered `before_change` and every later row again
    (all retained rows without `before_change`). Replays reach the handler: see the module notes."""
    position = (before_change.txid, before_change.pk - 1) if before_change is not None else (0, 0)
    cursor = _locked_cursor(workspace.pk, consumer, wait=True)
    ChangeFeedCursor.objects.for_workspace(workspace).filter(pk=cursor.pk).update(
        txid=position[0], change_id=position[1], updated_at=timezone.now())


# --- beat: drive and prune ------------------------------------------------------------------------------------

def pending_workspaces(name: str) -> list[int]:
    """Workspaces with rows below the horizon that the consumer has not passed (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT w.id FROM {_WORKSPACES} AS w
                LEFT JOIN {_CURSORS} AS k ON k.workspace_id = w.id AND k.consumer = %s
                WHERE EXISTS (SELECT 1 FROM {_CHANGES} AS c
                              WHERE c.workspace_id = w.id AND c.txid < {_HORIZON}
                                AND (c.txid, c.id) > (COALESCE(k.txid, 0), COALESCE(k.change_id, 0)))
                ORDER BY w.id""",
            [name],
        )
        return [row[0] for row in cursor.fetchall()]


def drive() -> int:
    """Beat job: enqueue a consume task for each registered consumer and workspace with rows to
    apply, unless one is already scheduled. Returns the number enqueued."""
    from profiles.tasks import consume_change_feed

    scheduled = 0
    for consumer in registered_consumers():
        for workspace_id in pending_workspaces(consumer.name):
            if cache.add(SCHEDULE_KEY.format(consumer.name, workspace_id), 1, SCHEDULE_SECONDS):
                consume_change_feed.apply_async(kwargs={"workspace_id": workspace_id, "consumer": consumer.name},
                                                queue=consumer.queue)
                scheduled += 1
    return scheduled


def nudge(workspace_id: int) -> int:
    """After a commit that wrote rows (an ingest batch): a consume task for each registered
    consumer in that workspace now, unless one is already scheduled — beat's drive would find the
    rows up to 5 s later. Returns the number enqueued. A row still below another transaction's
    horizon is left to the next nudge or drive."""
    from profiles.tasks import consume_change_feed

    scheduled = 0
    for consumer in registered_consumers():
        if cache.add(SCHEDULE_KEY.format(consumer.name, workspace_id), 1, SCHEDULE_SECONDS):
            consume_change_feed.apply_async(kwargs={"workspace_id": workspace_id, "consumer": consumer.name},
                                            queue=consumer.queue)
            scheduled += 1
    return scheduled


def consume(workspace, name: str) -> RunResult:
    """The consume task: run the consumer for a while, then either hand over to a fresh task (rows
    left) or let beat schedule the next run. A failing handler leaves the schedule key to expire,
    so beat tries again after SCHEDULE_SECONDS."""
    from profiles.tasks import consume_change_feed

    consumer = _consumers.get(name)
    key = SCHEDULE_KEY.format(name, workspace.pk)
    if consumer is None:  # unregistered since the task was queued
        cache.delete(key)
        return RunResult()
    result = run_consumer(workspace, name, max_batches=RUN_BATCHES, wait=False)
    if result.more:
        cache.set(key, 1, SCHEDULE_SECONDS)
        consume_change_feed.apply_async(kwargs={"workspace_id": workspace.pk, "consumer": name}, queue=consumer.queue)
    elif not result.busy:
        cache.delete(key)
    return result


def passed_by_all(workspace_id: int, names: list[str]) -> tuple[int, int] | None:
    """The position every named consumer has passed in the workspace, None if one has not started."""
    if not names:
        return (END, END)
    positions = list(ChangeFeedCursor.objects.for_workspace(workspace_id).filter(consumer__in=names)
                     .values_list("txid", "change_id"))
    if len(positions) < len(set(names)):
        return None
    return min(positions)


def prune_workspace(workspace_id: int, *, cutoff, names: list[str], batch_size: int = PRUNE_BATCH) -> int:
    """Delete, in batches of their own transaction, rows created before `cutoff` that every named
    consumer has passed. The walk is in (txid, id) order and stops at the first row not old enough,
    so each run reads only what it deletes (a row a little out of time order waits for the next run)."""
    bound = passed_by_all(workspace_id, names)
    if bound is None:
        return 0
    first_young = Change.objects.for_workspace(workspace_id).filter(created_at__gte=cutoff).order_by(
        "txid", "id").values_list("txid", "id").first()
    stop = first_young or (END, END)
    removed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""DELETE FROM {_CHANGES} WHERE id IN (
                        SELECT id FROM {_CHANGES}
                        WHERE workspace_id = %s AND (txid, id) <= (%s, %s) AND (txid, id) < (%s, %s)
                          AND created_at < %s
                        ORDER BY txid, id LIMIT %s)""",
                [workspace_id, *bound, *stop, cutoff, batch_size],
            )
            count = cursor.rowcount
        removed += count
        if count < batch_size:
            return removed


def prune(*, now=None, batch_size: int = PRUNE_BATCH) -> int:
    """Beat job: in every workspace, delete rows older than ULAK_CHANGE_FEED_RETENTION_HOURS that
    every registered consumer has passed. Returns the number deleted."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.ULAK_CHANGE_FEED_RETENTION_HOURS)
    names = [consumer.name for consumer in registered_consumers()]
    with connection.cursor() as cursor:
        cursor.execute(f"""SELECT w.id FROM {_WORKSPACES} AS w
                           WHERE EXISTS (SELECT 1 FROM {_CHANGES} AS c WHERE c.workspace_id = w.id)
                           ORDER BY w.id""")
        workspace_ids = [row[0] for row in cursor.fetchall()]
    total = 0
    started = time.monotonic()
    for workspace_id in workspace_ids:
        total += prune_workspace(workspace_id, cutoff=cutoff, names=names, batch_size=batch_size)
    if total:
        logger.info("change feed pruned", extra={"rows": total, "seconds": round(time.monotonic() - started, 3)})
    return total
