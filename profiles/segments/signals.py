"""Segment entry and exit signals, the triggers journeys listen to.

Both are sent only after the transaction that changed the membership commits, with keyword
arguments `workspace_id`, `segment_id` and `profile_ids` (a list of Profile primary keys; large
changes arrive as several sends of at most `SIGNAL_BATCH` ids). `sender` is `Segment`.
"""

from django.db import transaction
from django.dispatch import Signal

segment_entered = Signal()
segment_exited = Signal()

SIGNAL_BATCH = 10_000


def send_on_commit(signal: Signal, *, segment, profile_ids: list[int]) -> None:
    """Send `signal` for `profile_ids` once the current transaction commits (now if none is open)."""
    if not profile_ids:
        return
    from profiles.models import Segment

    workspace_id, segment_id, ids = segment.workspace_id, segment.pk, sorted(profile_ids)

    def send():
        for start in range(0, len(ids), SIGNAL_BATCH):
            signal.send(sender=Segment, workspace_id=workspace_id, segment_id=segment_id,
                        profile_ids=ids[start:start + SIGNAL_BATCH])

    transaction.on_commit(send)
