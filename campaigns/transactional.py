"""Transactional sends: `POST /v1/send/<channel>` naming a transactional message (or inline
content only), as Customer.io's transactional API. The delivery is queued through
channels.deliveries.queue_delivery with the message's content; its source names the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from campaigns.models import TransactionalMessage
from channels import consent
from channels.configs import NoChannelConfig, config_for
from channels.deliveries import default_recipient, queue_delivery
from channels.models import ChannelConfig, ChannelType, Delivery
from core.errors import InvalidInput
from profiles.erasure import SuppressionFilter
from profiles.models import Profile
from profiles.services import find_person, get_or_create_person, keep_segments_live

IDEMPOTENCY_PREFIX = "api:"


def find_transactional_message(workspace, ref) -> TransactionalMessage | None:
    """By numeric id, else by name (Customer.io accepts either as transactional_message_id)."""
    messages = TransactionalMessage.objects.for_workspace(workspace).select_related(
        "channel_config", "topic", "content")
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
        found = messages.filter(pk=int(ref)).first() if int(ref) < 2**63 else None
        if found is not None:
            return found
    return messages.filter(name=str(ref)).first()


def about(message: TransactionalMessage) -> dict:
    """What templates see of the message as `message.*` (with the delivery's id and channel)."""
    return {"transactional_message_id": message.pk, "name": message.name, "version": message.version}


def describe(workspace_id: int, source_id: str) -> dict:
    """For channels' rendering (registered in CampaignsConfig.ready()): a transactional delivery's
    message, as it is now (it renders the message's current content too)."""
    if not source_id.isdigit():
        return {}
    message = TransactionalMessage.objects.for_workspace(workspace_id).filter(pk=int(source_id)).first()
    return about(message) if message is not None else {}


@dataclass
class SendRequest:
    """A cleaned `POST /v1/send/<channel>` (campaigns/api/send_views.py)."""

    channel: str
    person_ref: dict
    message_ref: int | str | None = None
    to: str = ""
    content: dict = field(default_factory=dict)
    message_data: dict = field(default_factory=dict)
    send_at: datetime | None = None
    retain_content: bool = True
    send_to_unsubscribed: bool | None = None
    tracked: bool | None = None
    idempotency_key: str = ""


RECIPIENT_NAMES = {ChannelType.EMAIL: "email address", ChannelType.SMS: "phone number",
                   ChannelType.WHATSAPP: "phone number"}


def refuse_forgotten(workspace, request: SendRequest) -> None:
    """A person deleted at their request stays deleted: a send naming one of their identifiers
    (or sending to their address) is refused, as ingest refuses it (profiles/erasure.py)."""
    by_person = {"op": "identify", "person": request.person_ref}
    by_address = {"op": "identify", "person": {}}
    if request.to and request.channel == ChannelType.EMAIL:
        by_address["email"] = request.to
    elif request.to and request.channel in consent.PHONE_CHANNELS:
        by_address["phone"] = request.to
    suppressed = SuppressionFilter(workspace, [by_person, by_address])
    message = ("was deleted at the person's request (GDPR/KVKK) and may not be used again; "
               "lift the suppression at /v1/compliance/suppressions first if this is wrong")
    if not suppressed.allows(by_person):
        raise InvalidInput("identifiers", message)
    if not suppressed.allows(by_address):
        raise InvalidInput("to", message)


def _person(workspace, ref: dict) -> Profile:
    person = find_person(workspace, ref)
    if person is not None:
        return person
    if "cio_id" in ref:
        raise InvalidInput("identifiers.cio_id", "no person has this cio_id")
    person = get_or_create_person(workspace, ref)
    keep_segments_live(workspace, [person.pk], {"*"})
    return person


def _channel_config(workspace, request: SendRequest, message) -> ChannelConfig:
    if message is not None and message.channel_config_id:
        if not message.channel_config.active:
            raise InvalidInput("transactional_message_id",
                               f"its channel configuration {message.channel_config.name!r} is not active")
        return message.channel_config
    try:
        return config_for(workspace, request.channel)
    except NoChannelConfig as exc:
        raise InvalidInput(None, str(exc)) from exc


def _message(workspace, request: SendRequest):
    if request.message_ref is None:
        return None
    message = find_transactional_message(workspace, request.message_ref)
    if message is None:
        raise InvalidInput("transactional_message_id", "no transactional message has this id or name")
    if message.channel != request.channel:
        raise InvalidInput("transactional_message_id",
                           f"is a {message.channel} message; send it with POST /v1/send/{message.channel}")
    return message


@transaction.atomic
def send_transactional(*, workspace, request: SendRequest) -> tuple[Delivery, bool]:
    """Queue a transactional message; the person is created when missing (by id or email, as
    Customer.io does). Returns (delivery, created); a repeated idempotency key returns the first
    delivery and sends nothing."""
    key = IDEMPOTENCY_PREFIX + request.idempotency_key if request.idempotency_key else None
    if key:
        existing = Delivery.objects.filter(workspace=workspace, idempotency_key=key).first()
        if existing is not None:
            return existing, False
    message = _message(workspace, request)
    refuse_forgotten(workspace, request)
    config = _channel_config(workspace, request, message)
    person = _person(workspace, request.person_ref)
    recipient = request.to or default_recipient(request.channel, person)
    if not recipient:
        raise InvalidInput("to", f"is required: the person has no {RECIPIENT_NAMES[request.channel]}")
    send_to_unsubscribed = request.send_to_unsubscribed
    if send_to_unsubscribed is None:
        send_to_unsubscribed = message.send_to_unsubscribed if message else True
    tracked = request.tracked
    if tracked is None:
        tracked = message.tracked if message else True
    message_data = {"trigger": request.message_data} if request.message_data else {}
    return queue_delivery(
        workspace, channel=request.channel, source=Delivery.Source.TRANSACTIONAL, profile=person,
        recipient=recipient, source_id=str(message.pk) if message else "",
        message_content=message.content if message else None, channel_config=config,
        topic=message.topic if message else None, content=request.content, message_data=message_data,
        idempotency_key=key, send_at=request.send_at, retain_content=request.retain_content,
        send_to_unsubscribed=send_to_unsubscribed, tracked=tracked)
