"""Reverse ETL sources and their runs (docs/reverse-etl.md). Imported by profiles/models.py, so they
are models of the profiles app (tables `profiles_datasource`, `profiles_syncrun`)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import WorkspaceScopedModel


class SourceKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"


class IdentifierKind(models.TextChoices):
    ID = "id", "id"
    EMAIL = "email", "email"


class DataSource(WorkspaceScopedModel):
    """A database or warehouse of the workspace, read by a query on a schedule: each row is one
    person (named by `identifier_column`), whose `attribute_columns` become attributes through the
    same staged ingest path as a Track identify call. The password is stored encrypted (core.crypto)
    and never shown. With a `cursor_column`, a run reads only rows past `cursor_value` (the highest
    value the last successful run reached)."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    database = models.CharField(max_length=255)
    username = models.CharField(max_length=255)
    password_encrypted = models.TextField(blank=True, editable=False)
    require_tls = models.BooleanField(default=False, help_text="Refuse to connect without TLS.")
    query = models.TextField(help_text="One read-only SELECT (or WITH … SELECT); it runs in a read-only transaction.")
    identifier_column = models.CharField(max_length=255, help_text="The column that says who each row is.")
    identifier_kind = models.CharField(max_length=10, choices=IdentifierKind.choices, default=IdentifierKind.ID)
    attribute_columns = models.JSONField(default=list, blank=True,
                                         help_text="Columns that become attributes; empty: every column but the "
                                                   "identifier and cursor columns.")
    cursor_column = models.CharField(max_length=255, blank=True,
                                     help_text="For incremental syncs: a column that grows when a row changes "
                                               "(e.g. updated_at).")
    cursor_value = models.JSONField(null=True, blank=True, editable=False,
                                    help_text="The highest cursor value a run reached: {type, value}.")
    schedule_minutes = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="Sync every this many minutes; empty: only when asked.")
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True, help_text="Scheduled syncs run only while enabled.")
    max_rows = models.PositiveIntegerField(default=100_000)
    max_bytes = models.PositiveBigIntegerField(default=100 * 1024 * 1024)
    max_seconds = models.PositiveIntegerField(default=600)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("password_encrypted", "cursor_value", "next_run_at", "updated_at")

    class Meta:
        verbose_name = "data source"
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="datasource_ws_name")]
        indexes = [models.Index(fields=["next_run_at"], condition=Q(next_run_at__isnull=False),
                                name="datasource_due")]

    def __str__(self):
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    LIMITED = "limited", "Stopped at a limit"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Asked for"


class SyncRun(WorkspaceScopedModel):
    """One sync of a source: what it read, staged and refused, and where its cursor got to.

    `errors` holds per-row problems (row number, column, message; the first 100), never a row's
    values. At most one run per source is queued or running (a partial unique index)."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="runs", db_index=False)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    full = models.BooleanField(default=False, help_text="Read every row, ignoring the cursor.")
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_applied = models.PositiveBigIntegerField(default=0, help_text="Staged for ingest.")
    rows_rejected = models.PositiveBigIntegerField(default=0, help_text="Invalid rows, and rows naming deleted people.")
    rows_suppressed = models.PositiveBigIntegerField(default=0,
                                                     help_text="Of the rejected: rows naming a person deleted at "
                                                               "their request.")
    bytes_read = models.PositiveBigIntegerField(default=0)
    limit_hit = models.CharField(max_length=10, blank=True, help_text="rows, bytes or seconds")
    errors = models.JSONField(default=list, blank=True, help_text="Per-row errors: row, column, message (the first 100)")
    error = models.TextField(blank=True, help_text="Why the run failed or stopped.")
    cursor_from = models.JSONField(null=True, blank=True)
    cursor_to = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # A run is created by someone (audited); its progress is written with queryset updates.
    audit_exclude_fields = ("rows_read", "rows_applied", "rows_rejected", "rows_suppressed", "bytes_read", "errors",
                            "cursor_from", "cursor_to", "updated_at")

    class Meta:
        verbose_name = "sync run"
        indexes = [
            models.Index(fields=["workspace", "source", "-id"], name="syncrun_ws_source_id"),
            models.Index(fields=["status", "updated_at"], condition=Q(status__in=["queued", "running"]),
                         name="syncrun_active"),
        ]
        constraints = [models.UniqueConstraint(fields=["workspace", "source"], condition=Q(status__in=["queued", "running"]),
                                               name="syncrun_one_active")]

    def __str__(self):
        return f"sync #{self.pk} of {self.source_id}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.updated_at
        return round(max((end - self.started_at).total_seconds(), 0.0), 3)
