"""What the messaging App API answers, and the checks on what it is sent.

Times are Unix seconds (integers), as Customer.io writes them. Channel secrets are write-only:
a configuration shows only the names of the secrets it holds (`secrets_set`). Cleaners raise
`InvalidInput(field, message)` naming the offending field; the views answer 400.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parseaddr

from django.conf import settings as django_settings

from channels.configs import read_secrets
from channels.consent import normalize_address
from channels.models import (
    ChannelConfig, ChannelType, Delivery, DeliveryStatus, ProviderKind, SubscriptionTopic, Suppression,
)
from channels.selectors import DeliveryFilters
from core.exporting import parse_instant
from core.errors import InvalidInput
from profiles.ingest.operations import clean_bool, clean_email, clean_phone, clean_str, require_dict

SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_RATE_LIMIT = 100_000
SUPPRESSIBLE_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP)


def unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def person_json(profile) -> dict | None:
    if profile is None:
        return None
    return {"id": profile.external_id, "email": profile.email, "cio_id": profile.cio_id}


# --- channel configurations ----------------------------------------------------------------------

def webhook_urls(config: ChannelConfig) -> dict:
    """The URLs the tenant configures at the provider so status, inbound and tracking reach Ulak."""
    base = f"{django_settings.ULAK_PUBLIC_URL.rstrip('/')}/hooks"
    public_id = config.public_id
    if config.provider == ProviderKind.TWILIO:
        return {"status_callback": f"{base}/twilio/{public_id}/status", "inbound": f"{base}/twilio/{public_id}/inbound"}
    if config.provider == ProviderKind.WHATSAPP_CLOUD:
        return {"webhook": f"{base}/whatsapp/{public_id}"}
    if config.provider == ProviderKind.ANYMAIL and (config.settings or {}).get("esp"):
        return {"tracking": f"{base}/anymail/{public_id}/{config.settings['esp']}/tracking/"}
    return {}


def channel_json(config: ChannelConfig) -> dict:
    return {
        "id": config.pk, "public_id": config.public_id, "name": config.name, "type": config.type,
        "provider": config.provider, "sender": config.sender, "settings": config.settings,
        "secrets_set": sorted(read_secrets(config)), "rate_limit_per_second": config.rate_limit_per_second,
        "tracking_enabled": config.tracking_enabled, "is_default": config.is_default, "active": config.active,
        "webhook_urls": webhook_urls(config), "created_at": unix(config.created_at),
        "updated_at": unix(config.updated_at),
    }


CHANNEL_FIELDS = ("type", "provider", "name", "sender", "settings", "secrets", "rate_limit_per_second",
                  "tracking_enabled", "is_default", "active")


def _reject_unknown(body: dict, known, what: str) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidInput(unknown[0], f"is not a field of {what}")


def _json_object(value, field: str) -> dict:
    if value is None:
        return {}
    return require_dict(value, field)


def clean_channel(body, *, partial: bool) -> dict:
    """The fields of a channel configuration; on create `type`, `provider` and `name` are required."""
    body = require_dict(body, None)
    _reject_unknown(body, CHANNEL_FIELDS, "a channel configuration")
    data = {}
    if not partial or "type" in body:
        if body.get("type") not in ChannelType.values:
            raise InvalidInput("type", f"must be one of {', '.join(ChannelType.values)}")
        data["type"] = body["type"]
    if not partial or "provider" in body:
        if body.get("provider") not in ProviderKind.values:
            raise InvalidInput("provider", f"must be one of {', '.join(ProviderKind.values)}")
        data["provider"] = body["provider"]
    if not partial or "name" in body:
        data["name"] = clean_str(body.get("name"), "name", max_length=150).strip()
        if not data["name"]:
            raise InvalidInput("name", "is required")
    if "sender" in body:
        data["sender"] = clean_str(body["sender"], "sender", max_length=255, required=False) or ""
    for name in ("settings", "secrets"):
        if name in body:
            data[name] = _json_object(body[name], name)
    if "rate_limit_per_second" in body:
        data["rate_limit_per_second"] = _rate_limit(body["rate_limit_per_second"])
    for name in ("tracking_enabled", "is_default", "active"):
        if name in body:
            data[name] = clean_bool(body[name], name)
    return data


def _rate_limit(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT:
        raise InvalidInput("rate_limit_per_second", f"must be null or a whole number from 1 to {MAX_RATE_LIMIT}")
    return value


def clean_test_send(body, config: ChannelConfig) -> dict:
    """{"to", "subject"?, "body"?}; `to` is what the channel sends to (for in_app: a cio_id)."""
    body = require_dict(body if body is not None else {}, None)
    _reject_unknown(body, ("to", "subject", "body"), "a test send")
    subject = clean_str(body.get("subject"), "subject", max_length=998, required=False)
    text = clean_str(body.get("body"), "body", max_length=100_000, required=False)
    return {
        "to": clean_recipient(config.type, body.get("to"), "to", required=True),
        "subject": subject or "Ulak test message",
        "body": text or f"This is a test message from the channel configuration {config.name!r}.",
    }


def clean_recipient(channel: str, value, field: str, *, required: bool = False) -> str:
    """An address of the channel: an email address (a display name is dropped), an E.164 phone
    number, a push device token or "all"/"last_used", an http(s) URL for webhooks, a cio_id for
    in_app."""
    if value in (None, ""):
        if required:
            raise InvalidInput(field, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if channel == ChannelType.EMAIL:
        if "," in value or ";" in value:
            raise InvalidInput(field, "must be one email address")
        return clean_email(parseaddr(value)[1] or value, field)
    if channel in (ChannelType.SMS, ChannelType.WHATSAPP):
        return clean_phone(normalize_address(channel, value), field)
    if channel == ChannelType.WEBHOOK and not value.startswith(("http://", "https://")):
        raise InvalidInput(field, "must be an http(s) URL")
    return clean_str(value.strip(), field, max_length=512)


# --- topics --------------------------------------------------------------------------------------

def topic_json(topic: SubscriptionTopic) -> dict:
    return {"id": topic.pk, "key": topic.key, "name": topic.name, "description": topic.description,
            "default_subscribed": topic.default_subscribed, "created_at": unix(topic.created_at)}


def customerio_topic_json(topic: SubscriptionTopic) -> dict:
    """Customer.io's `GET /v1/subscription_topics` shape."""
    return {"id": topic.pk, "identifier": topic.key, "name": topic.name, "description": topic.description,
            "subscribed_by_default": topic.default_subscribed}


