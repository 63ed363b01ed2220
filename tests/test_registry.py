"""Walks every model and every registered admin so later code cannot forget the tenancy rules."""

from auditlog.registry import auditlog
from django.apps import apps
from django.contrib import admin
from django.db import models

from accounts.models import Workspace
from core.audit import audited_models
from core.admin import WorkspacePermissionAdminMixin, WorkspaceScopedAdmin
from core.models import WorkspaceScopedManager, is_tenant_model

PROJECT_APPS = ("accounts", "profiles", "campaigns", "channels", "compliance")

# Models that point at Workspace but are deliberately not ordinary tenant tables.
NOT_TENANT_TABLES = {
    # auditlog writes through its own default manager; reads use `AuditEntry.scoped`, and entries
    # outlive their workspace (no FK constraint).
    "core.AuditEntry",
}
# Admins for models that are not tenant tables, with the reason they are safe.
GLOBAL_ADMINS = {
    "accounts.Workspace": "shows only the session's workspace, role-gated",
    "django_celery_beat.PeriodicTask": "installation-wide; model permissions, i.e. superusers only",
    "django_celery_beat.IntervalSchedule": "installation-wide; superusers only",
    "django_celery_beat.CrontabSchedule": "installation-wide; superusers only",
    "django_celery_beat.SolarSchedule": "installation-wide; superusers only",
    "django_celery_beat.ClockedSchedule": "installation-wide; superusers only",
}


def project_models():
    for label in ("core", *PROJECT_APPS):
        yield from apps.get_app_config(label).get_models()


def points_at_workspace(model) -> bool:
    return any(
        isinstance(f, models.ForeignKey) and f.related_model is Workspace for f in model._meta.get_fields()
    )


def test_every_model_pointing_at_a_workspace_is_a_tenant_model():
    offenders = [
        m._meta.label for m in project_models()
        if points_at_workspace(m) and not is_tenant_model(m) and m._meta.label not in NOT_TENANT_TABLES
    ]
    assert offenders == [], f"inherit core.models.WorkspaceScopedModel: {offenders}"


def test_tenant_models_have_a_scoped_default_and_a_named_unscoped_manager():
    for model in filter(is_tenant_model, project_models()):
        assert isinstance(model._default_manager, WorkspaceScopedManager), model
        # `objects` itself, not e.g. a reverse relation whose related_name shadows it
        assert isinstance(model.objects, WorkspaceScopedManager), f"{model._meta.label}.objects is shadowed"
        assert type(model.unscoped) is models.Manager, model


def _leading_fields(model):
    for index in model._meta.indexes:
        yield index.fields[0].lstrip("-") if index.fields else None
    for constraint in model._meta.constraints:
        fields = getattr(constraint, "fields", ())
        yield fields[0] if fields else None


def test_every_tenant_table_has_an_index_led_by_workspace():
    for model in filter(is_tenant_model, project_models()):
        assert "workspace" in set(_leading_fields(model)), f"{model._meta.label} has no workspace-led index"


# Random public ids that reach Ulak without a workspace around them, unique across workspaces.
GLOBALLY_UNIQUE = {
    "channels.ChannelConfig.channelconfig_unique_public_id": "names the configuration in provider webhook URLs",
    "channels.Delivery.delivery_unique_public_id": "in tracking links and the API's delivery_id",
    "campaigns.Campaign.campaign_unique_webhook_token": "names the campaign in its inbound-webhook trigger URL",
}


def test_every_unique_constraint_of_a_tenant_table_starts_with_workspace():
    for model in filter(is_tenant_model, project_models()):
        for constraint in model._meta.constraints:
            fields = getattr(constraint, "fields", ())
            if f"{model._meta.label}.{constraint.name}" in GLOBALLY_UNIQUE:
                continue
            if isinstance(constraint, models.UniqueConstraint) and fields:
                assert fields[0] == "workspace", f"{model._meta.label}.{constraint.name}"
        for field in model._meta.local_fields:
            assert not (field.unique and not field.primary_key), f"{model._meta.label}.{field.name} is globally unique"


def test_every_registered_admin_is_scoped_or_declared_global():
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if is_tenant_model(model) or label in NOT_TENANT_TABLES:
            assert isinstance(model_admin, WorkspaceScopedAdmin), f"{label} admin must use WorkspaceScopedAdmin"
        else:
            assert label in GLOBAL_ADMINS, f"{label} has an admin that is not workspace-scoped"
            if model._meta.app_label in PROJECT_APPS:
                assert isinstance(model_admin, WorkspacePermissionAdminMixin), label


# Data-plane tables that opt out of per-row auditing (`audit_log = False`), with the reason.
NOT_AUDITED = {
    "core.AuditEntry": "the audit log itself",
    "profiles.Event": "ingested facts at hundreds of millions of rows; not management changes",
    "profiles.InboundOperation": "transient ingest queue",
    "profiles.SegmentMembership": "follows the data; entries and exits are events, not management changes",
    "profiles.Change": "the change feed: transient rows written with the data they describe, pruned after consumers",
    "profiles.ChangeFeedCursor": "consumer read positions, moved by every batch a consumer applies",
    "profiles.IngestDeadLetter": "ingest operations the processor could not apply (data plane, written by the "
                                 "processor); replays and discards are recorded as audit actions",
    "channels.Delivery": "data plane; its history is DeliveryEvent",
    "channels.DeliveryEvent": "provider feedback at message volume",
    "channels.DeliveryActivity": "counters of delivery activity per 15 minutes, written with each delivery change",
    "channels.InboundMessage": "messages people send; data, not management changes",
    "channels.ConsentRecord": "the consent ledger is itself an append-only record",
    "channels.SubscriptionPreference": "every change is a consent ledger row",
    "channels.ReportingWebhookCall": "outgoing queue of metric events",
    "campaigns.CampaignTrigger": "an index rebuilt from the campaign's own (audited) rules",
    "campaigns.Journey": "runs at message volume; their history is the step log",
    "campaigns.JourneyStep": "the step log itself, at message volume",
    "campaigns.BroadcastTrigger": "requests to send, at API volume; recorded as api_request audit actions",
    "campaigns.BroadcastError": "per-recipient problems of a broadcast trigger",
    "campaigns.CampaignVersion": "a copy of a campaign definition kept when it is published; the edit itself "
                                 "is audited on the campaign",
    "campaigns.VariantDecision": "an A/B test's sequential state and winner, written by a beat task "
                                 "(journeys.evaluate_experiments) from the campaign's own (audited) definition",
}


def test_every_project_app_above_core_opts_in_to_the_audit_log():
    assert {c.label for c in apps.get_app_configs() if getattr(c, "audited", False)} == set(PROJECT_APPS)


def test_every_project_model_is_audited_unless_listed():
    missing = [m._meta.label for m in audited_models() if not auditlog.contains(m)]
    assert missing == []
    not_audited = {m._meta.label for m in project_models()} - {m._meta.label for m in audited_models()}
    assert not_audited == set(NOT_AUDITED)
    for label in not_audited:
        assert not auditlog.contains(apps.get_model(label)), label
