"""Tenancy building blocks shared by every tenant table."""

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import models

from core.context import current_actor, current_workspace, current_workspace_or_none


class WorkspaceQuerySet(models.QuerySet):
    """A queryset that knows its workspace once `for_workspace(ws)` named it: rows it creates
    (`create`, `get_or_create`, `update_or_create`) belong to that workspace."""

    _workspace_id: int | None = None
    _workspace = None  # the instance, when for_workspace() was given one (saves a query on `.workspace`)

    def _clone(self):
        clone = super()._clone()
        clone._workspace_id, clone._workspace = self._workspace_id, self._workspace
        return clone

    def _owned(self, kwargs: dict) -> dict:
        if self._workspace_id is not None and "workspace" not in kwargs and "workspace_id" not in kwargs:
            if self._workspace is not None:
                kwargs["workspace"] = self._workspace
            else:
                kwargs["workspace_id"] = self._workspace_id
        return kwargs

    def create(self, **kwargs):
        return super().create(**self._owned(kwargs))

    def get_or_create(self, defaults=None, **kwargs):
        return super().get_or_create(defaults=defaults, **self._owned(kwargs))

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs):
        return super().update_or_create(defaults=defaults, create_defaults=create_defaults, **self._owned(kwargs))


class WorkspaceScopedManager(models.Manager.from_queryset(WorkspaceQuerySet)):
    """Default manager of tenant models: only the workspace in scope, and raises when none is.

    `for_workspace(ws)` names the workspace explicitly instead (jobs and services that are handed
    one, responses streamed after their view returned); it is the scoped form to prefer over the
    `unscoped` manager, which every tenant model also has for deliberate cross-workspace code
    (tests/unscoped_allowlist.py lists each use).
    """

    def get_queryset(self):
        workspace = current_workspace()
        return self._all_workspaces().filter(workspace_id=workspace.pk)

    def _all_workspaces(self):
        return super().get_queryset()

    def for_workspace(self, workspace):
        """This workspace's rows (a Workspace or its id), whatever is in scope."""
        workspace_id = workspace if isinstance(workspace, int) else workspace.pk
        if workspace_id is None:
            raise ValueError("for_workspace() needs a saved workspace")
        queryset = self._all_workspaces().filter(workspace_id=workspace_id)
        queryset._workspace_id = workspace_id
        queryset._workspace = None if isinstance(workspace, int) else workspace
        return queryset


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


# --- audit log -------------------------------------------------------------------------------------

class AuditSource(models.TextChoices):
    ADMIN = "admin", "Admin console"
    API = "api", "API"
    CLI = "cli", "Management command"
    SYSTEM = "system", "Background job"


def _workspace_id_of(instance) -> int | None:
    if getattr(type(instance), "is_workspace_model", False):  # the Workspace itself (accounts)
        return instance.pk
    workspace_id = getattr(instance, "workspace_id", None)
    if workspace_id is not None:
        return workspace_id
    workspace = current_workspace_or_none()
    return workspace.pk if workspace is not None else None


def audit_name(model) -> str:
    """How the audit log names rows of `model` ("<name> #<pk>"): its verbose name when the audit
    log first named it. A model renamed for the console since (Profile is "person" there) keeps
    its old name in `audit_name`, so old and new entries name the same rows alike."""
    return getattr(model, "audit_name", None) or str(model._meta.verbose_name)


class AuditEntryManager(LogEntryManager):
    """auditlog's manager, filling in who acted, from where, and in which workspace."""

    def _context(self, instance, kwargs):
        actor = current_actor()
        if not getattr(instance, "audit_str_is_safe", False):
            # str() may show personal data, directly or through a relation (a membership shows
            # its user's email); unless a model vouches for its str(), name it by type and key.
            kwargs.setdefault("object_repr", f"{audit_name(type(instance))} #{instance.pk}")
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

    The workspace and API key are plain ids, not foreign keys: entries outlive the keys and
    workspaces they mention, and core sits below the app that defines them. The actor is
    auditlog's own reference to the user model (settings.AUTH_USER_MODEL, no database
    constraint); the actor's email is copied onto the row. The table keeps the name it had when
    the model lived in compliance (docs/architecture.md).
    """

    workspace_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=AuditSource.choices, default=AuditSource.SYSTEM)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    api_key_id = models.BigIntegerField(null=True, blank=True)

    objects = AuditEntryManager()
    scoped = WorkspaceScopedManager()  # reads; `objects` is auditlog's writer

    class Meta(AbstractLogEntry.Meta):
        db_table = "compliance_auditentry"
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["workspace_id", "-timestamp"], name="audit_ws_time")]