def clean_topic(body, *, partial: bool) -> dict:
    body = require_dict(body, None)
    _reject_unknown(body, ("key", "name", "description", "default_subscribed"), "a topic")
    data = {}
    if not partial or "key" in body:
        key = clean_str(body.get("key"), "key", max_length=100)
        if not SLUG.match(key):
            raise InvalidInput("key", "may hold only letters, digits, _ and -")
        data["key"] = key
    if not partial or "name" in body:
        data["name"] = clean_str(body.get("name"), "name", max_length=150)
    if "description" in body:
        data["description"] = clean_str(body["description"], "description", max_length=2000, required=False) or ""
    if "default_subscribed" in body:
        data["default_subscribed"] = clean_bool(body["default_subscribed"], "default_subscribed")
    return data


# --- subscription preferences --------------------------------------------------------------------

PREFERENCE_FIELDS = ("unsubscribed", "channels", "topics", "channel_topics")


def preferences_json(profile, topics, rows) -> dict:
    """The person's choices: global, per channel, per topic (with the topic's default when the
    person made no choice) and per channel and topic."""
    channels = {row.channel: row.subscribed for row in rows if row.channel and row.topic_id is None}
    chosen = {row.topic_id: row.subscribed for row in rows if not row.channel and row.topic_id}
    per_channel: dict[str, dict] = {}
    for row in rows:
        if row.channel and row.topic_id:
            per_channel.setdefault(row.channel, {})[row.topic.key] = row.subscribed
    return {
        "customer": person_json(profile),
        "unsubscribed": profile.unsubscribed,
        "channels": channels,
        "topics": [{"key": topic.key, "name": topic.name, "subscribed": chosen.get(topic.pk, topic.default_subscribed),
                    "chosen": topic.pk in chosen, "default_subscribed": topic.default_subscribed}
                   for topic in topics],
        "channel_topics": per_channel,
    }


def _bool_map(value, field: str, *, keys=None) -> dict[str, bool]:
    mapping = require_dict(value, field)
    for key, item in mapping.items():
        if keys is not None and key not in keys:
            raise InvalidInput(f"{field}.{key}", f"must be one of {', '.join(keys)}")
        mapping[key] = clean_bool(item, f"{field}.{key}")
    return mapping


