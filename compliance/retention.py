"""Retention: remove what a workspace keeps no longer than its retention window (docs/compliance.md)."""

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from compliance.audit import record_action
from profiles.models import Event

logger = logging.getLogger(__name__)

# By id, so no row is loaded into Python and no ORM cascade or per-row signal runs.
_DELETE_EXPIRED_EVENTS = f"""
    DELETE FROM {Event._meta.db_table} WHERE id IN (
        SELECT id FROM {Event._meta.db_table} WHERE workspace_id = %s AND timestamp < %s LIMIT %s
    )"""


def event_cutoff(*, workspace, now: datetime | None = None) -> datetime:
    """Events that happened before this instant are past the workspace's retention window."""
    return (now or timezone.now()) - timedelta(days=workspace.event_retention_days)


def purge_expired_events(*, workspace, now: datetime | None = None, batch_size: int = 10_000) -> int:
    """Delete the workspace's events whose `timestamp` is before the cutoff; return how many.

    Deliberately not atomic as a whole: each batch commits on its own, so purging millions of
    rows never holds one long transaction, and a purge cut short is finished by the next run.
    One audit entry records every run, including runs that found nothing (proof the job ran).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = event_cutoff(workspace=workspace, now=now)
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DELETE_EXPIRED_EVENTS, [workspace.pk, cutoff, batch_size])
            batch = cursor.rowcount
        deleted += batch
        if batch < batch_size:
            break
    record_action(
        target=workspace,
        action="retention_purge",
        workspace=workspace,
        details={"events": deleted, "cutoff": cutoff.isoformat(), "retention_days": workspace.event_retention_days},
    )
    logger.info("retention purge", extra={"workspace_id": workspace.pk, "events": deleted})
    return deleted
