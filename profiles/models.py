"""People and what they do."""

import secrets

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Func, Q
from django.db.models.functions import Cast, Now
from django.utils import timezone

from core.models import WorkspaceScopedModel


def new_cio_id() -> str:
    return secrets.token_hex(8)


class Profile(WorkspaceScopedModel):
    """A person. `external_id` is the Customer.io `id`; `cio_id` is Ulak's own stable id."""

    cio_id = models.CharField(max_length=32, default=new_cio_id, editable=False)
    external_id = models.CharField(max_length=150, null=True, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=20, null=True, blank=True, help_text="E.164")
    attributes = models.JSONField(default=dict, blank=True)
    attribute_timestamps = models.JSONField(default=dict, blank=True, editable=False)
    time_zone = models.CharField(max_length=64, blank=True)
    unsubscribed = models.BooleanField(default=False)
    suppressed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    personal_data_fields = ("external_id", "email", "phone", "attributes", "time_zone")
    audit_exclude_fields = ("attribute_timestamps", "updated_at")

    audit_name = "profile"  # the audit log's name for these rows (core.models.audit_name)

    class Meta:
        # The console speaks of people (the table and the API keep `profile`).
        verbose_name = "person"
        verbose_name_plural = "people"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "cio_id"], name="profile_unique_cio_id"),
            models.UniqueConstraint(
                fields=["workspace", "external_id"], condition=Q(external_id__isnull=False),
                name="profile_unique_external_id",
            ),
            models.UniqueConstraint(
                fields=["workspace", "email"], condition=Q(email__isnull=False), name="profile_unique_email"
            ),
        ]
        indexes = [models.Index(fields=["workspace", "phone"], name="profile_ws_phone")]

    def __str__(self):
        return self.external_id or self.email or self.cio_id


class Identity(WorkspaceScopedModel):
    """An anonymous id that has been linked to a profile."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities")
    anonymous_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("anonymous_id",)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "anonymous_id"], name="identity_unique_anonymous_id")
        ]

    def __str__(self):
        return self.anonymous_id


class DevicePlatform(models.TextChoices):
    IOS = "ios", "iOS"
    ANDROID = "android", "Android"
    WEB = "web", "Web"


class Device(WorkspaceScopedModel):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="devices")
    token = models.CharField(max_length=512)
    platform = models.CharField(max_length=10, choices=DevicePlatform.choices)
    attributes = models.JSONField(default=dict, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("token", "attributes")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "token"], name="device_unique_token")]

    def __str__(self):
        return f"{self.platform} device"


class EventType(models.TextChoices):
    EVENT = "event", "event"
    PAGE = "page", "page"
    SCREEN = "screen", "screen"


class Event(WorkspaceScopedModel):
    """Something a person (or an anonymous visitor) did. See docs/events-storage.md for scale."""

    # Indexed through (workspace, profile, -timestamp). No database constraint and no ORM cascade:
    # checking one on every profile delete would scan this table by profile_id alone. Deletion
    # (compliance.deletion) and merges remove or move a person's events first, by workspace.
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="events", db_index=False,
        db_constraint=False,
    )
    anonymous_id = models.CharField(max_length=200, null=True, blank=True)
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=10, choices=EventType.choices, default=EventType.EVENT)
    data = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    dedupe_id = models.CharField(max_length=200, null=True, blank=True)

    personal_data_fields = ("anonymous_id", "data")
    audit_log = False  # ingested facts, hundreds of millions of rows; see compliance/audit.py

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "dedupe_id"], condition=Q(dedupe_id__isnull=False), name="event_unique_dedupe_id"
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "profile", "-timestamp"], name="event_ws_profile_time"),
            models.Index(fields=["workspace", "name", "-timestamp"], name="event_ws_name_time"),
            models.Index(
                fields=["workspace", "anonymous_id"], condition=Q(profile__isnull=True), name="event_ws_anonymous"
            ),
            # Rows arrive in `received_at` order, so a block-range index (a few pages for 10 M rows,
            # next to nothing per insert) turns "events received today" into a read of today's blocks.
            BrinIndex(fields=["received_at"], name="event_received_brin"),
        ]

    def __str__(self):
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M}"


class ObjectType(WorkspaceScopedModel):
    """A kind of custom object (Customer.io "object type"), e.g. company or subscription."""

    type_id = models.CharField(max_length=64, help_text="The object_type_id clients send, e.g. \"1\"")
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_str_is_safe = True

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "type_id"], name="objecttype_unique_type_id")]

    def __str__(self):
        return self.name


class CustomObject(WorkspaceScopedModel):
    object_type = models.ForeignKey(ObjectType, on_delete=models.CASCADE, related_name="custom_objects")
    object_id = models.CharField(max_length=150)
    attributes = models.JSONField(default=dict, blank=True)
    attribute_timestamps = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("attribute_timestamps", "updated_at")

    class Meta:
        verbose_name = "object"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "object_type", "object_id"], name="object_unique_id")
        ]

    def __str__(self):
        return f"{self.object_type_id}:{self.object_id}"


class Relationship(WorkspaceScopedModel):
    """A person related to an object, with attributes of the relationship itself."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="relationships")
    object = models.ForeignKey(CustomObject, on_delete=models.CASCADE, related_name="relationships")
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    personal_data_fields = ("attributes",)
    audit_exclude_fields = ("updated_at",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "profile", "object"], name="relationship_unique_pair")
        ]

    def __str__(self):
        return f"person #{self.profile_id} → object #{self.object_id}"