def clean_preferences(body) -> dict:
    """{"unsubscribed"?: bool, "channels"?: {channel: bool}, "topics"?: {key: bool},
    "channel_topics"?: {channel: {key: bool}}}; at least one of them."""
    body = require_dict(body, None)
    _reject_unknown(body, PREFERENCE_FIELDS, "subscription preferences")
    if not any(name in body for name in PREFERENCE_FIELDS):
        raise InvalidInput(None, f"name at least one of {', '.join(PREFERENCE_FIELDS)}")
    data = {}
    if "unsubscribed" in body:
        data["unsubscribed"] = clean_bool(body["unsubscribed"], "unsubscribed")
    if "channels" in body:
        data["channels"] = _bool_map(body["channels"], "channels", keys=ChannelType.values)
    if "topics" in body:
        data["topics"] = _bool_map(body["topics"], "topics")
    if "channel_topics" in body:
        outer = require_dict(body["channel_topics"], "channel_topics")
        data["channel_topics"] = {}
        for channel, mapping in outer.items():
            if channel not in ChannelType.values:
                raise InvalidInput(f"channel_topics.{channel}", f"must be one of {', '.join(ChannelType.values)}")
            data["channel_topics"][channel] = _bool_map(mapping, f"channel_topics.{channel}")
    return data


# --- suppressions --------------------------------------------------------------------------------

def suppression_json(suppression: Suppression) -> dict:
    return {"id": suppression.pk, "channel": suppression.channel, "address": suppression.address,
            "reason": suppression.reason, "note": suppression.note, "created_at": unix(suppression.created_at)}


def clean_suppressible_channel(value, field: str = "channel") -> str:
    if value not in SUPPRESSIBLE_CHANNELS:
        raise InvalidInput(field, f"must be one of {', '.join(SUPPRESSIBLE_CHANNELS)}")
    return value


def clean_suppression(body) -> dict:
    body = require_dict(body, None)
    _reject_unknown(body, ("channel", "address", "note"), "a suppression")
    channel = clean_suppressible_channel(body.get("channel"))
    return {"channel": channel, "address": clean_recipient(channel, body.get("address"), "address", required=True),
            "note": clean_str(body.get("note"), "note", max_length=2000, required=False) or ""}


# --- deliveries ----------------------------------------------------------------------------------

def _events_json(delivery: Delivery) -> list[dict]:
    return [{"kind": event.kind, "at": unix(event.at), "data": event.data} for event in delivery.events.all()]


def delivery_json(delivery: Delivery, *, detail: bool = False) -> dict:
    row = {
        "id": delivery.public_id, "channel": delivery.channel, "status": delivery.status,
        "source": delivery.source, "source_id": delivery.source_id or None,
        "transactional_message_id": delivery.transactional_message_id, "channel_config_id": delivery.channel_config_id,
        "topic_id": delivery.topic_id, "customer": person_json(delivery.profile), "recipient": delivery.recipient,
        "failure_reason": delivery.failure_reason or None, "attempts": delivery.attempts,
        "send_at": unix(delivery.send_at), "created_at": unix(delivery.created_at), "sent_at": unix(delivery.sent_at),
        "delivered_at": unix(delivery.delivered_at), "opened_at": unix(delivery.opened_at),
        "clicked_at": unix(delivery.clicked_at), "converted_at": unix(delivery.converted_at),
        "failed_at": unix(delivery.failed_at),
    }
    if detail:
        row["content"] = None if delivery.content_purged_at or not delivery.retain_content else {
            "subject": delivery.subject, "body": delivery.body, "body_plain": delivery.body_plain,
            "payload": delivery.rendered_payload}
        row["events"] = _events_json(delivery)
    return row


METRIC_COLUMNS = ("sent_at", "delivered_at", "opened_at", "clicked_at", "converted_at")
FAILED_METRIC = {DeliveryStatus.BOUNCED: "bounced", DeliveryStatus.FAILED: "failed",
                 DeliveryStatus.SUPPRESSED: "suppressed", DeliveryStatus.UNDELIVERABLE: "undeliverable"}


