"""Campaign-side message definitions: transactional messages.

A transactional message names its sending settings (channel, configuration, topic, tracking) and
points at the MessageContent it sends (channels/content/models.py). Its `version` rises with every
edit of the message or its content and is visible to templates as `message.version`.
"""

from django.db import models

from channels.content.models import MessageContent, VersionedContent


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
