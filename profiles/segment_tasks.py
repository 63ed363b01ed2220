"""Segment membership jobs (Celery, queue `segments`).

`segments.recompute` runs `services.recompute` for one segment at one definition version. It is
scheduled on commit by `create_segment` / `update_segment`. A run for an older version than the
segment's current one does nothing (the newer version has its own run queued), and a repeated
run of the current version finds nothing left to change, so redelivery is harmless.
"""

from celery import shared_task
from accounts.tasks import WorkspaceTask
from core.tasks import UlakTask


@shared_task(base=WorkspaceTask, name="segments.recompute")
def recompute_segment(*, workspace_id, segment_id, version):
    from profiles.models import Segment
    from profiles.segments import services

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:  # deleted since it was scheduled
        return {"skipped": True}
    return services.recompute(segment, version=version)


@shared_task(base=UlakTask, name="segments.refresh_time_based")
def refresh_time_based():
    """Beat job (every 15 minutes): fully recompute, in every workspace, each live data segment whose
    conditions change with time alone (event windows, relative dates). One segment failing (it is
    left in state failed by `recompute`) does not stop the others."""
    import logging

    from core.context import workspace_scope
    from profiles.segments import services
    from profiles.segments.incremental import time_based_segments

    done, failed = 0, 0
    for segment in time_based_segments():
        try:
            with workspace_scope(segment.workspace):
                services.recompute(segment)
            done += 1
        except Exception:
            logging.getLogger(__name__).exception("time-based recompute failed", extra={"segment_id": segment.pk})
            failed += 1
    return {"recomputed": done, "failed": failed}
