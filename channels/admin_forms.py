"""Forms of the messaging console pages (channels/admin.py).

Secrets (provider credentials, reporting webhook signing keys) are write-only: their fields never
render a value, not even the one just typed into a form that came back with errors.
"""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from channels.configs import endpoint_errors, provider_allowed, read_secrets, retarget_errors
from channels.consent import normalize_address
from channels.keywords import fold_keyword
from channels.models import (
    PROVIDERS_BY_CHANNEL, ChannelConfig, ChannelType, KeywordRule, ReportingWebhook, SubscriptionTopic,
    Suppression,
)
from channels.reporting import METRICS
from channels.safe_http import obvious_problem
from profiles.admin import PrettyJSONFormField, WorkspaceUniqueForm

E164 = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
# Channels whose addresses `consent.block_reason` checks against the suppression list.
SUPPRESSIBLE_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP)
KEYWORD_CHANNELS = (ChannelType.SMS, ChannelType.WHATSAPP)


class WriteOnlyTextarea(forms.Textarea):
    """Renders empty whatever it holds."""

    def format_value(self, value):
        return None


class JSONObjectField(PrettyJSONFormField):
    """A JSON object (or nothing, which cleans to None)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and not isinstance(value, dict):
            raise ValidationError("Enter a JSON object, e.g. {\"key\": \"value\"}.", code="not_an_object")
        return value


def provider_choices():
    """Providers grouped under the channel type they send."""
    return [(ChannelType(channel).label, [(kind.value, kind.label) for kind in kinds])
            for channel, kinds in PROVIDERS_BY_CHANNEL.items()]


def load_provider(kind: str):
    """The provider class, or None when its module is not installed."""
    from channels.providers import provider_class

    try:
        return provider_class(kind)
    except ImportError:
        return None


# --- channel configurations -------------------------------------------------------------------------

class ChannelConfigForm(WorkspaceUniqueForm):
    """`type` and `provider` are fixed once created (as in the App API); `settings` are validated
    by the provider; `secrets` are merged into the stored ones: a key set to null is removed, keys
    not given keep their stored value, an empty box keeps everything."""

    unique_in_workspace = (("name",),)

    provider = forms.ChoiceField(choices=provider_choices)
    settings = JSONObjectField(required=False, label="Settings (JSON)",
                               help_text="Shown to everyone who may see the configuration: hosts, account ids, "
                                         "base URLs. Never put credentials here: an HTTP SMS gateway refers to a "
                                         "secret as {secret.NAME} in its URL, headers or body template.")
    secrets = JSONObjectField(
        required=False, widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off"}),
        label="Secrets (JSON, write-only)",
        help_text="Credentials, e.g. {\"password\": \"...\"}. Stored encrypted and never shown again. Keys given "
                  "replace the stored ones, a key set to null is removed, an empty box keeps what is stored.",
    )

    class Meta:
        model = ChannelConfig
        fields = ["name", "type", "provider", "settings", "secrets", "sender", "rate_limit_per_second",
                  "tracking_enabled", "is_default", "active"]

    def clean_settings(self):
        return self.cleaned_data.get("settings") or {}

    def clean(self):
        data = super().clean()
        channel = data.get("type") if "type" in self.fields else self.instance.type
        provider = data.get("provider") if "provider" in self.fields else self.instance.provider
        if data.get("is_default") and not data.get("active", True):
            self.add_error("is_default", "An inactive configuration cannot be the default.")
        if not channel or not provider:
            return data
        if not provider_allowed(channel, provider):
            fitting = ", ".join(PROVIDERS_BY_CHANNEL.get(channel, ())) or "none"
            self.add_error("provider", f"{provider} does not send {channel} messages; use one of: {fitting}.")
            return data
        if "settings" in data and "secrets" in data:  # both parsed
            self._validate_with_provider(provider, data["settings"], data["secrets"] or {})
        return data

    def _validate_with_provider(self, kind: str, settings: dict, given: dict) -> None:
        provider = load_provider(kind)
        if provider is None:
            self.add_error("provider", "This provider is not available in this installation.")
            return
        try:
            stored = read_secrets(self.instance) if self.instance.pk else {}
        except ValueError:
            self.add_error("secrets", "The stored secrets cannot be decrypted with the current ULAK_FERNET_KEYS.")
            return
        values = {k: v for k, v in given.items() if v is not None}  # nulls only remove stored keys
        errors = dict(provider.validate_settings(settings, values, partial_secrets=True))
        # What will be stored must be complete: a required secret neither stored nor given (or
        # removed with null) is an error too.
        merged = {k: v for k, v in {**stored, **given}.items() if v is not None}
        complete = provider.validate_settings(settings, merged, partial_secrets=False)
        errors.update({key: message for key, message in complete.items() if key.startswith("secrets.")})
        errors = endpoint_errors(settings, errors)  # base_url, token_url: the SSRF policy, as at send
        if self.instance.pk and not any(key.startswith("settings.") for key in errors):
            errors.update(retarget_errors(self.instance, settings, given))  # credentials never follow a new destination
        for key, message in sorted(errors.items()):
            field, _, name = key.partition(".")
            if field in ("settings", "secrets") and name:
                self.add_error(field, f"{name}: {message}")
            else:
                self.add_error(None, f"{key}: {message}")


# --- topics and keywords ----------------------------------------------------------------------------

class SubscriptionTopicForm(WorkspaceUniqueForm):
    unique_in_workspace = (("key",),)

    class Meta:
        model = SubscriptionTopic
        fields = ["key", "name", "description", "default_subscribed"]


class KeywordRuleForm(forms.ModelForm):
    # Foreign keys (channel_config) are added by the admin, whose querysets are workspace-scoped.
    class Meta:
        model = KeywordRule
        fields = ["keyword", "action", "reply", "event_name", "active"]

    def clean_keyword(self):
        folded = fold_keyword(self.cleaned_data.get("keyword") or "")
        if not folded:
            raise ValidationError("Enter a keyword.")
        return folded  # stored as the inbound matcher compares it

    def clean_channel_config(self):
        config = self.cleaned_data.get("channel_config")
        if config is not None and config.type not in KEYWORD_CHANNELS:
            raise ValidationError("Keyword rules apply to SMS and WhatsApp configurations only.")
        return config

    def clean(self):
        data = super().clean()
        keyword = data.get("keyword")
        if keyword and "channel_config" not in self.errors:
            # The constraint treats "every channel" (NULL) as one value; Django's check would not.
            clash = KeywordRule.objects.filter(keyword=keyword, channel_config=data.get("channel_config"))
            if clash.exclude(pk=self.instance.pk).exists():
                self.add_error("keyword", "A rule for this keyword and channel configuration already exists.")
        return data


# --- suppressions -----------------------------------------------------------------------------------

class SuppressionAddForm(forms.ModelForm):
    """A manual suppression; channels.services.add_suppression links it to the address's owner."""

    channel = forms.ChoiceField(choices=[(c.value, c.label) for c in SUPPRESSIBLE_CHANNELS])
    address = forms.CharField(max_length=512, help_text="An email address, or a phone number in E.164 "
                                                         "(+905551234567).")

    class Meta:
        model = Suppression
        fields = ["channel", "address", "note"]

    def clean(self):
        data = super().clean()
        channel, raw = data.get("channel"), data.get("address")
        if not channel or not raw:
            return data
        address = normalize_address(channel, raw)
        if channel == ChannelType.EMAIL:
            try:
                validate_email(address)
            except ValidationError:
                self.add_error("address", "Enter a valid email address.")
                return data
        elif not E164.fullmatch(address):
            self.add_error("address", "Enter a phone number in E.164, e.g. +905551234567.")
            return data
        existing = Suppression.objects.filter(channel=channel, address=address).first()
        if existing is not None:
            self.add_error("address", f"This address is already suppressed ({existing.get_reason_display()}).")
        data["address"] = address
        return data


# --- reporting webhooks -----------------------------------------------------------------------------

METRIC_CHOICES = [(metric, metric) for metric in sorted(set(METRICS.values()))]


class ReportingWebhookForm(WorkspaceUniqueForm):
    unique_in_workspace = (("name",),)

    url = forms.URLField(max_length=1000, assume_scheme="https",
                         validators=[URLValidator(schemes=["http", "https"])])
    events = forms.MultipleChoiceField(choices=METRIC_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
                                       help_text="Metrics to send; none checked: all of them.")
    secret = forms.CharField(
        required=False, max_length=200, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="Signing secret (write-only)",
        help_text="Empty: one is generated on creation (and shown once), or the stored one is kept.",
    )

    class Meta:
        model = ReportingWebhook
        fields = ["name", "url", "events", "secret", "active"]

    def clean_url(self):
        url = self.cleaned_data.get("url")
        problem = obvious_problem(url) if url else None
        if problem:
            raise ValidationError(f"This address may not be called: {problem}.")
        return url

    def clean_secret(self):
        secret = self.cleaned_data.get("secret") or ""
        if secret and len(secret) < 16:
            raise ValidationError("Use at least 16 characters, or leave it empty to have one generated.")
        return secret
