"""Message content owned by a workspace: snippets, email layouts and transactional messages.

Templates are Liquid (campaigns/templating.py). Every content row carries a `version` that the
services raise on each edit; parsed templates are cached by (table, pk, version).
"""

from django.db import models

from core.models import WorkspaceScopedModel


class VersionedContent(WorkspaceScopedModel):
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_exclude_fields = ("updated_at",)

    class Meta:
        abstract = True


class Snippet(VersionedContent):
    """A reusable piece of content, available in every template as `{{ snippets.<name> }}`."""

    name = models.SlugField(max_length=100, help_text="Used as {{ snippets.<name> }}; letters, digits, _ and -")
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="snippet_unique_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Layout(VersionedContent):
    """An email wrapper; the message body goes where the layout says `{{ content }}`."""

    name = models.CharField(max_length=150)
    body = models.TextField(help_text="HTML with {{ content }} where the message goes")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="layout_unique_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class TransactionalMessage(VersionedContent):
    """A message template sent through `POST /v1/send/<channel>` (Customer.io "transactional message").

    Channel-specific fields (push title, WhatsApp template, webhook request) live in `payload`,
    whose string values are Liquid templates too.
    """

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
    layout = models.ForeignKey(Layout, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True, help_text="Email HTML, SMS/WhatsApp text, push or in-app message")
    body_plain = models.TextField(blank=True, help_text="Email plain-text part; empty derives it from the HTML")
    from_address = models.CharField(max_length=255, blank=True, help_text="Empty: the channel's sender")
    reply_to = models.CharField(max_length=255, blank=True)
    preheader = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    send_to_unsubscribed = models.BooleanField(
        default=True, help_text="Transactional messages reach people who opted out of topics (never suppressed ones)")
    tracked = models.BooleanField(default=True, help_text="Open and click tracking for email")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="transactional_unique_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name
