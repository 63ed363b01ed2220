"""The demo provider: a development inbox for email, SMS, WhatsApp and push.

Nothing leaves Ulak. The provider call stores the message exactly as a real provider would have
received it (a `DemoMessage` row) and answers "delivered", so the delivery goes through the whole
pipeline — claim, consent and suppression, rate limit, render, the started marker, the provider
call, `sent` and `delivered` events and person events — and the console's demo inbox
(channels/admin_demo.py) shows what was sent. A configuration uses it only when created with
`provider: demo`; nothing ever picks it by itself (docs/console-demo-inbox.md).

Exactly once: the pipeline never calls a provider twice for a delivery whose call started; like a
real provider's idempotency key, the delivery (unique per workspace) keeps a second call from
storing a second copy — it answers with the copy already stored.
"""

from __future__ import annotations

from auditlog.context import disable_auditlog
from django.db import IntegrityError, transaction

from channels.models import ChannelType, Delivery, DemoMessage
from channels.providers.base import OutgoingMessage, Provider, ProviderError, SendResult
from channels.tracking import looks_like_html

CHANNELS = (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP, ChannelType.PUSH)


def provider_message_id(delivery_public_id: str) -> str:
    return f"demo-{delivery_public_id}"


def _email_parts(message: OutgoingMessage) -> tuple[str, str]:
    """(HTML, plain text) as the email providers build them (channels/providers/email.py): the
    HTML when the body is HTML, the plain part given, else the text made from the HTML."""
    html = message.body if looks_like_html(message.body) else ""
    if message.body_plain or not html:
        return html, message.body_plain or message.body
    from channels.content.rendering import html_to_text

    return html, html_to_text(html)


def store(config, message: OutgoingMessage) -> tuple[DemoMessage, bool]:
    """Store what `config` was asked to send (once per delivery): (row, stored now)."""
    workspace_id = config.workspace_id
    delivery_pk = (Delivery.objects.for_workspace(workspace_id).filter(public_id=message.delivery_id)
                   .values_list("pk", flat=True).first())
    if delivery_pk is None:
        raise ProviderError(f"delivery {message.delivery_id} does not exist in this workspace")
    body, body_plain = message.body, message.body_plain
    if message.channel == ChannelType.EMAIL:
        body, body_plain = _email_parts(message)
    payload = dict(message.payload)
    if message.bcc:
        payload["bcc"] = list(message.bcc)
    row = DemoMessage(workspace_id=workspace_id, delivery_id=delivery_pk, channel=message.channel,
                      recipient=message.recipient, sender=message.sender[:255], reply_to=message.reply_to[:255],
                      subject=message.subject, body=body, body_plain=body_plain,
                      headers={str(k): str(v) for k, v in message.headers.items() if v not in (None, "")},
                      payload=payload)
    # Data plane, like deliveries: no audit entry per message (the model stays registered, and its
    # personal data masked, for any change made elsewhere).
    try:
        with transaction.atomic(), disable_auditlog():
            row.save(force_insert=True)
    except IntegrityError:  # a copy is already stored for this delivery (demomessage_unique_delivery)
        return DemoMessage.objects.for_workspace(workspace_id).get(delivery_id=delivery_pk), False
    return row, True


class DemoProvider(Provider):
    """No settings and no credentials: the configuration's sender is the From address or number."""

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.channel not in CHANNELS:
            raise ProviderError(f"the demo provider does not send {message.channel} messages")
        if not message.recipient:
            raise ProviderError("no recipient", undeliverable=True)
        row, created = store(self.config, message)
        detail = {"demo_message": row.pk}
        if not created:
            detail["already_stored"] = True
        return SendResult(provider_message_id=provider_message_id(message.delivery_id), status="delivered",
                          detail=detail)
