"""Writes behind the messaging App API: channel configurations and their test sends,
subscription topics, subscription preferences and manual suppressions (transactional sends are
campaigns/transactional.py).

Consent and suppression themselves go through channels.consent (the ledger is written there);
deliveries through channels.deliveries.queue_delivery. Bad input raises `InvalidInput` (one
field) or `InvalidFields` (several); something that still uses a row raises `InUse`.
"""

from __future__ import annotations

import secrets as secrets_module
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from channels import consent, selectors
from channels.configs import retarget_errors, endpoint_errors, make_default, provider_allowed, read_secrets, write_secrets
from channels.deliveries import queue_delivery
from channels.usage import registered_users
from channels.models import (
    PROVIDERS_BY_CHANNEL, ChannelConfig, ChannelType, ConsentRecord, Delivery, ReportingWebhook, SubscriptionTopic,
    Suppression,
)
from core.crypto import encrypt
from core.errors import Conflict, InvalidFields, InvalidInput
from profiles.models import Profile



class InUse(Conflict):
    """The row cannot be deleted: other rows still point at it."""


def _delete_unless_protected(row, refusal: str) -> None:
    """Delete `row`; if another row still protects it (on_delete=PROTECT), nothing is deleted and
    InUse(refusal) is raised."""
    try:
        with transaction.atomic():
            row.delete()
    except ProtectedError as exc:
        raise InUse(refusal) from exc


# --- channel configurations ----------------------------------------------------------------------

def _provider_class(kind: str):
    from channels.providers import provider_class

    try:
        return provider_class(kind)
    except (ImportError, AttributeError) as exc:  # the provider's module is not part of this installation
        raise InvalidInput("provider", f"{kind} is not available in this installation") from exc


def _merged(current: dict, patch: dict) -> dict:
    """JSON merge patch, one level deep: a null value removes the key."""
    merged = {**current, **patch}
    return {key: value for key, value in merged.items() if value is not None}


def _raise_errors(errors: dict) -> None:
    if errors:
        raise InvalidFields([{"field": name, "message": message} for name, message in sorted(errors.items())])