class InboundOperation(WorkspaceScopedModel):
    """An accepted, validated ingest operation waiting to be applied.

    The API answers only after these rows commit; the ingest processor applies them in order and
    deletes them in the same transaction, so a crash leaves them to be applied again, whole.
    """

    source = models.CharField(max_length=10)
    payload = models.JSONField()
    received_at = models.DateTimeField()

    personal_data_fields = ("payload",)
    audit_log = False  # a transient queue, not a record

    class Meta:
        indexes = [models.Index(fields=["workspace", "id"], name="inbound_ws_id")]


class SegmentKind(models.TextChoices):
    DATA = "data", "Data-driven"
    MANUAL = "manual", "Manual"


class SegmentState(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Segment(WorkspaceScopedModel):
    """An audience: data-driven (a condition tree, kept live) or manual (people added by id)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.DATA)
    conditions = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Raised whenever the definition changes.")
    state = models.CharField(max_length=10, choices=SegmentState.choices, default=SegmentState.BUILDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent of the last full recompute.")
    member_count = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_str_is_safe = True
    audit_exclude_fields = ("progress", "member_count", "computed_at", "updated_at")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="segment_unique_name")]

    def __str__(self):
        return self.name


class SegmentMembership(WorkspaceScopedModel):
    """A person's time in a segment. Rows are history: leaving sets `exited_at`; a current member
    has exactly one row with `exited_at` null."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="segment_memberships",
                                db_index=False)
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    audit_log = False  # membership changes with data; entries and exits are events, not management

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "segment", "profile"], condition=Q(exited_at__isnull=True),
                                    name="membership_one_open_per_person")
        ]
        indexes = [
            models.Index(fields=["workspace", "segment", "-entered_at"], name="membership_ws_segment_time"),
            models.Index(fields=["workspace", "profile"], name="membership_ws_profile"),
        ]


# --- people deleted at their request: identifiers that must not come back --------------------------
# Owned here because ingest (this app) and inbound messages (channels) refuse them; compliance
# (the deletion job) creates and lifts them. Tables keep the names they had in compliance.

class WorkspaceSecret(WorkspaceScopedModel):
    """The workspace's key for hashing identifiers (HMAC-SHA256), Fernet-encrypted at rest."""

    key_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_exclude_fields = ("key_encrypted",)

    class Meta:
        db_table = "compliance_workspacesecret"
        constraints = [models.UniqueConstraint(fields=["workspace"], name="workspacesecret_unique_workspace")]

    def __str__(self):
        return f"secret of workspace #{self.workspace_id}"


