"""Campaign-side definitions: transactional messages, campaigns (triggered and broadcast) and
their journeys (runs) with the step log.

A transactional message names its sending settings (channel, configuration, topic, tracking) and
points at the MessageContent it sends (channels/content/models.py). Its `version` rises with every
edit of the message or its content and is visible to templates as `message.version`.
"""

from django.db import models
from django.utils import timezone

from channels.content.models import MessageContent, VersionedContent
from core.models import WorkspaceScopedModel


class TransactionalMessage(VersionedContent):
    """A message template sent through `POST /v1/send/<channel>` (Customer.io "transactional message")."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        SMS = "sms"
        WHATSAPP = "whatsapp"
        PUSH = "push"
        IN_APP = "in_app"

    name = models.CharField(max_length=150, help_text="Also accepted as transactional_message_id (trigger name)")
    description = models.TextField(blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    channel_config = models.ForeignKey(
        "channels.ChannelConfig", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False, help_text="Empty: the workspace's default configuration for the channel",
    )
    topic = models.ForeignKey(
        "channels.SubscriptionTopic", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False, help_text="Opting out of this topic stops the message unless sent to unsubscribed",
    )
    content = models.ForeignKey(MessageContent, on_delete=models.PROTECT, related_name="+", db_index=False)
    send_to_unsubscribed = models.BooleanField(
        default=True, help_text="Transactional messages reach people who opted out of topics (never suppressed ones)")
    tracked = models.BooleanField(default=True, help_text="Open and click tracking for email")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="transactional_unique_name"),
                       models.UniqueConstraint(fields=["workspace", "content"], name="transactional_unique_content")]
        ordering = ["name"]

    def __str__(self):
        return self.name


# --- journeys ----------------------------------------------------------------------------------------
# A campaign (triggered or broadcast) holds its trigger, audience, re-entry, exit and goal rules and
# its workflow: a graph of steps with stable keys (docs/journeys.md). A journey is one run of the
# workflow for one person (or none, for webhook-triggered runs without a person). The engine lives
# in campaigns/journeys/.

class CampaignType(models.TextChoices):
    TRIGGERED = "triggered"
    BROADCAST = "broadcast"


class CampaignState(models.TextChoices):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused", "paused (runs hold where they are)"
    DRAINING = "draining", "stopped, draining (runs finish, nobody new enters)"
    STOPPED = "stopped"


class Campaign(WorkspaceScopedModel):
    key = models.CharField(max_length=100, blank=True,
                           help_text="Optional stable key (journeys as code: `ulak campaigns apply` matches on it)")
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=10, choices=CampaignType.choices, default=CampaignType.TRIGGERED)
    state = models.CharField(max_length=10, choices=CampaignState.choices, default=CampaignState.DRAFT)
    trigger = models.JSONField(default=dict, blank=True)
    audience = models.JSONField(null=True, blank=True, help_text="A condition tree checked at entry (null: everybody)")
    re_entry = models.JSONField(default=dict, blank=True)
    exit_rules = models.JSONField(default=dict, blank=True)
    goal = models.JSONField(null=True, blank=True)
    journey_key = models.CharField(max_length=150, blank=True,
                                   help_text="Trigger-data field whose value gives each key its own run")
    workflow = models.JSONField(default=dict, blank=True)
    # Delivery rules (campaigns/journeys/rules.py, docs/journeys.md "Delivery rules").
    priority = models.IntegerField(default=0, blank=True,
                                   help_text="Under a frequency cap, a higher priority goes first")
    exempt_from_caps = models.BooleanField(default=False, help_text="Its sends ignore the frequency caps")
    when_capped = models.CharField(max_length=4, choices=[("wait", "wait for the next allowed slot"),
                                                         ("skip", "skip the message")], default="wait", blank=True)
    when_quiet = models.CharField(max_length=4, choices=[("hold", "hold until quiet hours end"),
                                                        ("skip", "skip the message")], default="hold", blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    webhook_token = models.CharField(max_length=64, blank=True, editable=False)
    # The visual editor's layout (campaigns/admin_canvas.py): {"trigger": {"x", "y"}, "steps": {key: {"x", "y"}}}.
    # Not part of the definition: moving a node makes no version.
    canvas = models.JSONField(default=dict, blank=True, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("updated_at",)
    audit_str_is_safe = True

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], condition=~models.Q(key=""),
                                    name="campaign_unique_key"),
            models.UniqueConstraint(fields=["webhook_token"], condition=~models.Q(webhook_token=""),
                                    name="campaign_unique_webhook_token"),
        ]
        indexes = [models.Index(fields=["workspace", "state"], name="campaign_ws_state")]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name

    @property
    def admits(self) -> bool:
        """Whether new people may enter (active only: paused, draining and stopped admit nobody)."""
        return self.state == CampaignState.ACTIVE


class CampaignVersion(WorkspaceScopedModel):
    """One published version of a campaign's definition (docs/journeys.md "Versions"). A draft's
    edits rewrite its current version; an edit of a campaign that has been live makes the next one,
    keeping the old one with its author and time. `published` records what the publish did with the
    runs already in the campaign (stay, move by step key with a mapping for removed steps, or exit)
    and how many runs it affected at each step."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    number = models.PositiveIntegerField()
    definition = models.JSONField(default=dict, help_text="The campaign's definition (the API shape)")
    author = models.CharField(max_length=200, blank=True, help_text="Who published it (user, API key, CLI, system)")
    published = models.JSONField(default=dict, blank=True,
                                 help_text="What the publish did with live runs, and how many at each step")
    created_at = models.DateTimeField(default=timezone.now)

    audit_log = False  # the campaign's own audit entries record each edit
    audit_str_is_safe = True

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "campaign", "number"],
                                               name="campaignversion_unique_number")]
        ordering = ["-number"]

    def __str__(self):
        return f"version {self.number}"


