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

PROJECT_APPS = ("accounts", "profiles", "campaigns", "channels", "compliance")
MASK = "[masked]"
# Never recorded: secrets, and bookkeeping that changes on every request.
ALWAYS_EXCLUDED = ("password", "secret_hash", "last_login", "last_used_at")


def mask_personal_value(value: str) -> str:
    return MASK


def audited_models():
    for app_label in PROJECT_APPS:
        for model in apps.get_app_config(app_label).get_models():
            if model._meta.label != "compliance.AuditEntry" and getattr(model, "audit_log", True):
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
