from django.conf import settings
from django.db import models
from django.utils import timezone

from core.models import WorkspaceScopedModel


# --- deletion and suppression ---------------------------------------------------------------------

class IdentifierKind(models.TextChoices):
    ID = "id", "id"
    EMAIL = "email", "email"
    PHONE = "phone", "phone"
    CIO_ID = "cio_id", "cio_id"


class DeletionSource(models.TextChoices):
    ADMIN = "admin", "Admin console"
    API = "api", "App API"
    TRACK = "track", "Track API"
    CLI = "cli", "Management command"


class DeletionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class DeletionRecord(WorkspaceScopedModel):
    """A request to forget a person and, once completed, the permanent record that it was done.

    The issue names a DeletionRequest and a DeletionRecord; they are one row here: a request is
    a record whose status is not yet `completed` (`DeletionRequest` below is an alias). It holds
    no personal data: the identifier is kept only as a keyed hash, and the person is named by
    `profile_id`, a plain integer resolved when the request was made (no foreign key: the
    profile is gone afterwards while the record stays). `progress` names the steps already done
    so a job that crashed resumes where it stopped; `counts` holds the rows removed per table.
    """

    identifier_type = models.CharField(max_length=10, choices=IdentifierKind.choices)
    identifier_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 with the workspace secret")
    profile_id = models.BigIntegerField(null=True, blank=True, help_text="The person found at request time")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, choices=DeletionSource.choices)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=DeletionStatus.choices, default=DeletionStatus.PENDING)
    progress = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_str_is_safe = True
    # The job's bookkeeping; "deletion_requested"/"deletion_completed" actions are audited instead.
    audit_exclude_fields = ("progress", "counts", "status", "started_at", "completed_at", "updated_at")

    class Meta:
        verbose_name = "deletion record"
        indexes = [
            models.Index(fields=["workspace", "-requested_at"], name="deletion_ws_requested"),
            models.Index(fields=["workspace", "status", "updated_at"], name="deletion_ws_status"),
        ]

    def __str__(self):
        return f"deletion #{self.pk} ({self.status})"


DeletionRequest = DeletionRecord  # the name for a record that is not completed yet
