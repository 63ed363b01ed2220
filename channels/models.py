"""Channels: provider configurations, deliveries and their history, consent and suppression,
inbound messages and keyword rules, reporting webhooks."""

import secrets

from django.db import models
from django.db.models import Q

from channels.content.models import Layout, MessageContent, Snippet, VersionedContent  # noqa: F401  (models of this app)
from core.models import WorkspaceScopedModel


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


class ChannelType(models.TextChoices):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    PUSH = "push"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class ProviderKind(models.TextChoices):
    SMTP = "smtp"
    ANYMAIL = "anymail"
    TWILIO = "twilio"
    HTTP_SMS = "http_sms"
    WHATSAPP_CLOUD = "whatsapp_cloud"
    FCM = "fcm"
    APNS = "apns"
    WEBHOOK = "webhook"
    INBOX = "inbox"
    # Development only: stores what would be sent and shows it in the console's demo inbox
    # (channels/providers/demo.py). Used only by a configuration created with it explicitly.
    DEMO = "demo", "demo inbox (development: nothing is sent)"


PROVIDERS_BY_CHANNEL = {
    ChannelType.EMAIL: (ProviderKind.SMTP, ProviderKind.ANYMAIL, ProviderKind.DEMO),
    ChannelType.SMS: (ProviderKind.TWILIO, ProviderKind.HTTP_SMS, ProviderKind.DEMO),
    ChannelType.WHATSAPP: (ProviderKind.WHATSAPP_CLOUD, ProviderKind.DEMO),
    ChannelType.PUSH: (ProviderKind.FCM, ProviderKind.APNS, ProviderKind.DEMO),
    ChannelType.WEBHOOK: (ProviderKind.WEBHOOK,),
    ChannelType.IN_APP: (ProviderKind.INBOX,),
}


class ChannelConfig(WorkspaceScopedModel):
    """One way of reaching people: a provider, its settings and encrypted credentials.

    `settings` holds what may be shown (hosts, account ids, base URLs); `secrets_encrypted` holds
    a Fernet token of a JSON object (passwords, auth tokens, private keys) and is write-only on
    every surface. `public_id` names the configuration in provider webhook URLs.
    """

    name = models.CharField(max_length=150)
    type = models.CharField(max_length=10, choices=ChannelType.choices)
    provider = models.CharField(max_length=20, choices=ProviderKind.choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    sender = models.CharField(max_length=255, blank=True,
                              help_text="From address, phone number, sender id or WhatsApp phone number id")
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True,
                                                        help_text="Empty: no limit")
    tracking_enabled = models.BooleanField(default=True, help_text="Email open and click tracking")
    is_default = models.BooleanField(default=False, help_text="Used when a message names no configuration")
    active = models.BooleanField(default=True)
    public_id = models.CharField(max_length=32, default=new_public_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("updated_at", "secrets_encrypted")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="channelconfig_unique_name"),
            models.UniqueConstraint(fields=["workspace", "type"], condition=Q(is_default=True),
                                    name="channelconfig_one_default_per_type"),
            models.UniqueConstraint(fields=["public_id"], name="channelconfig_unique_public_id"),
        ]
        ordering = ["type", "name"]

    def __str__(self):
        return f"{self.name} ({self.type}/{self.provider})"


