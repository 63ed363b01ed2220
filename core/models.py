"""Tenancy building blocks shared by every tenant table."""

from django.db import models

from core.context import current_workspace


class WorkspaceScopedManager(models.Manager):
    """Default manager of tenant models: only the workspace in scope, and raises when none is."""

    def get_queryset(self):
        workspace = current_workspace()
        return super().get_queryset().filter(workspace_id=workspace.pk)


class WorkspaceScopedModel(models.Model):
    """Abstract base of every tenant table.

    `objects` is scoped and fails closed; `unscoped` is for deliberate cross-workspace code
    (authentication by key, maintenance jobs) and must be named explicitly.
    """

    # No single-column index: every tenant table leads its own indexes with workspace
    # (enforced by the registry test), which serves workspace lookups as well.
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+", editable=False, db_index=False
    )

    objects = WorkspaceScopedManager()
    unscoped = models.Manager()

    class Meta:
        abstract = True


def is_tenant_model(model) -> bool:
    return issubclass(model, WorkspaceScopedModel)
