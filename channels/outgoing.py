"""From rendered content to what a provider receives: sender, recipient(s), email tracking and
unsubscribe headers, email attachments and bcc, push device tokens. And what a send result
changes afterwards."""

from __future__ import annotations

import base64
import binascii

from channels.consent import SendAsk, decide, load_consent, normalize_address
from channels.models import ChannelType, Delivery
from channels.providers.base import OutgoingMessage, ProviderError, SendResult


def _attachments(message: OutgoingMessage) -> None:
    items = message.payload.pop("attachments", None) or []
    try:
        message.attachments = [(item["filename"], base64.b64decode(item["content_b64"], validate=True),
                                item.get("content_type") or "application/octet-stream") for item in items]
    except (KeyError, TypeError, AttributeError, binascii.Error, ValueError) as exc:
        raise ProviderError("the delivery's attachments are malformed") from exc
    if message.attachments:
        message.payload["attachments"] = [{"filename": name, "content_type": content_type, "size": len(content)}
                                          for name, content, content_type in message.attachments]


def _bcc(delivery: Delivery, message: OutgoingMessage) -> None:
    """Bcc addresses that may be sent to: suppressed ones (and those of people deleted from the
    workspace) are dropped, and named in the payload."""
    addresses = message.payload.pop("bcc", None) or []
    if isinstance(addresses, str):
        addresses = [addresses]
    dropped = []
    asks = [SendAsk(profile=None, channel=ChannelType.EMAIL, address=address, topic=None, send_to_unsubscribed=True)
            for address in dict.fromkeys(normalize_address(ChannelType.EMAIL, str(item)) for item in addresses)
            if address and address != message.recipient]
    facts = load_consent(delivery.workspace, asks) if asks else None
    for ask in asks:
        if decide(ask, facts):
            dropped.append(ask.address)
        else:
            message.bcc.append(ask.address)
    if message.bcc:
        message.payload["bcc"] = list(message.bcc)
    if dropped:
        message.payload["bcc_suppressed"] = dropped


def push_tokens(delivery: Delivery) -> list[str]:
    """`recipient` is "all" (every device of the person), "last_used", or one device token."""
    from profiles.models import Device

    spec = delivery.recipient or "all"
    if spec not in ("all", "last_used"):
        return [spec]
    if delivery.profile_id is None:
        return []
    devices = Device.objects.for_workspace(delivery.workspace_id).filter(profile_id=delivery.profile_id)
    if delivery.channel_config and delivery.channel_config.provider == "apns":
        devices = devices.filter(platform="ios")
    if spec == "last_used":
        device = devices.order_by("-last_used", "-created_at").first()
        return [device.token] if device else []
    return list(devices.order_by("pk").values_list("token", flat=True))


def build_outgoing(delivery: Delivery, rendered) -> OutgoingMessage:
    config = delivery.channel_config
    message = OutgoingMessage(
        delivery_id=delivery.public_id, channel=delivery.channel,
        recipient=normalize_address(delivery.channel, delivery.recipient),
        subject=rendered.subject, body=rendered.body, body_plain=rendered.body_plain,
        sender=rendered.sender or (config.sender if config else ""), reply_to=rendered.reply_to,
        headers=dict(rendered.headers), payload=dict(rendered.payload),
    )
    if delivery.channel == ChannelType.EMAIL:
        from channels import tracking

        if delivery.tracked and config is not None and config.tracking_enabled:
            message.body = tracking.track_email_html(delivery, message.body)
        message.headers.update(tracking.email_headers(delivery))
        _attachments(message)
        _bcc(delivery, message)
    elif delivery.channel == ChannelType.PUSH:
        tokens = push_tokens(delivery)
        if not tokens:
            raise ProviderError("the person has no push devices", undeliverable=True)
        message.payload["tokens"] = tokens
    elif delivery.channel == ChannelType.WEBHOOK:
        message.recipient = message.payload.get("url", "")
    return message


def after_send(delivery: Delivery, result: SendResult) -> None:
    if result.invalid_tokens:
        from profiles.models import Device

        Device.objects.for_workspace(delivery.workspace_id).filter(token__in=result.invalid_tokens).delete()
