"""The request side: stage validated operations durably, then ask for them to be applied."""

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from profiles.models import InboundOperation

SCHEDULE_KEY = "ingest-scheduled:{}"
_TABLE = InboundOperation._meta.db_table
# The operations travel as one JSON array, one row per element, ids in the array's order: four
# parameters whatever the batch size, so psycopg neither rebuilds a query of 4 x N placeholders
# nor quotes each payload on its own (it cost more CPU than the rest of a 100-message request).
_STAGE_SQL = (
    f"INSERT INTO {_TABLE} (workspace_id, source, payload, received_at)"
    " SELECT %s, %s, op.payload, %s FROM jsonb_array_elements(%s) WITH ORDINALITY AS op(payload, n) ORDER BY op.n"
)


def stage_operations(*, workspace, operations: list[dict], source: str, schedule: bool = True) -> int:
    """Store operations with one INSERT, then schedule the processor after commit.

    Outside a transaction the single statement commits (or fails) on its own, so the request
    costs one round trip; inside one, it commits with it and the processor waits for that.
    `schedule=False`: the caller has just seen the processor scheduled (its flag set within the
    last second, so `schedule_processing` would do nothing); the sweep covers the rest as always.
    """
    if not operations:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_STAGE_SQL, [workspace.pk, source, timezone.now(), Jsonb(operations)])
    if schedule:
        workspace_id = workspace.pk
        transaction.on_commit(lambda: schedule_processing(workspace_id))
    return len(operations)


def stage_again(*, workspace, rows: list[tuple[str, dict, object]]) -> list[int]:
    """Stage operations that were received before — `(source, payload, received_at)` each, in
    order — behind everything already staged, and return their new ids (in the same order).
    Used to replay dead letters (profiles/ingest/dead_letters.py); must run in the caller's
    transaction, and the processor is scheduled after it commits."""
    if not rows:
        return []
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params = [value for source, payload, received_at in rows
              for value in (workspace.pk, source, Jsonb(payload), received_at)]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_TABLE} (workspace_id, source, payload, received_at) VALUES {values}"
                       " RETURNING id", params)
        ids = [pk for (pk,) in cursor.fetchall()]
    workspace_id = workspace.pk
    transaction.on_commit(lambda: schedule_processing(workspace_id))
    return ids


def schedule_processing(workspace_id: int) -> None:
    """Enqueue the processor, at most once a second per workspace while one is pending."""
    from profiles.tasks import process_inbound

    if cache.add(SCHEDULE_KEY.format(workspace_id), 1, 1):
        process_inbound.delay(workspace_id=workspace_id)
