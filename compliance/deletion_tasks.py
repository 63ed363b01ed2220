"""Deletion jobs (Celery). Thin: load the request, call the service."""

from celery import shared_task

from accounts.tasks import WorkspaceTask
from compliance.deletion import resume_incomplete_deletions, run_deletion
from compliance.models import DeletionRecord
from core.tasks import UlakTask


@shared_task(base=WorkspaceTask, name="compliance.run_deletion")
def run_deletion_task(*, workspace_id, request_id):
    record = DeletionRecord.objects.filter(pk=request_id).first()
    if record is not None:
        run_deletion(record)


@shared_task(base=UlakTask, name="compliance.resume_deletions")
def resume_deletions():
    """Beat: re-enqueue deletions left pending/running (lost message, dead worker) or failed."""
    return resume_incomplete_deletions()
