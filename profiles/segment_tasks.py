"""Segment membership jobs (Celery, queue `segments`).

`segments.recompute` runs `services.recompute` for one segment at one definition version. It is
scheduled on commit by `create_segment` / `update_segment`. A run for an older version than the
segment's current one does nothing (the newer version has its own run queued), and a repeated
run of the current version finds nothing left to change, so redelivery is harmless.
"""

from config.celery import app
from core.tasks import WorkspaceTask


@app.task(base=WorkspaceTask, name="segments.recompute")
def recompute_segment(*, workspace_id, segment_id, version):
    from profiles.models import Segment
    from profiles.segments import services

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:  # deleted since it was scheduled
        return {"skipped": True}
    return services.recompute(segment, version=version)
