"""Retention purges (Celery). Beat runs `compliance.purge_expired` nightly ("retention-nightly")."""

from celery import shared_task

from accounts.models import Workspace
from accounts.tasks import WorkspaceTask
from compliance.retention import purge_expired_data
from core.tasks import UlakTask

__all__ = ["purge_expired", "purge_workspace_events"]


@shared_task(base=UlakTask, name="compliance.purge_expired")
def purge_expired():
    """Fan out: one purge task per workspace, so a large workspace does not delay the others."""
    for workspace_id in Workspace.objects.order_by("pk").values_list("pk", flat=True):
        purge_workspace_events.delay(workspace_id=workspace_id)


@shared_task(base=WorkspaceTask, name="compliance.purge_workspace_events", bind=True)
def purge_workspace_events(self, *, workspace_id):
    """Expired events, and the rendered content of deliveries past the same retention period."""
    return purge_expired_data(workspace=self.workspace)