class SubscriptionTopic(WorkspaceScopedModel):
    """A kind of message people can opt in to or out of (newsletter, product updates...)."""

    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    default_subscribed = models.BooleanField(
        default=True, help_text="Opt-out topic (subscribed until they say no) or opt-in topic")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="topic_unique_key")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class ConsentSource(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    PREFERENCES_PAGE = "preferences_page"
    KEYWORD = "keyword"
    PROVIDER = "provider", "provider feedback (bounce, complaint)"
    IMPORT = "import"


class SubscriptionPreference(WorkspaceScopedModel):
    """A person's current choice for a channel and/or topic; the ledger keeps how it came about.

    channel '' means every channel; topic NULL means every topic of that channel.
    """

    profile = models.ForeignKey("profiles.Profile", on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.CharField(max_length=10, choices=ChannelType.choices, blank=True)
    topic = models.ForeignKey(SubscriptionTopic, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+", db_index=False)
    subscribed = models.BooleanField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    updated_at = models.DateTimeField(auto_now=True)

    audit_log = False  # every change is in the consent ledger, which is the record

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "profile", "channel", "topic"], nulls_distinct=False,
                                    name="preference_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "topic", "subscribed"], name="preference_ws_topic")]


class ConsentRecord(WorkspaceScopedModel):
    """The consent ledger: append-only (a database trigger refuses updates and deletes, except the
    compliance deletion of the person, which sets `ulak.consent_redaction`)."""

    class Action(models.TextChoices):
        OPT_IN = "opt_in"
        OPT_OUT = "opt_out"

    profile = models.ForeignKey("profiles.Profile", null=True, on_delete=models.DO_NOTHING, related_name="+",
                                db_index=False, db_constraint=False)
    channel = models.CharField(max_length=10, choices=ChannelType.choices, blank=True)
    topic_key = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    evidence = models.JSONField(default=dict, blank=True,
                                help_text="How it was given: IP, user agent, keyword text, message id")
    created_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("evidence",)
    audit_log = False  # append-only ledger; it is its own record

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "profile", "created_at"], name="consent_ws_profile"),
            models.Index(fields=["workspace", "created_at"], name="consent_ws_created"),
        ]