class SuppressedKind(models.TextChoices):
    ID = "id", "id"
    EMAIL = "email", "email"
    PHONE = "phone", "phone"


class SuppressedIdentifier(WorkspaceScopedModel):
    """A hashed id/email/phone whose ingest operations are dropped until the suppression is lifted.

    `deletion_id` names the compliance deletion record that suppressed it (a plain id: the record
    lives in a higher layer)."""

    kind = models.CharField(max_length=10, choices=SuppressedKind.choices)
    hash = models.CharField(max_length=64)
    deletion_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dropped = models.PositiveBigIntegerField(default=0, help_text="Ingest operations dropped")

    audit_str_is_safe = True
    audit_exclude_fields = ("dropped",)

    class Meta:
        db_table = "compliance_suppressedidentifier"
        verbose_name = "suppressed identifier"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "hash"], condition=Q(lifted_at__isnull=True),
                name="suppression_unique_active",
            )
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="suppression_ws_created")]

    def __str__(self):
        return f"suppressed {self.kind} #{self.pk}"


# --- the change feed: what changed, for consumers in higher layers (docs/change-feed.md) ------------

# The writing transaction's id (xid8, 64 bits, never wraps) as a bigint, evaluated by PostgreSQL at
# INSERT time: every row a transaction writes carries the same value.
CURRENT_TXID = Cast(Cast(Func(function="pg_current_xact_id", output_field=models.TextField()),
                         output_field=models.TextField()), output_field=models.BigIntegerField())


class ChangeKind(models.TextChoices):
    EVENT = "event", "event stored"
    ATTRIBUTES = "attributes", "person created or changed"
    PERSON_MERGED = "person_merged", "person merged into another"
    SEGMENT_ENTERED = "segment_entered", "segment entered"
    SEGMENT_EXITED = "segment_exited", "segment exited"
    OBJECT = "object", "object created, changed or deleted"
    RELATIONSHIP = "relationship", "relationship added, changed or removed"
    INBOUND_MESSAGE = "inbound_message", "SMS/WhatsApp message received"


class Change(WorkspaceScopedModel):
    """One thing that changed, written in the transaction that changed it (profiles/changefeed).

    Consumers read a workspace's rows in (txid, id) order, only below the oldest transaction still
    running, so rows committed out of id order are never skipped. The shape of `data` per kind is
    in docs/change-feed.md. Rows are pruned once every registered consumer has passed them and
    they are older than ULAK_CHANGE_FEED_RETENTION_HOURS.
    """

    txid = models.BigIntegerField(db_default=CURRENT_TXID, editable=False)
    kind = models.CharField(max_length=20, choices=ChangeKind.choices)
    # Who it is about; a plain reference (no constraint, no cascade): the person may be merged away
    # or deleted after the row was written. compliance.deletion removes a deleted person's rows.
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+", db_index=False,
        db_constraint=False,
    )
    anonymous_id = models.CharField(max_length=200, null=True, blank=True)  # events of anonymous visitors
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    personal_data_fields = ("anonymous_id", "data")
    audit_log = False  # a transient feed written with the data it describes; not management changes

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "txid", "id"], name="change_ws_txid_id"),
            models.Index(fields=["workspace", "profile"], condition=Q(profile__isnull=False),
                         name="change_ws_profile"),
            models.Index(fields=["workspace", "anonymous_id"], condition=Q(profile__isnull=True,
                                                                           anonymous_id__isnull=False),
                         name="change_ws_anonymous"),
        ]

    def __str__(self):
        return f"{self.kind} #{self.pk}"


class ChangeFeedCursor(WorkspaceScopedModel):
    """How far one consumer has read one workspace's change feed: every row at or before
    (txid, change_id) has been applied. Locked FOR UPDATE while a batch is applied, and moved in the
    same transaction as the consumer's effects."""

    consumer = models.CharField(max_length=100)
    txid = models.BigIntegerField(default=0)
    change_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    audit_log = False  # bookkeeping that moves with every batch a consumer applies
    audit_str_is_safe = True

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "consumer"], name="changefeedcursor_unique_consumer")
        ]

    def __str__(self):
        return f"{self.consumer} at ({self.txid}, {self.change_id})"


