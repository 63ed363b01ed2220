"""Retention: remove what a workspace keeps no longer than its retention window (docs/compliance.md).

One window, `Workspace.event_retention_days`, covers events and the rendered content of deliveries.
"""

import logging
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import connection, transaction
from django.utils import timezone

from channels.models import Delivery, DeliveryStatus, DemoMessage
from core.audit import record_action
from profiles.models import Event

logger = logging.getLogger(__name__)

# By id, so no row is loaded into Python and no ORM cascade or per-row signal runs.
_DELETE_EXPIRED_EVENTS = f"""
    DELETE FROM {Event._meta.db_table} WHERE id IN (
        SELECT id FROM {Event._meta.db_table} WHERE workspace_id = %s AND timestamp < %s LIMIT %s
    )"""

CONTENT_FIELDS = ("subject", "body", "body_plain", "rendered_payload", "content", "message_data")
PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)

# One batch of deliveries past the cutoff whose content is still there, in (created_at, id) order
# from where the previous batch stopped: a run reads each old delivery at most once, through
# delivery_ws_created. Deliveries still queued or sending keep what they need to be sent.
_PURGE_DELIVERY_CONTENT = f"""
    WITH batch AS (
        SELECT id, created_at FROM {Delivery._meta.db_table}
        WHERE workspace_id = %(workspace)s AND created_at < %(cutoff)s AND content_purged_at IS NULL
          AND status <> ALL(%(pending)s::text[]) AND (created_at, id) > (%(after_time)s, %(after_id)s)
        ORDER BY created_at, id LIMIT %(limit)s
    ), purged AS (
        UPDATE {Delivery._meta.db_table} SET subject = '', body = '', body_plain = '',
            rendered_payload = '{{}}'::jsonb, content = '{{}}'::jsonb, message_data = '{{}}'::jsonb,
            content_purged_at = %(now)s, updated_at = %(now)s
        WHERE workspace_id = %(workspace)s AND id IN (SELECT id FROM batch)
        RETURNING id
    ), demo AS (  -- what a demo-provider configuration stored of them goes with their content
        DELETE FROM {DemoMessage._meta.db_table}
        WHERE workspace_id = %(workspace)s AND delivery_id IN (SELECT id FROM batch)
    )
    SELECT (SELECT count(*) FROM purged), (SELECT count(*) FROM batch), batch.created_at, batch.id FROM batch
    ORDER BY batch.created_at DESC, batch.id DESC LIMIT 1"""


def event_cutoff(*, workspace, now: datetime | None = None) -> datetime:
    """Events that happened before this instant are past the workspace's retention window."""
    return (now or timezone.now()) - timedelta(days=workspace.event_retention_days)


def purge_expired_data(*, workspace, now: datetime | None = None, batch_size: int = 10_000) -> dict[str, int]:
    """Delete the workspace's events whose `timestamp` is before the cutoff, and empty the rendered
    content of its deliveries created before it; return {"events": n, "delivery_content": m}.

    Deliberately not atomic as a whole: each batch commits on its own, so purging millions of
    rows never holds one long transaction, and a purge cut short is finished by the next run.
    One audit entry records every run, including runs that found nothing (proof the job ran).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    cutoff = event_cutoff(workspace=workspace, now=now)
    counts = {"events": _purge_events(workspace, cutoff, batch_size),
              "delivery_content": _purge_delivery_content(workspace, cutoff, now, batch_size)}
    record_action(
        target=workspace,
        action="retention_purge",
        workspace=workspace,
        details={**counts, "cutoff": cutoff.isoformat(), "retention_days": workspace.event_retention_days},
    )
    logger.info("retention purge", extra={"workspace_id": workspace.pk, **counts})
    return counts


def purge_expired_events(*, workspace, now: datetime | None = None, batch_size: int = 10_000) -> int:
    """The nightly purge (`purge_expired_data`) under the name the task calls; returns the event count."""
    return purge_expired_data(workspace=workspace, now=now, batch_size=batch_size)["events"]


def _purge_events(workspace, cutoff: datetime, batch_size: int) -> int:
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DELETE_EXPIRED_EVENTS, [workspace.pk, cutoff, batch_size])
            batch = cursor.rowcount
        deleted += batch
        if batch < batch_size:
            return deleted


def _purge_delivery_content(workspace, cutoff: datetime, now: datetime, batch_size: int) -> int:
    """Empty subject, bodies, rendered payload, inline content and message data of deliveries
    created before the cutoff (not the recipient, status, timestamps or events: the delivery
    history stays) and set `content_purged_at`."""
    purged = 0
    after_time, after_id = datetime.min.replace(tzinfo=dt_timezone.utc), 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PURGE_DELIVERY_CONTENT, {
                "workspace": workspace.pk, "cutoff": cutoff, "pending": list(PENDING), "now": now,
                "after_time": after_time, "after_id": after_id, "limit": batch_size})
            row = cursor.fetchone()
        if row is None:
            return purged
        batch, seen, after_time, after_id = row
        purged += batch
        if seen < batch_size:
            return purged