class Suppression(WorkspaceScopedModel):
    """An address no message may reach on a channel, whoever asks (transactional included)."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce"
        COMPLAINT = "complaint"
        STOP = "stop", "STOP keyword"
        INVALID = "invalid", "invalid address or token"
        MANUAL = "manual"

    channel = models.CharField(max_length=10, choices=ChannelType.choices)
    address = models.CharField(max_length=512, help_text="Normalised: lower-case email, E.164 phone")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    profile = models.ForeignKey("profiles.Profile", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", db_index=False)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("address", "note")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "channel", "address"], name="suppression_unique_address"),
        ]
        indexes = [models.Index(fields=["workspace", "profile"], name="suppression_ws_profile")]

    def __str__(self):
        return f"{self.channel} suppression ({self.reason})"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    CONVERTED = "converted"
    BOUNCED = "bounced"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    UNDELIVERABLE = "undeliverable"


# Terminal before hand-off: the provider was never called.
NOT_SENT_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED, DeliveryStatus.UNDELIVERABLE)
# Later feedback only moves a delivery forward along this order (a late "delivered" after "opened"
# is recorded as an event but does not move the status back).
STATUS_RANK = {
    DeliveryStatus.QUEUED: 0, DeliveryStatus.SENDING: 1, DeliveryStatus.SENT: 2, DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.OPENED: 4, DeliveryStatus.CLICKED: 5, DeliveryStatus.CONVERTED: 6,
    DeliveryStatus.BOUNCED: 7, DeliveryStatus.FAILED: 7, DeliveryStatus.SUPPRESSED: 7,
    DeliveryStatus.UNDELIVERABLE: 7,
}


class Delivery(WorkspaceScopedModel):
    """One message to one person on one channel, from the moment it is asked for.

    Created in the caller's transaction; the send task claims it (row lock + state check), marks
    `send_started_at` right before the provider call and records the result. A task that finds
    the call started but no result never calls again (see docs/messaging.md).
    """

    class Source(models.TextChoices):
        TRANSACTIONAL = "transactional"
        CAMPAIGN = "campaign"
        BROADCAST = "broadcast"
        AUTO_REPLY = "auto_reply", "keyword auto-reply"
        TEST = "test", "test send"

    public_id = models.CharField(max_length=32, default=new_public_id, editable=False)
    profile = models.ForeignKey("profiles.Profile", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+", db_index=False)
    channel = models.CharField(max_length=10, choices=ChannelType.choices)
    channel_config = models.ForeignKey(ChannelConfig, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+", db_index=False)
    source = models.CharField(max_length=20, choices=Source.choices)
    source_id = models.CharField(max_length=64, blank=True,
                                 help_text="Transactional message, campaign or broadcast id")
    message_content = models.ForeignKey(MessageContent, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+", db_index=False,
                                        help_text="The content rendered; `content` overrides its fields")
    topic = models.ForeignKey(SubscriptionTopic, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", db_index=False)
    variant = models.CharField(max_length=50, blank=True)
    recipient = models.CharField(max_length=512, blank=True,
                                 help_text="Email address, phone number, device token(s) or URL")
    # What to render (inline content overrides the template's fields) and the data it sees.
    content = models.JSONField(default=dict, blank=True)
    message_data = models.JSONField(default=dict, blank=True)
    # What was rendered and handed to the provider; emptied per the retention setting.
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True)
    body_plain = models.TextField(blank=True)
    rendered_payload = models.JSONField(default=dict, blank=True)
    retain_content = models.BooleanField(default=True, help_text="False: disable_message_retention")
    content_purged_at = models.DateTimeField(null=True, blank=True)
    send_to_unsubscribed = models.BooleanField(default=False)
    tracked = models.BooleanField(default=True)
    status = models.CharField(max_length=15, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    failure_reason = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=200)
    attempts = models.PositiveSmallIntegerField(default=0)
    send_at = models.DateTimeField(null=True, blank=True, help_text="Not before this time")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=64, blank=True, help_text="Id of the task that holds the claim")
    send_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    personal_data_fields = ("recipient", "content", "message_data", "subject", "body", "body_plain",
                            "rendered_payload")
    audit_log = False  # data plane; its history is DeliveryEvent

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="delivery_unique_idempotency_key"),
            models.UniqueConstraint(fields=["public_id"], name="delivery_unique_public_id"),
        ]
        indexes = [
            models.Index(fields=["workspace", "profile", "created_at"], name="delivery_ws_profile"),
            models.Index(fields=["workspace", "created_at"], name="delivery_ws_created"),
            models.Index(fields=["workspace", "source", "source_id"], name="delivery_ws_source"),
            models.Index(fields=["workspace", "provider_message_id"], name="delivery_ws_provider_id",
                         condition=~Q(provider_message_id="")),
            models.Index(fields=["workspace", "status", "send_at"], name="delivery_ws_pending",
                         condition=Q(status__in=["queued", "sending"])),
            # The batch claim (channels/batching.py): a configuration's queued campaign and broadcast
            # deliveries in id order, without walking the rows already sent.
            models.Index(fields=["workspace", "channel_config", "id"], name="delivery_ws_config_batch",
                         condition=Q(status="queued", source__in=["campaign", "broadcast"])),
            models.Index(fields=["workspace", "created_at"], name="delivery_ws_content_kept",
                         condition=Q(content_purged_at__isnull=True)),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.channel} delivery {self.public_id}"

    @property
    def transactional_message_id(self) -> int | None:
        """The transactional message this delivery was sent for (its source), if any."""
        if self.source == self.Source.TRANSACTIONAL and self.source_id.isdigit():
            return int(self.source_id)
        return None


class DeliveryEvent(WorkspaceScopedModel):
    """One thing that happened to a delivery: queued, sent, delivered, opened, clicked, failed..."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=20)
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    personal_data_fields = ("data",)
    audit_log = False

    class Meta:
        indexes = [models.Index(fields=["workspace", "delivery", "at"], name="deliveryevent_ws_delivery")]
        ordering = ["at", "pk"]

    def __str__(self):
        return self.kind


class InboundMessage(WorkspaceScopedModel):
    """An SMS or WhatsApp message a person sent to one of the workspace's numbers."""

    channel_config = models.ForeignKey(ChannelConfig, on_delete=models.PROTECT, related_name="+", db_index=False)
    channel = models.CharField(max_length=10, choices=ChannelType.choices)
    profile = models.ForeignKey("profiles.Profile", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+", db_index=False)
    from_address = models.CharField(max_length=64)
    to_address = models.CharField(max_length=64, blank=True)
    body = models.TextField(blank=True)
    media = models.JSONField(default=list, blank=True)
    provider_message_id = models.CharField(max_length=255)
    keyword = models.CharField(max_length=50, blank=True, help_text="The keyword rule it matched, if any")
    received_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("from_address", "body", "media")
    audit_log = False

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "channel_config", "provider_message_id"],
                                    name="inbound_unique_provider_id"),
        ]
        indexes = [
            models.Index(fields=["workspace", "profile", "received_at"], name="inbound_ws_profile"),
            models.Index(fields=["workspace", "received_at"], name="inbound_ws_received"),
        ]

    def __str__(self):
        return f"{self.channel} message {self.provider_message_id}"


