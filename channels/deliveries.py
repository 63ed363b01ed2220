"""Asking for a message: a Delivery row in the caller's transaction, its send task on commit."""

from __future__ import annotations

from datetime import datetime

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone

from channels.batching import schedule_batch
from channels.configs import NoChannelConfig, config_for
from channels.feedback import record_delivery_event
from channels.models import ChannelType, Delivery, new_public_id
from channels.sending import BATCHED_SOURCES

SEND_TASK_FOR_CHANNEL = {
    ChannelType.EMAIL: "email.send_delivery",
    ChannelType.SMS: "sms.send_delivery",
    ChannelType.WHATSAPP: "whatsapp.send_delivery",
    ChannelType.PUSH: "push.send_delivery",
    ChannelType.IN_APP: "in_app.send_delivery",
    ChannelType.WEBHOOK: "webhooks.send_delivery",
}


def default_recipient(channel: str, profile) -> str:
    if profile is None:
        return ""
    if channel == ChannelType.EMAIL:
        return profile.email or ""
    if channel in (ChannelType.SMS, ChannelType.WHATSAPP):
        return profile.phone or ""
    if channel == ChannelType.PUSH:
        return "all"
    if channel == ChannelType.IN_APP:
        return profile.cio_id
    return ""


def enqueue_send(delivery: Delivery) -> None:
    """Publish the send task once the current transaction commits (never before the row exists).
    Campaign and broadcast deliveries are sent in batches per channel configuration: their
    configuration's batch task is published instead, unless one is already on its way."""
    if delivery.source in BATCHED_SOURCES and delivery.channel_config_id is not None:
        workspace_id, config_id, channel = delivery.workspace_id, delivery.channel_config_id, delivery.channel
        transaction.on_commit(lambda: schedule_batch(workspace_id, config_id, channel))
        return
    name = SEND_TASK_FOR_CHANNEL[ChannelType(delivery.channel)]
    kwargs = {"workspace_id": delivery.workspace_id, "delivery_id": delivery.pk}
    transaction.on_commit(lambda: current_app.send_task(name, kwargs=kwargs))


def queue_delivery(workspace, *, channel: str, source: str, profile=None, recipient: str = "",
                   source_id: str = "", message_content=None, channel_config=None, topic=None,
                   content: dict | None = None, message_data: dict | None = None,
                   idempotency_key: str | None = None, send_at: datetime | None = None,
                   retain_content: bool = True, send_to_unsubscribed: bool = False, tracked: bool = True,
                   variant: str = "", undeliverable: str | None = None) -> tuple[Delivery, bool]:
    """Create the delivery (or return the one already made under `idempotency_key`) and enqueue
    its send on commit. Only transactional messages may be sent to unsubscribed people.
    `undeliverable`: a reason the caller already knows it must not be sent (e.g. a frequency cap):
    the delivery is recorded undeliverable with it, as for a missing address, and nothing is sent.
    Returns (delivery, created)."""
    if idempotency_key:
        existing = Delivery.objects.for_workspace(workspace).filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    public_id = new_public_id()
    delivery = Delivery(
        workspace=workspace, public_id=public_id, profile=profile, channel=channel, source=source,
        source_id=str(source_id or ""), message_content=message_content, topic=topic,
        variant=variant, recipient=recipient or default_recipient(channel, profile), content=content or {},
        message_data=message_data or {}, retain_content=retain_content, tracked=tracked,
        send_to_unsubscribed=send_to_unsubscribed and source in (Delivery.Source.TRANSACTIONAL, Delivery.Source.TEST),
        idempotency_key=idempotency_key or f"auto:{public_id}", send_at=send_at,
    )
    problem = undeliverable
    try:
        delivery.channel_config = channel_config or config_for(workspace, channel)
    except NoChannelConfig as exc:
        problem = problem or str(exc)
    if problem is None and not delivery.recipient and channel not in (ChannelType.WEBHOOK,):
        problem = f"the person has no {'email address' if channel == ChannelType.EMAIL else 'phone number'}"
    try:
        with transaction.atomic():
            delivery.save()
    except IntegrityError:
        if not idempotency_key:
            raise
        return Delivery.objects.for_workspace(workspace).get(idempotency_key=idempotency_key), False
    record_delivery_event(delivery, "queued", data={"send_at": send_at.isoformat()} if send_at else {})
    if problem is not None:
        record_delivery_event(delivery, "undeliverable", data={"reason": problem})
    elif send_at is None or send_at <= timezone.now():
        enqueue_send(delivery)
    return delivery, True
