"""Console pages for messaging: channel configurations, topics, keyword rules, suppressions, the
consent ledger, deliveries, inbound messages and reporting webhooks (docs/console-messaging.md).

Who sees what (accounts/roles.py): channel configurations, keyword rules and reporting webhooks
are `view_channels`/`manage_channels`; deliveries and inbound messages `view_campaigns`; topics
`view_campaigns`/`change_campaigns`; suppressions `view_people`, added and lifted with
`manage_deletions`; the consent ledger `view_audit_log`, never changed.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Case, Count, FloatField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils.html import format_html, format_html_join

from channels import metrics as channel_metrics
from channels import selectors, services
from channels.admin_forms import (
    KEYWORD_CHANNELS, ChannelConfigForm, KeywordRuleForm, ReportingWebhookForm, SubscriptionTopicForm,
    SuppressionAddForm, load_provider,
)
from channels.configs import make_default, read_secrets
from channels.consent import normalize_address
from channels.keywords import fold_keyword
from channels.models import (
    ChannelConfig, ConsentRecord, Delivery, DeliveryEvent, DeliveryStatus, InboundMessage, KeywordRule, ProviderKind,
    ReportingWebhook, ReportingWebhookCall, SubscriptionTopic, Suppression,
)
from core.exporting import AdminExportMixin, FilterError, parse_format, parse_instant, streamed
from core.admin import (
    ReadOnlyWorkspaceInline, ReadOnlyWorkspaceScopedAdmin, ServiceBackedAdminMixin, WorkspaceScopedAdmin,
)
from profiles.admin import compact_json, pretty_json
from core.errors import ApiError

EXPORT_CHUNK = 2000  # consent rows per server-side cursor fetch
SHORT_TEXT = 80


def without_file_bodies(content: dict) -> dict:
    """Attachments are shown by name, type and size, not as megabytes of base64."""
    if not isinstance(content, dict) or not isinstance(content.get("attachments"), list):
        return content
    files = [{**item, "content_b64": f"[{len(item.get('content_b64') or '')} base64 characters]"}
             if isinstance(item, dict) else item for item in content["attachments"]]
    return {**content, "attachments": files}


def shorten(text: str, limit: int = SHORT_TEXT) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def without_delete_selected(actions: dict) -> dict:
    actions.pop("delete_selected", None)
    return actions


class ServiceBackedAdmin(ServiceBackedAdminMixin, WorkspaceScopedAdmin):
    """Writes go through channels services; a refusal rolls the admin's transaction back and
    returns to the page with the reason."""

    refusals = (ApiError, ValidationError)


# --- channel configurations -------------------------------------------------------------------------

def webhook_urls(config: ChannelConfig) -> list[tuple[str, str]]:
    """(what, URL) of each provider webhook to set up at the provider for this configuration."""
    base = settings.ULAK_PUBLIC_URL.rstrip("/")
    public_id = config.public_id
    if config.provider == ProviderKind.TWILIO:
        return [("Status callback", f"{base}/hooks/twilio/{public_id}/status"),
                ("Incoming messages", f"{base}/hooks/twilio/{public_id}/inbound")]
    if config.provider == ProviderKind.WHATSAPP_CLOUD:
        return [("Callback URL (verification and events)", f"{base}/hooks/whatsapp/{public_id}")]
    if config.provider == ProviderKind.ANYMAIL:
        esp = (config.settings or {}).get("esp") or "<esp>"
        return [("Tracking webhook", f"{base}/hooks/anymail/{public_id}/{esp}/tracking/")]
    return []


def describe_fields(fields: dict[str, bool]) -> str:
    return ", ".join(f"{name}{' (required)' if required else ''}" for name, required in fields.items()) or "none"


@admin.register(ChannelConfig)
class ChannelConfigAdmin(ServiceBackedAdmin):
    """Credentials are write-only; a configuration that has sent or received messages is
    deactivated, not deleted (its deliveries keep pointing at it)."""

    view_permission = "view_channels"
    change_permission = "manage_channels"
    form = ChannelConfigForm
    list_display = ["name", "type", "provider", "is_default", "active", "sender", "backlog_display",
                    "throughput_display"]
    list_filter = ["type", "provider", "active"]
    search_fields = ["name"]
    ordering = ["type", "name"]
    actions = ["make_default_action"]

    def get_queryset(self, request):
        """The changelist also shows each configuration's backlog (deliveries queued or being sent:
        a subquery) and throughput (messages sent a minute over the last 5 minutes, counted in
        Redis by channels/metrics.py and read for the workspace's configurations in one pipeline)."""
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is None or not match.url_name.endswith("_changelist"):
            return queryset
        pending = (Delivery.objects.for_workspace(request.workspace)
                   .filter(channel_config=OuterRef("pk"), status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING))
                   .order_by().values("channel_config").annotate(n=Count("pk")).values("n"))
        rates = channel_metrics.sent_per_minute(queryset.values_list("pk", flat=True))
        throughput = Case(*[When(pk=pk, then=Value(rate)) for pk, rate in rates.items() if rate],
                          default=Value(0.0), output_field=FloatField())
        return queryset.annotate(backlog=Coalesce(Subquery(pending), 0), throughput=throughput)

    @admin.display(description="backlog", ordering="backlog")
    def backlog_display(self, obj):
        return getattr(obj, "backlog", "–")

    @admin.display(description="sent a minute (5 min)", ordering="throughput")
    def throughput_display(self, obj):
        rate = getattr(obj, "throughput", None)
        return "–" if rate is None else f"{rate:,.1f}"
    readonly_fields = ["stored_secrets", "provider_fields", "public_id", "webhook_urls_display", "created_at",
                       "updated_at"]

    def get_fieldsets(self, request, obj=None):
        editing = self.has_change_permission(request, obj)
        credentials = ["settings", *(["secrets"] if editing else []), *(["stored_secrets"] if obj else []),
                       "provider_fields"]
        fieldsets = [
            (None, {"fields": ["name", "type", "provider", "sender", "active", "is_default"]}),
            ("Provider settings", {"fields": credentials}),
            ("Sending", {"fields": ["rate_limit_per_second", "tracking_enabled"]}),
        ]
        if obj is not None:
            fieldsets.append(("Provider webhooks", {"fields": ["public_id", "webhook_urls_display"]}))
            fieldsets.append(("Record", {"fields": ["created_at", "updated_at"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "type", "provider"] if obj is not None else self.readonly_fields

    def get_actions(self, request):
        return without_delete_selected(super().get_actions(request))

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        # Checked before Django's confirmation page, which would list every protected delivery.
        return obj is None or not self._in_use(obj)

    @staticmethod
    def _in_use(config) -> bool:
        return bool(selectors.channel_config_users(config))

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}
        if not data.get("secrets"):
            data.pop("secrets", None)
        if change:
            stored = ChannelConfig.objects.get(pk=obj.pk)
            # The form holds the whole settings object; the service merges: remove what was dropped.
            data["settings"] = {**dict.fromkeys(stored.settings or {}), **data.get("settings", {})}
            saved = self._apply(request, lambda: services.update_channel_config(config=stored, data=data))
        else:
            saved = self._apply(request, lambda: services.create_channel_config(workspace=request.workspace,
                                                                                data=data))
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (history entry, redirect)

    def delete_model(self, request, obj):
        self._apply(request, lambda: services.delete_channel_config(config=obj))

    @admin.action(description="Make the default for its channel", permissions=["change"])
    def make_default_action(self, request, queryset):
        by_type: dict[str, list[ChannelConfig]] = {}
        for config in queryset:
            by_type.setdefault(config.type, []).append(config)
        for channel, configs in sorted(by_type.items()):
            if len(configs) > 1:
                self.message_user(request, f"Select one {channel} configuration to make the default.", messages.ERROR)
            elif not configs[0].active:
                self.message_user(request, f"“{configs[0].name}” is inactive; activate it first.", messages.ERROR)
            else:
                make_default(configs[0])
                self.message_user(request, f"“{configs[0].name}” is now the default {channel} configuration.")

    @admin.display(description="stored secrets")
    def stored_secrets(self, obj):
        try:
            keys = sorted(read_secrets(obj))
        except ValueError:
            return "(stored, but cannot be decrypted with the current ULAK_FERNET_KEYS)"
        return f"set: {', '.join(keys)}" if keys else "none stored"

    @admin.display(description="fields of the provider")
    def provider_fields(self, obj):
        kinds = [obj.provider] if obj and obj.pk else list(ProviderKind)
        rows = []
        for kind in kinds:
            provider = load_provider(kind)
            if provider is None:
                rows.append((kind, "not available in this installation", ""))
            else:
                rows.append((kind, describe_fields(provider.settings_fields), describe_fields(provider.secret_fields)))
        return format_html("<table><tr><th>provider</th><th>settings</th><th>secrets</th></tr>{}</table>",
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="webhook URLs to set at the provider")
    def webhook_urls_display(self, obj):
        urls = webhook_urls(obj)
        if not urls:
            return "none needed for this provider"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: <code>{}</code></li>", urls))


# --- topics and keyword rules -----------------------------------------------------------------------

@admin.register(SubscriptionTopic)
class SubscriptionTopicAdmin(ServiceBackedAdmin):
    view_permission = "view_campaigns"
    change_permission = "change_campaigns"
    form = SubscriptionTopicForm
    list_display = ["name", "key", "default_subscribed", "created_at"]
    list_filter = ["default_subscribed"]
    search_fields = ["name", "=key"]
    ordering = ["name"]

    def get_fields(self, request, obj=None):
        fields = ["key", "name", "description", "default_subscribed"]
        return fields if obj is None else [*fields, "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # Preferences, the API and the ledger (topic_key) name topics by key: it stays as created.
        return [] if obj is None else ["key", "created_at"]

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}
        if change:
            stored = SubscriptionTopic.objects.get(pk=obj.pk)
            saved = self._apply(request, lambda: services.update_topic(topic=stored, data=data))
        else:
            saved = self._apply(request, lambda: services.create_topic(workspace=request.workspace, data=data))
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj):
        self._apply(request, lambda: services.delete_topic(topic=obj))

    def delete_queryset(self, request, queryset):
        self._apply(request, lambda: [services.delete_topic(topic=topic) for topic in queryset])


@admin.register(KeywordRule)
class KeywordRuleAdmin(WorkspaceScopedAdmin):
    view_permission = "view_channels"
    change_permission = "manage_channels"
    form = KeywordRuleForm
    fields = ["keyword", "channel_config", "action", "reply", "event_name", "active"]
    list_display = ["keyword", "action", "channel_config", "reply_short", "event_name", "active"]
    list_filter = ["action", "active"]
    list_select_related = ["channel_config"]
    search_fields = ["^keyword"]
    ordering = ["keyword", "pk"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "channel_config":
            field.queryset = field.queryset.filter(type__in=KEYWORD_CHANNELS)
        return field

    def get_search_results(self, request, queryset, search_term):
        term = fold_keyword(search_term)
        return (queryset.filter(keyword__startswith=term) if term else queryset), False

    @admin.display(description="reply")
    def reply_short(self, obj):
        return shorten(obj.reply) or "—"


# --- suppressions and the consent ledger ------------------------------------------------------------

@admin.register(Suppression)
class SuppressionAdmin(WorkspaceScopedAdmin):
    """Added (reason "manual", linked to the address's owner) and lifted through channels.services
    (channels.consent underneath); never edited in place."""

    view_permission = "view_people"
    change_permission = "manage_deletions"
    list_display = ["address", "channel", "reason", "profile", "created_at"]
    list_filter = ["channel", "reason"]
    list_select_related = ["profile"]
    search_fields = ["^address"]
    search_help_text = "An address (email, or phone in E.164), whole or its beginning."
    show_full_result_count = False
    ordering = ["-pk"]  # newest first through the primary key: no (workspace, time) index here
    readonly_fields = ["channel", "address", "reason", "profile", "note", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SuppressionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["channel", "address", "note"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        forms_of_term = {term, term.lower(), normalize_address("sms", term)}
        match = Q()
        for candidate in forms_of_term:
            match |= Q(address__startswith=candidate)
        return queryset.filter(match), False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved, _ = services.add_suppression(workspace=request.workspace, channel=data["channel"],
                                            address=data["address"], note=data.get("note") or "")
        obj.__dict__.update(saved.__dict__)  # the admin goes on with `obj` (history entry, redirect)

    def delete_model(self, request, obj):
        services.remove_suppression(workspace=request.workspace, channel=obj.channel, address=obj.address)

    def delete_queryset(self, request, queryset):
        for suppression in queryset:
            services.remove_suppression(workspace=request.workspace, channel=suppression.channel,
                                        address=suppression.address)


CONSENT_COLUMNS = ("id", "created_at", "profile_id", "cio_id", "channel", "topic_key", "action", "source",
                   "evidence")


def consent_row(values: dict) -> dict:
    return {**{column: values.get(column) for column in CONSENT_COLUMNS},
            "created_at": values["created_at"].isoformat(), "cio_id": values["profile__cio_id"]}


def consent_rows(records):
    fields = [c for c in CONSENT_COLUMNS if c != "cio_id"] + ["profile__cio_id"]
    return (consent_row(values) for values in records.values(*fields).iterator(chunk_size=EXPORT_CHUNK))


@admin.register(ConsentRecord)
class ConsentRecordAdmin(AdminExportMixin, ReadOnlyWorkspaceScopedAdmin):
    """The ledger is append-only (a database trigger refuses changes): viewed and exported only."""

    view_permission = "view_audit_log"
    export_url_name = "channels_consentrecord_export"
    list_display = ["created_at", "profile", "channel", "topic_key", "action", "source"]
    list_filter = ["action", "source", "channel"]
    list_select_related = ["profile"]
    show_full_result_count = False
    ordering = ["-pk"]  # newest first through the primary key: no (workspace, time) index here
    fields = ["created_at", "profile", "channel", "topic_key", "action", "source", "evidence_display"]
    readonly_fields = fields
    actions = ["export_selected_csv", "export_selected_json"]

    @admin.display(description="evidence")
    def evidence_display(self, obj):
        return pretty_json(obj.evidence)

    def export(self, request):
        """GET ?since=&until=&format=: the workspace's ledger, oldest first, as a download."""
        fmt = parse_format(request.GET.get("format"))
        since = parse_instant("since", request.GET.get("since"), end_of_day=False)
        until = parse_instant("until", request.GET.get("until"), end_of_day=True)
        if since and until and since > until:
            raise FilterError("until", "Must not be before since.")
        records = self._exported(request)
        if since is not None:
            records = records.filter(created_at__gte=since)
        if until is not None:
            records = records.filter(created_at__lte=until)
        details = {"format": fmt, "since": request.GET.get("since"), "until": request.GET.get("until")}
        return self._stream(request, records, fmt, details)

    def _exported(self, request):
        # Streamed after the view returns (outside the workspace scope): name the workspace.
        return ConsentRecord.objects.for_workspace(request.workspace).order_by("created_at", "pk")

    def _stream(self, request, records, fmt, details):
        from core.audit import record_action

        record_action(target=request.workspace, action="consent_records_exported", workspace=request.workspace,
                      details=details)
        return streamed(consent_rows(records), fmt=fmt, columns=CONSENT_COLUMNS,
                        filename=f"consent-{request.workspace.slug}")

    def _export_selected(self, request, queryset, fmt):
        records = self._exported(request).filter(pk__in=list(queryset.values_list("pk", flat=True)))
        return self._stream(request, records, fmt, {"format": fmt, "selected": True})


# --- deliveries, inbound messages -------------------------------------------------------------------

class DeliveryEventInline(ReadOnlyWorkspaceInline):
    model = DeliveryEvent
    view_permission = "view_campaigns"
    fields = ["at", "kind", "data_display"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(workspace=request.workspace)

    @admin.display(description="data")
    def data_display(self, obj):
        return compact_json(obj.data, limit=500)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyWorkspaceScopedAdmin):
    view_permission = "view_campaigns"
    list_display = ["public_id", "channel", "status", "source", "recipient", "profile", "channel_config",
                    "created_at", "sent_at"]
    list_filter = ["status", "channel", "source"]
    list_select_related = ["profile", "channel_config"]
    date_hierarchy = "created_at"  # served by (workspace, created_at)
    search_fields = ["=public_id", "^recipient"]
    search_help_text = "A delivery id, or a recipient (whole or its beginning)."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ["-created_at", "-pk"]
    inlines = [DeliveryEventInline]
    fieldsets = [
        (None, {"fields": ["public_id", "channel", "status", "failure_reason", "source", "source_id",
                           "message_content", "topic", "variant", "profile", "recipient", "channel_config",
                           "provider_message_id", "attempts"]}),
        ("Times", {"fields": ["created_at", "send_at", "send_started_at", "sent_at", "delivered_at", "opened_at",
                              "clicked_at", "converted_at", "failed_at"]}),
        ("Content", {"fields": ["subject", "body", "body_plain", "payload_display", "content_display",
                                "message_data_display", "retain_content", "content_purged_at", "tracked",
                                "send_to_unsubscribed", "idempotency_key"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(public_id=term) | Q(recipient__startswith=term)
        if term.lower() != term:
            match |= Q(recipient__startswith=term.lower())
        return queryset.filter(match), False

    @admin.display(description="rendered payload")
    def payload_display(self, obj):
        return pretty_json(obj.rendered_payload)

    @admin.display(description="content")
    def content_display(self, obj):
        return pretty_json(without_file_bodies(obj.content))

    @admin.display(description="message data")
    def message_data_display(self, obj):
        return pretty_json(obj.message_data)


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyWorkspaceScopedAdmin):
    view_permission = "view_campaigns"
    list_display = ["received_at", "channel", "from_address", "to_address", "body_short", "keyword",
                    "channel_config", "profile"]
    list_filter = ["channel"]
    list_select_related = ["channel_config", "profile"]
    search_fields = ["^from_address"]
    search_help_text = "The sender's number (E.164), whole or its beginning."
    show_full_result_count = False
    ordering = ["-pk"]  # newest first through the primary key: no (workspace, time) index here
    fields = ["received_at", "channel", "channel_config", "from_address", "to_address", "profile", "body",
              "media_display", "keyword", "provider_message_id"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = normalize_address("sms", search_term)
        return (queryset.filter(from_address__startswith=term) if term else queryset), False

    @admin.display(description="body")
    def body_short(self, obj):
        return shorten(obj.body)

    @admin.display(description="media")
    def media_display(self, obj):
        return pretty_json(obj.media)


# --- reporting webhooks -----------------------------------------------------------------------------

@admin.register(ReportingWebhook)
class ReportingWebhookAdmin(ServiceBackedAdmin):
    """The signing secret is write-only; a generated one is shown once, in a message."""

    view_permission = "view_channels"
    change_permission = "manage_channels"
    form = ReportingWebhookForm
    list_display = ["name", "url", "events_display", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["name"]
    ordering = ["name"]
    actions = ["rotate_secret"]

    def get_fields(self, request, obj=None):
        editing = self.has_change_permission(request, obj)
        fields = ["name", "url", "events", *(["secret"] if editing else []), "active"]
        return fields if obj is None else [*fields, "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["created_at"]

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ("name", "url", "events", "active")}
        secret = form.cleaned_data.get("secret") or None
        if change:
            stored = ReportingWebhook.objects.get(pk=obj.pk)
            saved = self._apply(request, lambda: services.update_webhook(webhook=stored, secret=secret,
                                                                                 **data))
        else:
            saved, secret_in_use = self._apply(request, lambda: services.create_webhook(
                workspace=request.workspace, secret=secret, **data))
            if secret is None:
                self._show_secret(request, saved, secret_in_use)
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj):
        self._apply(request, lambda: services.delete_webhook(webhook=obj))

    def delete_queryset(self, request, queryset):
        self._apply(request, lambda: [services.delete_webhook(webhook=hook) for hook in queryset])

    def _show_secret(self, request, webhook, secret):
        self.message_user(request, f"Signing secret of “{webhook.name}”: {secret} — copy it now, it will not be "
                                   "shown again.", messages.WARNING)

    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for webhook in queryset:
            secret = services.new_secret()
            services.update_webhook(webhook=webhook, secret=secret)
            self._show_secret(request, webhook, secret)

    @admin.display(description="events")
    def events_display(self, obj):
        return ", ".join(obj.events) if obj.events else "all"


@admin.register(ReportingWebhookCall)
class ReportingWebhookCallAdmin(ReadOnlyWorkspaceScopedAdmin):
    view_permission = "view_channels"
    list_display = ["created_at", "webhook", "metric", "delivery_id", "state", "attempts", "next_attempt_at",
                    "sent_at", "error_short"]
    list_filter = ["state"]
    list_select_related = ["webhook"]
    show_full_result_count = False
    ordering = ["-pk"]  # newest first through the primary key: no (workspace, time) index here
    fields = ["webhook", "state", "attempts", "next_attempt_at", "created_at", "sent_at", "last_error",
              "payload_display"]
    readonly_fields = fields

    @admin.display(description="metric")
    def metric(self, obj):
        return (obj.payload or {}).get("metric", "")

    @admin.display(description="delivery")
    def delivery_id(self, obj):
        return ((obj.payload or {}).get("data") or {}).get("delivery_id", "")

    @admin.display(description="last error")
    def error_short(self, obj):
        return shorten(obj.last_error) or "—"

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)


from channels import admin_demo  # noqa: E402,F401  (registers the demo inbox: channels/admin_demo.py)