def _require_unique_name(workspace, name: str, *, exclude: int | None = None) -> None:
    taken = ChannelConfig.objects.filter(workspace=workspace, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise InvalidInput("name", "is already used by another channel configuration")


def _save(config: ChannelConfig, **kwargs) -> None:
    try:
        with transaction.atomic():
            config.save(**kwargs)
    except IntegrityError as exc:  # the same name saved concurrently
        raise InvalidInput("name", "is already used by another channel configuration") from exc


@transaction.atomic
def create_channel_config(*, workspace, data: dict) -> ChannelConfig:
    """`data` is cleaned (channels.api.serializers.clean_channel); settings and secrets are checked
    by the provider, secrets stored encrypted."""
    channel, provider = data["type"], data["provider"]
    if not provider_allowed(channel, provider):
        allowed = ", ".join(PROVIDERS_BY_CHANNEL[ChannelType(channel)])
        raise InvalidInput("provider", f"must be one of {allowed} for {channel}")
    settings = _merged({}, data.get("settings") or {})
    secrets = _merged({}, data.get("secrets") or {})
    _raise_errors(endpoint_errors(settings, _provider_class(provider).validate_settings(
        settings, secrets, partial_secrets=False)))
    _require_unique_name(workspace, data["name"])
    config = ChannelConfig(
        workspace=workspace, name=data["name"], type=channel, provider=provider, settings=settings,
        sender=data.get("sender") or "", rate_limit_per_second=data.get("rate_limit_per_second"),
        tracking_enabled=data.get("tracking_enabled", True), active=data.get("active", True),
    )
    write_secrets(config, secrets)
    _save(config)
    if data.get("is_default"):
        make_default(config)
    return config


@transaction.atomic
def update_channel_config(*, config: ChannelConfig, data: dict) -> ChannelConfig:
    """Partial update. `type` and `provider` are fixed; `settings` and `secrets` are merged (null
    removes a key); secrets not named stay as they are."""
    for name in ("type", "provider"):
        if name in data and data[name] != getattr(config, name):
            raise InvalidInput(name, "cannot be changed; create a new channel configuration instead")
    changed = set()
    if "settings" in data or "secrets" in data:
        settings = _merged(config.settings or {}, data.get("settings") or {})
        patch = data.get("secrets") or {}
        provider = _provider_class(config.provider)
        errors = provider.validate_settings(settings, _merged({}, patch), partial_secrets=True)
        # Removing (null) a required secret, or leaving one a new setting needs, is still an error.
        complete = provider.validate_settings(settings, _merged(read_secrets(config), patch), partial_secrets=False)
        errors.update({name: message for name, message in complete.items() if name.startswith("secrets.")})
        errors = endpoint_errors(settings, errors)
        if not any(name.startswith("settings.") for name in errors):  # a bad destination is named first
            errors.update(retarget_errors(config, settings, patch))
        _raise_errors(errors)
        config.settings = settings
        write_secrets(config, patch)
        changed |= {"settings", "secrets_encrypted"}
    if "name" in data and data["name"] != config.name:
        _require_unique_name(config.workspace, data["name"], exclude=config.pk)
    for name in ("name", "sender", "rate_limit_per_second", "tracking_enabled", "active"):
        if name in data:
            setattr(config, name, data[name] if name != "sender" else data[name] or "")
            changed.add(name)
    if data.get("is_default") is False and config.is_default:
        config.is_default = False
        changed.add("is_default")
    if changed:
        _save(config, update_fields=[*sorted(changed), "updated_at"])
    if data.get("is_default") and not config.is_default:
        make_default(config)
    return config


def delete_channel_config(*, config: ChannelConfig) -> None:
    uses = selectors.channel_config_users(config)
    if uses:
        what = ", ".join(f"{count} {name}" for name, count in uses.items())
        raise InUse(f"the channel configuration is used by {what}; deactivate it instead (PATCH active=false)")
    _delete_unless_protected(
        config, "the channel configuration is still used; deactivate it instead (PATCH active=false)")


def content_for_test_send(config: ChannelConfig, *, to: str, subject: str, body: str) -> dict:
    """Inline content (channels/content/rendering.py: message fields, any other key a payload key)."""
    if config.type == ChannelType.EMAIL:
        return {"subject": subject, "body": body}
    if config.type in (ChannelType.PUSH, ChannelType.IN_APP):
        return {"title": subject, "body": body}
    if config.type == ChannelType.WEBHOOK:
        return {"url": to, "method": "POST", "body": {"test": True, "message": body}}
    return {"body": body}


def queue_test_send(*, config: ChannelConfig, to: str, subject: str, body: str,
                    profile: Profile | None = None) -> Delivery:
    """A one-off message through this configuration (active or not), to check its settings."""
    delivery, _ = queue_delivery(
        config.workspace, channel=config.type, source=Delivery.Source.TEST, profile=profile,
        recipient=to, source_id=str(config.pk), channel_config=config,
        content=content_for_test_send(config, to=to, subject=subject, body=body), send_to_unsubscribed=True)
    return delivery


# --- topics --------------------------------------------------------------------------------------

@transaction.atomic
def create_topic(*, workspace, data: dict) -> SubscriptionTopic:
    if SubscriptionTopic.objects.filter(workspace=workspace, key=data["key"]).exists():
        raise InvalidInput("key", "is already used by another topic")
    try:
        with transaction.atomic():
            topic = SubscriptionTopic.objects.create(
                workspace=workspace, key=data["key"], name=data["name"], description=data.get("description", ""),
                default_subscribed=data.get("default_subscribed", True))
    except IntegrityError as exc:
        raise InvalidInput("key", "is already used by another topic") from exc
    _topic_changed(topic)
    return topic


def _topic_changed(topic: SubscriptionTopic) -> None:
    """Segments with a "subscribed to topic" condition on it see everyone change at once."""
    from profiles.segments.services import recompute_dependents

    recompute_dependents(topic.workspace, f"topics:{topic.key}")


@transaction.atomic
def update_topic(*, topic: SubscriptionTopic, data: dict) -> SubscriptionTopic:
    """The key is fixed: templates, preference links and the consent ledger name topics by it."""
    if "key" in data and data["key"] != topic.key:
        raise InvalidInput("key", "cannot be changed; create a new topic instead")
    changed = [name for name in ("name", "description", "default_subscribed") if name in data]
    for name in changed:
        setattr(topic, name, data[name])
    if changed:
        topic.save(update_fields=changed)
    if "default_subscribed" in changed:
        _topic_changed(topic)
    return topic


def delete_topic(*, topic: SubscriptionTopic) -> None:
    users = registered_users(topic)  # e.g. transactional messages (campaigns)
    if users:
        what = ", ".join(f"{count} {name}" for name, count in users.items())
        raise InUse(f"the topic is used by {what}")
    _delete_unless_protected(topic, "the topic is still used")
    _topic_changed(topic)


# --- subscription preferences --------------------------------------------------------------------

@dataclass(frozen=True)
class PreferenceChange:
    subscribed: bool
    channel: str = ""  # "" = every channel
    topic: SubscriptionTopic | None = None  # None = every topic (of the channel)


@transaction.atomic
def change_preferences(*, workspace, profile: Profile, changes: list[PreferenceChange],
                       evidence: dict) -> list[ConsentRecord]:
    """Record each change through the consent ledger; a choice the person already has is not
    recorded again. Returns the ledger records written."""
    current = consent.preferences_of(workspace, profile)
    records = []
    for change in changes:
        if not change.channel and change.topic is None:
            if profile.unsubscribed != change.subscribed:
                continue
        elif current.get((change.channel, change.topic.pk if change.topic else None)) == change.subscribed:
            continue
        records.append(consent.record_consent(
            workspace, profile, subscribed=change.subscribed, source="api", channel=change.channel,
            topic=change.topic, evidence=evidence))
    return records


# --- suppressions --------------------------------------------------------------------------------

def _owner(workspace, channel: str, address: str) -> Profile | None:
    column = "email" if channel == ChannelType.EMAIL else "phone"
    return Profile.objects.filter(workspace=workspace, **{column: address}).order_by("pk").first()


@transaction.atomic
def add_suppression(*, workspace, channel: str, address: str, note: str = "") -> tuple[Suppression, bool]:
    """A manual suppression (idempotent: an address already suppressed keeps its first reason)."""
    address = consent.normalize_address(channel, address)
    existing = selectors.find_suppression(workspace, channel, address)
    if existing is not None:
        return existing, False
    suppression = consent.suppress(workspace, channel=channel, address=address, reason=Suppression.Reason.MANUAL,
                                   profile=_owner(workspace, channel, address), note=note)
    return suppression, True


def remove_suppression(*, workspace, channel: str, address: str) -> bool:
    return consent.lift_suppression(workspace, channel=channel, address=address)


# --- reporting webhooks ---------------------------------------------------------------------------

def new_secret() -> str:
    return secrets_module.token_hex(32)


def _check_name_free(workspace, name: str, exclude: int | None = None) -> None:
    workspace_id = getattr(workspace, "pk", workspace)
    taken = ReportingWebhook.objects.for_workspace(workspace_id).filter(name=name).exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"name": "A reporting webhook with this name already exists."})


