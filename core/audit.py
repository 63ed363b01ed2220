"""Audit registration: every project model is tracked, with its personal-data fields masked.

A model lists its personal-data fields in `personal_data_fields`; their values never reach an
audit entry. Secrets and noisy bookkeeping fields are never recorded.

The audit log records management changes (admin, App API, CLI, jobs acting for someone). The
data plane is not audited row by row: tables of ingested facts set `audit_log = False` (the
registry test keeps the list, with reasons), and the ingest processor applies Track/CDP data with
auditing off. Per-row audit signals there would write an entry per event and stop Django from
deleting such rows in bulk.
"""

from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.contenttypes.models import ContentType

from core.models import AuditEntry, audit_name

MASK = "[masked]"
# Never recorded: secrets, and bookkeeping that changes on every request.
ALWAYS_EXCLUDED = ("password", "secret_hash", "last_login", "last_used_at")


def mask_personal_value(value: str) -> str:
    return MASK


def audited_models():
    """Models of every app whose AppConfig says `audited = True` (each project app above core)."""
    for app_config in apps.get_app_configs():
        if not getattr(app_config, "audited", False):
            continue
        for model in app_config.get_models():
            if getattr(model, "audit_log", True):
                yield model


def register_project_models() -> None:
    for model in audited_models():
        if auditlog.contains(model):
            continue
        auditlog.register(
            model,
            mask_fields=list(getattr(model, "personal_data_fields", ())),
            exclude_fields=[*ALWAYS_EXCLUDED, *getattr(model, "audit_exclude_fields", ())],
        )


def record_action(*, target, action: str, workspace=None, details: dict | None = None):
    """An audit entry for something that is not a model change: a login, an export, a deletion.

    `target` is the model instance (or class) the action is about; `action` a short verb such as
    "login", "login_failed", "export", "deletion_requested". The actor, source and IP come from
    the current `core.context.Actor`, as for every entry. Pass no personal data in `details`.
    """
    model = target if isinstance(target, type) else type(target)
    pk = None if isinstance(target, type) else target.pk
    return AuditEntry.objects.log_create(
        target if pk is not None else model(),
        force_log=True,
        action=AuditEntry.Action.ACCESS,
        content_type=ContentType.objects.get_for_model(model),
        object_pk=str(pk or ""),
        object_id=pk if isinstance(pk, int) else None,
        object_repr=f"{audit_name(model)} #{pk}" if pk is not None else audit_name(model),
        changes={"action": action, **(details or {})},
        serialized_data=None,
        **({"workspace_id": workspace.pk} if workspace is not None else {}),
    )