class TriggerRole(models.TextChoices):
    TRIGGER = "trigger"
    EXIT = "exit"
    GOAL = "goal"


class CampaignTrigger(WorkspaceScopedModel):
    """The trigger-matching index: one row per (what a change must be, campaign, role), rebuilt
    when a campaign's rules change or it changes state. A batch of change-feed rows is matched with
    one query on (workspace, kind, key), whatever the number of campaigns."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    role = models.CharField(max_length=8, choices=TriggerRole.choices)
    kind = models.CharField(max_length=20, help_text="A change-feed kind (event, segment_entered, ...)")
    key = models.CharField(max_length=255, blank=True, help_text="Event name, segment id, attribute field...")

    audit_str_is_safe = True
    audit_log = False

    class Meta:
        indexes = [models.Index(fields=["workspace", "kind", "key"], name="campaigntrigger_match"),
                   models.Index(fields=["workspace", "campaign"], name="campaigntrigger_campaign")]

    def __str__(self):
        return f"{self.role} {self.kind}:{self.key}"


class JourneyState(models.TextChoices):
    ACTIVE = "active", "running (due now)"
    WAITING = "waiting"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"


LIVE_JOURNEY_STATES = (JourneyState.ACTIVE, JourneyState.WAITING)


class Journey(WorkspaceScopedModel):
    """One run of a campaign's workflow. `step` is the step it is at (a wait, or the next to run);
    `seq` counts step executions (each one's log row and delivery idempotency key). Due runs
    (`next_run_at` passed, live state) are claimed by the tick with FOR UPDATE SKIP LOCKED."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    profile = models.ForeignKey("profiles.Profile", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+", db_index=False)
    key = models.CharField(max_length=255, blank=True, help_text="The journey key's value, if the campaign has one")
    exclusive = models.BooleanField(default=True, help_text="At most one live run per person (and key)")
    state = models.CharField(max_length=10, choices=JourneyState.choices, default=JourneyState.ACTIVE)
    exit_reason = models.CharField(max_length=60, blank=True)
    step = models.CharField(max_length=64, blank=True)
    seq = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    wait = models.JSONField(default=dict, blank=True, help_text="What the run waits for at `step`")
    trigger_ref = models.CharField(max_length=120, blank=True,
                                   help_text="What started it (change:<id>, broadcast:<id>...): one run per ref")
    trigger_data = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="journey.* in templates")
    last_delivery = models.ForeignKey("channels.Delivery", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+", db_index=False)
    last_message_at = models.DateTimeField(null=True, blank=True, help_text="The last message sent, or held back "
                                           "by a holdout: the goal window counts from it")
    entered_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    version = models.PositiveIntegerField(default=1, help_text="The campaign version whose workflow the run follows")

    personal_data_fields = ("key", "trigger_data", "data", "wait")
    audit_log = False

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "campaign", "profile", "key"],
                                    condition=models.Q(state__in=["active", "waiting"], exclusive=True),
                                    name="journey_one_live_run"),
            models.UniqueConstraint(fields=["workspace", "campaign", "trigger_ref"], condition=~models.Q(trigger_ref=""),
                                    name="journey_unique_trigger_ref"),
        ]
        indexes = [
            models.Index(fields=["next_run_at"], condition=models.Q(state__in=["active", "waiting"]),
                         name="journey_due"),
            models.Index(fields=["workspace", "profile", "state"], name="journey_person"),
            models.Index(fields=["workspace", "campaign", "state", "step"], name="journey_campaign"),
        ]
        ordering = ["-entered_at", "-id"]

    def __str__(self):
        return f"journey #{self.pk}"

    @property
    def live(self) -> bool:
        return self.state in LIVE_JOURNEY_STATES