@transaction.atomic
def create_webhook(*, workspace, name: str, url: str, events: list[str] | None = None, active: bool = True,
                   secret: str | None = None) -> tuple[ReportingWebhook, str]:
    """Create a webhook; returns it with its signing secret (shown once, never again)."""
    _check_name_free(workspace, name)
    secret = secret or new_secret()
    webhook = ReportingWebhook.objects.for_workspace(workspace).create(name=name, url=url, events=events or [],
                                               active=active, secret_encrypted=encrypt(secret))
    return webhook, secret


@transaction.atomic
def update_webhook(*, webhook: ReportingWebhook, secret: str | None = None, **changes) -> ReportingWebhook:
    """Change name/url/events/active (and the secret when one is given)."""
    if "name" in changes and changes["name"] != webhook.name:
        _check_name_free(webhook.workspace_id, changes["name"], exclude=webhook.pk)
    fields = []
    for name in ("name", "url", "events", "active"):
        if name in changes:
            setattr(webhook, name, changes[name])
            fields.append(name)
    if secret:
        webhook.secret_encrypted = encrypt(secret)
        fields.append("secret_encrypted")
    if fields:
        webhook.save(update_fields=fields)
    return webhook


@transaction.atomic
def delete_webhook(*, webhook: ReportingWebhook) -> None:
    """Delete the webhook and the calls still owed to it."""
    webhook.delete()
