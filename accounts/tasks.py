"""The workspace-scoped task base: tenant work runs inside its workspace's scope."""

from accounts.models import Workspace
from core.context import current_workspace, workspace_scope
from core.tasks import UlakTask


class WorkspaceTask(UlakTask):
    """A task that works inside one workspace: call it with a `workspace_id` keyword argument."""

    abstract = True

    @property
    def workspace(self):
        return current_workspace()

    def __call__(self, *args, **kwargs):
        workspace_id = kwargs.get("workspace_id")
        if workspace_id is None:
            raise TypeError(f"{self.name} must be called with a workspace_id keyword argument")
        workspace = Workspace.objects.get(pk=workspace_id)
        with workspace_scope(workspace):
            return super().__call__(*args, **kwargs)