class JourneyStep(WorkspaceScopedModel):
    """The step log: one row per step execution of a journey (unique per journey and `seq`)."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    seq = models.PositiveIntegerField()
    step = models.CharField(max_length=64)
    type = models.CharField(max_length=20)
    outcome = models.CharField(max_length=40, help_text="sent, skipped, yes/no, waiting, matched, timeout, failed...")
    detail = models.JSONField(default=dict, blank=True)
    delivery = models.ForeignKey("channels.Delivery", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    personal_data_fields = ("detail",)
    audit_log = False

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "journey", "seq"], name="journeystep_unique_seq")]
        indexes = [models.Index(fields=["workspace", "campaign", "step", "outcome"], name="journeystep_metrics")]
        ordering = ["seq"]

    def __str__(self):
        return f"step {self.step} #{self.seq}"


class BroadcastTriggerState(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed", "started (recipients fixed, runs created)"
    FAILED = "failed"


class BroadcastTrigger(WorkspaceScopedModel):
    """One trigger of a broadcast (`POST /v1/campaigns/{id}/triggers`): its data, its audience, when
    it sends. Started by `journeys.start_broadcasts`: the recipients are fixed with one INSERT …
    SELECT of runs. The identifiers a request named (`audience`) are emptied once it has started."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    idempotency_key = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="trigger.* for every recipient")
    audience = models.JSONField(default=dict, blank=True, help_text="Who: the campaign's audience, a filter, "
                                                                   "ids, emails or per-user data")
    send_at = models.DateTimeField(null=True, blank=True)
    local_time = models.CharField(max_length=16, blank=True,
                                  help_text="YYYY-MM-DDTHH:MM in each recipient's time zone (instead of send_at)")
    state = models.CharField(max_length=10, choices=BroadcastTriggerState.choices, default=BroadcastTriggerState.PENDING)
    starts_at = models.DateTimeField(help_text="When the recipient list is fixed")
    recipients = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    audit_log = False
    personal_data_fields = ("audience",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "campaign", "idempotency_key"],
                                               condition=~models.Q(idempotency_key=""),
                                               name="broadcasttrigger_unique_key")]
        indexes = [models.Index(fields=["starts_at"], condition=models.Q(state="pending"), name="broadcasttrigger_due"),
                   models.Index(fields=["workspace", "campaign", "created_at"], name="broadcasttrigger_campaign")]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"trigger #{self.pk}"


class BroadcastError(WorkspaceScopedModel):
    """A recipient a broadcast trigger could not reach (e.g. an id that names nobody)."""

    trigger = models.ForeignKey(BroadcastTrigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    identifier = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    audit_log = False
    personal_data_fields = ("identifier",)

    class Meta:
        indexes = [models.Index(fields=["workspace", "trigger", "id"], name="broadcasterror_trigger")]
        ordering = ["id"]

    def __str__(self):
        return f"{self.reason}"


class DeliveryRules(WorkspaceScopedModel):
    """The workspace's delivery rules for marketing sends (campaign and broadcast send steps; never
    transactional): frequency caps, quiet hours, the global holdout. One row per workspace; no row
    means no rules. Checked and applied by campaigns/journeys/rules.py."""

    frequency_caps = models.JSONField(default=list, blank=True,
                                      help_text='[{"channel": "email" | null, "limit": N, "period": {"days": 1}}]')
    quiet_hours = models.JSONField(null=True, blank=True,
                                   help_text='{"start": "21:00", "end": "08:00", "timezone": "Europe/Istanbul"} or null')
    holdout_percent = models.PositiveSmallIntegerField(default=0, help_text="0 to 50: people who get no marketing")
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("updated_at",)
    audit_str_is_safe = True

    class Meta:
        verbose_name = verbose_name_plural = "delivery rules"
        constraints = [models.UniqueConstraint(fields=["workspace"], name="deliveryrules_one_per_workspace")]

    def __str__(self):
        return "Delivery rules"


class VariantDecision(WorkspaceScopedModel):
    """The automatic winner of one send step's A/B test (the step's `winner`, docs/journeys.md): the
    sequential tests' states per challenger between beat ticks and, once decided, the winning variant
    with the figures and time of the decision. Written by `journeys.evaluate_experiments`
    (campaigns/journeys/experiments.py); the engine sends the winner's content from then on."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    step = models.CharField(max_length=64, help_text="The send step's key")
    trigger = models.ForeignKey(BroadcastTrigger, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                                db_index=False, help_text="A broadcast A/B test's trigger (its sample's winner)")
    state = models.JSONField(default=dict, blank=True,
                             help_text="SequentialTest.state() per challenger variant key")
    winner = models.CharField(max_length=20, blank=True, help_text="The winning variant's key (blank: undecided)")
    decided_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text=(
        "A broadcast A/B test: when the trigger's first run reached the step (its sample's wait counts from it)"))
    figures = models.JSONField(default=dict, blank=True, help_text="Counts and p-values at the decision")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_log = False  # written by a beat task every minute; the campaign definition it follows is audited
    audit_str_is_safe = True

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "campaign", "step"], condition=models.Q(trigger=None),
                                               name="variantdecision_unique_step"),
                       models.UniqueConstraint(fields=["workspace", "trigger", "step"],
                                               condition=models.Q(trigger__isnull=False),
                                               name="variantdecision_unique_trigger_step")]

    def __str__(self):
        return f"{self.step}: {self.winner or 'undecided'}"