def message_json(delivery: Delivery) -> dict:
    """Customer.io's message shape (`GET /v1/messages/{id}`)."""
    metrics = {column.removesuffix("_at"): unix(getattr(delivery, column)) for column in METRIC_COLUMNS
               if getattr(delivery, column)}
    if delivery.status in FAILED_METRIC:
        metrics[FAILED_METRIC[DeliveryStatus(delivery.status)]] = unix(delivery.failed_at or delivery.updated_at)
    profile = delivery.profile
    return {
        "id": delivery.public_id, "deduplicate_id": f"{delivery.public_id}:{unix(delivery.created_at)}",
        "message_template_id": delivery.transactional_message_id, "parent_action_id": None,
        "campaign_id": int(delivery.source_id) if delivery.source == "campaign" and delivery.source_id.isdigit() else None,
        "broadcast_id": int(delivery.source_id) if delivery.source == "broadcast" and delivery.source_id.isdigit() else None,
        "newsletter_id": None, "transactional_message_id": delivery.transactional_message_id,
        "customer_id": profile.external_id if profile else None, "customer_identifiers": person_json(profile),
        "recipient": delivery.recipient, "subject": delivery.subject if delivery.retain_content else "",
        "metrics": metrics, "created": unix(delivery.created_at), "failure_message": delivery.failure_reason or None,
        "type": delivery.channel, "forgotten": bool(delivery.content_purged_at) or not delivery.retain_content,
    }


def _choice(params, name: str, choices) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise InvalidInput(name, f"must be one of {', '.join(choices)}")
    return value


def _instant(params, name: str, *, end_of_day: bool) -> datetime | None:
    return parse_instant(name, params.get(name), end_of_day=end_of_day)


def clean_delivery_filters(params) -> DeliveryFilters:
    """status, channel, source, transactional_message_id, customer_id/email/cio_id, created_after,
    created_before (ISO 8601 or Unix seconds, inclusive)."""
    message_id = params.get("transactional_message_id")
    if message_id not in (None, ""):
        if not (message_id.isascii() and message_id.isdigit()) or int(message_id) >= 2**63:
            raise InvalidInput("transactional_message_id", "must be a numeric id")
        message_id = int(message_id)
    else:
        message_id = None
    people = [(id_type, params.get(name)) for id_type, name in (("id", "customer_id"), ("email", "email"),
                                                                ("cio_id", "cio_id")) if params.get(name)]
    if len(people) > 1:
        raise InvalidInput(people[1][0] if people[1][0] != "id" else "customer_id",
                           "name the person by one of customer_id, email, cio_id")
    after = _instant(params, "created_after", end_of_day=False)
    before = _instant(params, "created_before", end_of_day=True)
    if after and before and after > before:
        raise InvalidInput("created_before", "must not be before created_after")
    return DeliveryFilters(
        status=_choice(params, "status", DeliveryStatus.values), channel=_choice(params, "channel", ChannelType.values),
        source=_choice(params, "source", Delivery.Source.values), transactional_message_id=message_id,
        person=people[0] if people else None, created_after=after, created_before=before)


# --- the consent ledger --------------------------------------------------------------------------

LEDGER_COLUMNS = ("id", "created_at", "cio_id", "customer_id", "channel", "topic", "action", "source", "evidence")


def ledger_row(values: dict) -> dict:
    return {"id": values["id"], "created_at": values["created_at"].isoformat(), "cio_id": values["profile__cio_id"],
            "customer_id": values["profile__external_id"], "channel": values["channel"] or None,
            "topic": values["topic_key"] or None, "action": values["action"], "source": values["source"],
            "evidence": values["evidence"]}


def clean_ledger_filters(params) -> dict:
    since = _instant(params, "since", end_of_day=False)
    until = _instant(params, "until", end_of_day=True)
    if since and until and since > until:
        raise InvalidInput("until", "must not be before since")
    topic = params.get("topic") or None
    if topic is not None and not SLUG.match(topic):
        raise InvalidInput("topic", "is not a topic key")
    return {"since": since, "until": until, "channel": _choice(params, "channel", ChannelType.values),
            "topic_key": topic, "cio_id": clean_str(params.get("cio_id"), "cio_id", max_length=32, required=False)}


# --- in-app inbox --------------------------------------------------------------------------------

def inbox_message_json(delivery: Delivery) -> dict:
    payload = delivery.rendered_payload or {}
    return {
        "id": delivery.public_id, "title": payload.get("title") or delivery.subject or None, "body": delivery.body,
        "payload": payload, "status": delivery.status, "opened": delivery.opened_at is not None,
        "clicked": delivery.clicked_at is not None, "dismissed": bool(getattr(delivery, "dismissed", False)),
        "created_at": unix(delivery.created_at),
    }