class KeywordRule(WorkspaceScopedModel):
    """What an inbound message that is exactly one keyword does.

    Built-in rules (STOP/IPTAL..., START/BASLA..., HELP/YARDIM) apply without rows; a row with the
    same keyword overrides the reply text. Keywords are stored folded (see channels/keywords.py).
    """

    class Action(models.TextChoices):
        OPT_OUT = "opt_out"
        OPT_IN = "opt_in"
        HELP = "help"
        CUSTOM = "custom"

    channel_config = models.ForeignKey(ChannelConfig, null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="+", db_index=False, help_text="Empty: every SMS/WhatsApp channel")
    keyword = models.CharField(max_length=50)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.CUSTOM)
    reply = models.TextField(blank=True, help_text="Auto-reply text; empty sends none")
    event_name = models.CharField(max_length=100, blank=True,
                                  help_text="Extra person event to record besides sms_received/whatsapp_received")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "channel_config", "keyword"], nulls_distinct=False,
                                    name="keyword_unique"),
        ]
        ordering = ["keyword"]

    def __str__(self):
        return self.keyword


class ReportingWebhook(WorkspaceScopedModel):
    """A URL that receives delivery metrics, signed as Customer.io signs its reporting webhooks."""

    name = models.CharField(max_length=150)
    url = models.URLField(max_length=1000)
    secret_encrypted = models.TextField(editable=False)
    events = models.JSONField(default=list, blank=True, help_text="Delivery event kinds; empty: all")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_exclude_fields = ("secret_encrypted",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="reportingwebhook_unique_name")]

    def __str__(self):
        return self.name


class ReportingWebhookCall(WorkspaceScopedModel):
    """One event owed to one reporting webhook; kept until sent or given up, so none is lost."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    webhook = models.ForeignKey(ReportingWebhook, on_delete=models.CASCADE, related_name="+", db_index=False)
    delivery = models.ForeignKey(Delivery, null=True, on_delete=models.CASCADE, related_name="+", db_index=False)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    personal_data_fields = ("payload",)
    audit_log = False

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "state", "next_attempt_at"], name="reportingcall_ws_due",
                         condition=Q(state="pending")),
            models.Index(fields=["workspace", "delivery"], name="reportingcall_ws_delivery"),
        ]


class DemoMessage(WorkspaceScopedModel):
    """What a demo-provider configuration would have sent: the rendered message as its provider
    received it, shown in the console's demo inbox. Nothing here reached anyone.

    One row per delivery (the provider's idempotency: the delivery's public id), written by the
    provider call (channels/providers/demo.py) and removed with the delivery (the compliance
    deletion of the person, and the retention purge of the delivery's content)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.CharField(max_length=10, choices=ChannelType.choices)
    recipient = models.CharField(max_length=512)
    sender = models.CharField(max_length=255, blank=True)
    reply_to = models.CharField(max_length=255, blank=True)
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True, help_text="Email: the HTML as sent (empty for a text-only email)")
    body_plain = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    # Push title, image, link, data and device tokens; WhatsApp template or media; email
    # attachments (by name, type and size) and bcc.
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    personal_data_fields = ("recipient", "reply_to", "subject", "body", "body_plain", "headers", "payload")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "delivery"], name="demomessage_unique_delivery"),
        ]
        indexes = [models.Index(fields=["workspace", "-id"], name="demomessage_ws_newest")]
        verbose_name = "demo message"
        verbose_name_plural = "demo messages"

    def __str__(self):
        return f"{self.channel} demo message #{self.pk}"


from channels.activity import DeliveryActivity  # noqa: E402,F401  (the daily activity rollup's model)
