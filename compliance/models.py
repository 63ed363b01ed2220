from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import models

from core.context import current_actor, current_workspace_or_none
from core.models import WorkspaceScopedManager


class AuditSource(models.TextChoices):
    ADMIN = "admin", "Admin console"
    API = "api", "API"
    CLI = "cli", "Management command"
    SYSTEM = "system", "Background job"


def _workspace_id_of(instance) -> int | None:
    from accounts.models import Workspace

    if isinstance(instance, Workspace):
        return instance.pk
    workspace_id = getattr(instance, "workspace_id", None)
    if workspace_id is not None:
        return workspace_id
    workspace = current_workspace_or_none()
    return workspace.pk if workspace is not None else None


class AuditEntryManager(LogEntryManager):
    """auditlog's manager, filling in who acted, from where, and in which workspace."""

    def _context(self, instance, kwargs):
        actor = current_actor()
        if not getattr(instance, "audit_str_is_safe", False):
            # str() may show personal data, directly or through a relation (a membership shows
            # its user's email); unless a model vouches for its str(), name it by type and key.
            kwargs.setdefault("object_repr", f"{instance._meta.verbose_name} #{instance.pk}")
        kwargs.setdefault("workspace_id", _workspace_id_of(instance))
        kwargs.setdefault("source", actor.source if actor else AuditSource.SYSTEM)
        if actor is not None:
            if actor.user is not None:
                kwargs.setdefault("actor", actor.user)
                kwargs.setdefault("actor_email", actor.user.email)
            if actor.api_key is not None:
                kwargs.setdefault("api_key_id", actor.api_key.pk)
            kwargs.setdefault("remote_addr", actor.remote_addr)
        return kwargs

    def log_create(self, instance, force_log: bool = False, **kwargs):
        return super().log_create(instance, force_log=force_log, **self._context(instance, kwargs))

    def log_m2m_changes(self, changed_queryset, instance, operation, field_name, **kwargs):
        return super().log_m2m_changes(
            changed_queryset, instance, operation, field_name, **self._context(instance, kwargs)
        )


class AuditEntry(AbstractLogEntry):
    """One audited change. Rows are append-only: a database trigger refuses UPDATE and DELETE.

    Foreign keys carry no database constraint so entries outlive the users, keys and workspaces
    they mention (the actor's email is copied onto the row).
    """

    workspace = models.ForeignKey(
        "accounts.Workspace", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    source = models.CharField(max_length=10, choices=AuditSource.choices, default=AuditSource.SYSTEM)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )

    objects = AuditEntryManager()
    scoped = WorkspaceScopedManager()  # reads; `objects` is auditlog's writer

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["workspace", "-timestamp"], name="audit_ws_time")]