# --- ingest dead letters: operations whose handler raised (docs/ingestion.md) ------------------------

class DeadLetterState(models.TextChoices):
    DEAD = "dead", "Dead (not applied)"
    REPLAYED = "replayed", "Replayed (staged again)"
    DISCARDED = "discarded", "Discarded"


class IngestDeadLetter(WorkspaceScopedModel):
    """A staged ingest operation that raised while being applied, kept with its error instead of
    being dropped. The processor writes it in the batch transaction that removes the operation from
    the queue. Replaying stages the payload again as a new InboundOperation (`replay_operation_id`),
    so it is applied in the workspace's order by the same processor path; if it fails again, this
    row goes back to `dead` with one more attempt."""

    source = models.CharField(max_length=10)
    payload = models.JSONField()
    received_at = models.DateTimeField()
    kind = models.CharField(max_length=40, help_text="The operation kind (payload `op`).")
    operation_id = models.BigIntegerField(help_text="The staged operation that failed last (a plain id).")
    error_type = models.CharField(max_length=200)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=10, choices=DeadLetterState.choices, default=DeadLetterState.DEAD)
    # The operation the last replay staged (a plain id: it is deleted once applied).
    replay_operation_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    failed_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    personal_data_fields = ("payload", "error_message")
    audit_log = False  # data-plane rows written by the processor; replays and discards are recorded actions

    class Meta:
        verbose_name = "ingest dead letter"
        indexes = [
            models.Index(fields=["workspace", "-id"], name="deadletter_ws_id"),
            models.Index(fields=["workspace", "state", "-id"], name="deadletter_ws_state_id"),
            models.Index(fields=["workspace", "replay_operation_id"], condition=Q(replay_operation_id__isnull=False),
                         name="deadletter_ws_replay_op"),
        ]

    def __str__(self):
        return f"{self.kind} dead letter #{self.pk}"


# --- CSV imports of people (profiles/imports.py, docs/console-imports.md) --------------------------------

class ImportState(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded (columns to map)"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PeopleImport(WorkspaceScopedModel):
    """A CSV file of people, mapped column by column and staged through the ingest path in chunks
    (so consent, deletion suppression and live segments apply as for the Track API). `content` is
    the file as text until the import ends, then emptied; `rows_read` is where the next chunk
    starts, so a worker killed mid-import resumes after the last chunk it committed."""

    file_name = models.CharField(max_length=255)
    content = models.TextField(blank=True)
    delimiter = models.CharField(max_length=1, default=",")
    columns = models.JSONField(default=list, blank=True, help_text="The header row")
    total_rows = models.PositiveIntegerField(default=0)
    mapping = models.JSONField(default=dict, blank=True,
                               help_text="Column → id, email, phone, unsubscribed, created_at, attribute:<name> or ignore")
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                db_index=False, help_text="A manual segment the imported people are added to")
    state = models.CharField(max_length=10, choices=ImportState.choices, default=ImportState.UPLOADED)
    rows_read = models.PositiveIntegerField(default=0)
    staged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Per-row errors: row, column, message (the first 1,000)")
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    personal_data_fields = ("content",)
    audit_exclude_fields = ("content", "rows_read", "staged", "rejected", "errors", "updated_at")

    class Meta:
        verbose_name = "people import"
        indexes = [models.Index(fields=["workspace", "-created_at"], name="peopleimport_ws_created"),
                   models.Index(fields=["state"], condition=Q(state__in=["queued", "running"]),
                                name="peopleimport_pending")]

    def __str__(self):
        return f"import of {self.file_name}"


# --- reverse ETL sources and runs (profiles/sources, docs/reverse-etl.md) -------------------------------

from profiles.sources.models import DataSource, SyncRun  # noqa: E402,F401  (models of this app)
