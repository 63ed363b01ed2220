"""Message content owned by a workspace: snippets, email layouts and message contents.

Templates are Liquid (channels/content/templating.py). Every content row carries a `version` that
the services raise on each edit; parsed templates are cached by (table, pk, version). Snippet and
Layout keep the table names they had when they lived in campaigns (docs/architecture.md).
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
        db_table = "campaigns_snippet"
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="snippet_unique_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Layout(VersionedContent):
    """An email wrapper; the message body goes where the layout says `{{ content }}`."""

    name = models.CharField(max_length=150)
    body = models.TextField(help_text="HTML with {{ content }} where the message goes")

    class Meta:
        db_table = "campaigns_layout"
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="layout_unique_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class MessageContent(VersionedContent):
    """What one message says, as templates: the record a transactional message (and, next, a
    campaign send step or an A/B variant) points at, and a delivery renders.

    Channel-specific fields (push title, WhatsApp template, webhook request) live in `payload`,
    whose string values are Liquid templates too. `version` rises with every edit and keys the
    parsed-template cache.
    """

    layout = models.ForeignKey(Layout, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True, help_text="Email HTML, SMS/WhatsApp text, push or in-app message")
    body_mjml = models.TextField(blank=True, help_text="An email written in MJML; when set, body is compiled from it")
    body_plain = models.TextField(blank=True, help_text="Email plain-text part; empty derives it from the HTML")
    from_address = models.CharField(max_length=255, blank=True, help_text="Empty: the channel's sender")
    reply_to = models.CharField(max_length=255, blank=True)
    preheader = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "message content"
        indexes = [models.Index(fields=["workspace", "layout"], name="content_ws_layout")]

    def __str__(self):
        return f"message content #{self.pk}"
