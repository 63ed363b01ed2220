from celery import shared_task
from profiles.segment_tasks import *  # noqa: F401,F403  (Celery finds segment tasks here)
from accounts.tasks import WorkspaceTask
from core.tasks import UlakTask
from profiles.ingest.processor import WorkspaceBusy, process_pending


@shared_task(base=WorkspaceTask, bind=True, name="ingest.process_inbound", max_retries=None)
def process_inbound(self, *, workspace_id):
    try:
        process_pending(self.workspace)
    except WorkspaceBusy:
        # The running processor may be about to finish; look again shortly.
        raise self.retry(countdown=1) from None


@shared_task(base=UlakTask, name="ingest.sweep_inbound")
def sweep_inbound():
    """Safety net: schedule every workspace that still has staged operations."""
    from profiles.ingest.store import schedule_processing
    from profiles.models import InboundOperation

    for workspace_id in InboundOperation.unscoped.values_list("workspace_id", flat=True).distinct():
        schedule_processing(workspace_id)
