"""What SMS and WhatsApp providers tell us: messages people send (with keywords) and the delivery
status of the messages we sent. Called by the webhook views (channels/hooks.py) once the
provider's signature is checked; every lookup is limited to the configuration's workspace.

An inbound message:
1. is stored once per provider message id (a retried webhook changes nothing);
2. is tied to the person with that phone number, created when there is none, unless the number
   belonged to a person who was deleted (compliance suppression): then nothing about the message
   is stored and no person is created, but STOP/START still change the number's suppression;
3. applies its keyword (channels/keywords.py): opt-out suppresses the number on the channel and
   records the opt-out in the consent ledger, opt-in lifts a STOP suppression, help and custom
   keywords auto-reply; replies are deliveries with source `auto_reply` sent from the same
   number. The opt-out confirmation is queued once, when the suppression is created, and marked
   `opt_out_confirmation` so the send pipeline lets that one message through the new suppression;
4. becomes the person event `sms_received`/`whatsapp_received` {keyword, text, from}, plus the
   keyword rule's own event if it names one;
5. is recorded in the change feed (`inbound_message`, in the same transaction; docs/change-feed.md),
   as is the person it created.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from channels import keywords
from channels.consent import lift_suppression, normalize_address, record_consent, suppress, suppression_for
from channels.feedback import record_delivery_event
from channels.models import (
    ConsentSource, Delivery, DeliveryEvent, InboundMessage, KeywordRule, SubscriptionPreference, Suppression,
)
from profiles.changefeed import recording as feed
from profiles.changefeed.consumers import nudge as nudge_consumers
from profiles.erasure import SuppressionFilter
from profiles.models import Profile

Action = KeywordRule.Action
MAX_EVENT_TEXT = 1000
E164 = re.compile(r"^\+[1-9]\d{3,14}$")


def sender_phone(channel: str, address: str) -> str | None:
    """The sender's number in E.164, or None when it is not a phone number (short code, name)."""
    phone = normalize_address(channel, address)
    return phone if E164.match(phone) else None


@dataclass
class Received:
    message: InboundMessage | None  # None: the sender is a deleted person; nothing was stored
    created: bool
    match: keywords.KeywordMatch | None = None
    profile: Profile | None = None
    replies: list[Delivery] | None = None


def _lock(workspace_id: int, address: str) -> None:
    """Serialise work on one sender (transaction-scoped), so two first messages from a new number
    create one person."""
    digest = hashlib.blake2b(f"inbound:{workspace_id}:{address}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def _deletion_suppressed(workspace, phone: str) -> bool:
    """Whether the number belonged to a deleted person: checked exactly as ingest checks it, and
    counted on the suppression like a dropped ingest operation."""
    operation = {"op": "identify", "phone": phone}
    guard = SuppressionFilter(workspace, [operation])
    if guard.allows(operation):
        return False
    guard.save()
    return True


def person_for_phone(workspace, phone: str) -> tuple[Profile | None, bool]:
    """(the person with this number — the earliest if several share it — or a new one, created);
    (None, False) when the number belongs to a deleted person."""
    person = Profile.objects.for_workspace(workspace).filter(phone=phone).order_by("pk").first()
    if person is not None:
        return person, False
    if not phone or _deletion_suppressed(workspace, phone):
        return None, False
    person = Profile.objects.for_workspace(workspace).create(phone=phone)
    feed.person_changed(person, None)
    return person, True


@transaction.atomic
def receive_message(config, *, from_address: str, provider_message_id: str, body: str = "", to_address: str = "",
                    media: list | None = None) -> Received:
    workspace = config.workspace
    channel = config.type
    phone = sender_phone(channel, from_address)
    if phone is None:
        raise ValueError(f"the sender {from_address!r} is not an E.164 phone number")
    provider_message_id = provider_message_id[:255]
    _lock(workspace.pk, f"{channel}:{phone}")
    existing = InboundMessage.objects.for_workspace(workspace).filter(channel_config=config,
                                              provider_message_id=provider_message_id).first()
    if existing is not None:
        return Received(existing, created=False)
    profile, new_person = person_for_phone(workspace, phone)
    match = keywords.match(workspace, config, body)
    message = None
    if profile is not None:
        message = InboundMessage.objects.for_workspace(workspace).create(
            channel_config=config, channel=channel, profile=profile, from_address=phone,
            to_address=normalize_address(channel, to_address)[:64], body=body, media=media or [],
            provider_message_id=provider_message_id, keyword=match.keyword if match else "")
        feed.inbound_message(message)
        workspace_id = workspace.pk
        transaction.on_commit(lambda: nudge_consumers(workspace_id))  # a waiting survey hears the reply now
    replies = apply_keyword(config, match, phone=phone, profile=profile, text=body,
                            message_id=provider_message_id) if match else []
    if profile is not None:
        _record_person_events(workspace, profile, channel, match, text=body, phone=phone, new_person=new_person)
    return Received(message, created=message is not None, match=match, profile=profile, replies=replies)


# --- keywords --------------------------------------------------------------------------------------

def _channel_subscribed(workspace, profile: Profile, channel: str) -> bool | None:
    return SubscriptionPreference.objects.for_workspace(workspace).filter(profile=profile, channel=channel,
                                                  topic__isnull=True).values_list("subscribed", flat=True).first()


def apply_keyword(config, match: keywords.KeywordMatch, *, phone: str, profile: Profile | None, text: str,
                  message_id: str) -> list[Delivery]:
    """Carry out the keyword; returns the auto-replies queued."""
    workspace, channel = config.workspace, config.type
    evidence = {"keyword": match.keyword, "text": text[:MAX_EVENT_TEXT], "message_id": message_id,
                "channel_config": config.public_id}
    reply = match.reply
    if match.action == Action.OPT_OUT:
        already = suppression_for(workspace, channel, phone)
        if already is None:
            suppress(workspace, channel=channel, address=phone, reason=Suppression.Reason.STOP, profile=profile,
                     note=f"{match.keyword.upper()} keyword, message {message_id}"[:500])
        if profile is not None and (already is None or _channel_subscribed(workspace, profile, channel) is not False):
            record_consent(workspace, profile, subscribed=False, source=ConsentSource.KEYWORD, channel=channel,
                           evidence=evidence)
        # Confirm once: a second STOP from a number already opted out gets no answer.
        if already is not None or not reply:
            return []
        return [_queue_reply(config, phone, profile, reply, match, message_id, opt_out_confirmation=True)]
    if match.action == Action.OPT_IN:
        current = suppression_for(workspace, channel, phone)
        lifted = current is not None and current.reason == Suppression.Reason.STOP and \
            lift_suppression(workspace, channel=channel, address=phone)
        if profile is not None and (lifted or _channel_subscribed(workspace, profile, channel) is False):
            record_consent(workspace, profile, subscribed=True, source=ConsentSource.KEYWORD, channel=channel,
                           evidence=evidence)
        if current is not None and not lifted:
            return []  # still suppressed for another reason (bounce, manual): a reply could not go out
    if not reply:
        return []
    return [_queue_reply(config, phone, profile, reply, match, message_id)]


def _queue_reply(config, phone: str, profile: Profile | None, text: str, match: keywords.KeywordMatch,
                 message_id: str, *, opt_out_confirmation: bool = False) -> Delivery:
    from channels.deliveries import queue_delivery

    content = {"body": text}
    if opt_out_confirmation:
        content["opt_out_confirmation"] = True
    key = hashlib.sha256(f"{config.pk}:{message_id}".encode()).hexdigest()[:40]
    delivery, _ = queue_delivery(config.workspace, channel=config.type, source=Delivery.Source.AUTO_REPLY,
                                 profile=profile, recipient=phone, channel_config=config, source_id=match.keyword,
                                 content=content, idempotency_key=f"keyword-reply:{key}")
    return delivery


def _record_person_events(workspace, profile: Profile, channel: str, match, *, text: str, phone: str,
                          new_person: bool) -> None:
    from profiles.services import keep_segments_live, record_events

    data = {"keyword": match.keyword if match else "", "text": text[:MAX_EVENT_TEXT], "from": phone}
    names = [f"{channel}_received"]
    if match is not None and match.event_name:
        names.append(match.event_name)
    now = timezone.now().timestamp()
    record_events(workspace, [{"person": {"cio_id": profile.cio_id}, "name": name, "type": "event", "data": data,
                               "timestamp": now, "dedupe_id": None} for name in names])
    keep_segments_live(workspace, [profile.pk], {"*"} if new_person else {f"events:{name}" for name in names})


# --- delivery statuses -------------------------------------------------------------------------

# A status callback can arrive before the pipeline has stored the provider's message id (Twilio
# and Meta call back as soon as they accept the message). Such a status is kept this long in the
# cache, one key per kind, and applied by `apply_early_statuses` right after `sent` is recorded.
EARLY_STATUS_SECONDS = 600
EARLY_STATUS_KINDS = ("sent", "delivered", "opened", "undeliverable", "failed")  # the order they are applied in
_REFRESHED_FIELDS = ["status", "failure_reason", "sent_at", "delivered_at", "opened_at", "failed_at", "updated_at"]


def _early_key(config_id: int, provider_message_id: str, kind: str) -> str:
    digest = hashlib.sha256(provider_message_id.encode()).hexdigest()[:40]
    return f"early-status:{config_id}:{digest}:{kind}"


def _locked_delivery(config, provider_message_id: str) -> Delivery | None:
    return (Delivery.objects.for_workspace(config.workspace_id).select_for_update(of=("self",))
            .select_related("channel_config", "profile")
            .filter(channel_config_id=config.pk, provider_message_id=provider_message_id).first())


def _record_once(delivery: Delivery, kind: str, *, at, data: dict, stop_reason: str | None) -> DeliveryEvent | None:
    """Record the kind unless the (locked) delivery already has it."""
    if DeliveryEvent.objects.for_workspace(delivery.workspace_id).filter(delivery=delivery, kind=kind).exists():
        return None
    event = record_delivery_event(delivery, kind, at=at, data=data)
    if stop_reason:
        suppress_stopped_address(delivery.channel_config, delivery.recipient, stop_reason, profile=delivery.profile)
    return event


@transaction.atomic
def record_status(config, provider_message_id: str, kind: str, *, at: datetime | None = None,
                  data: dict | None = None, stop_reason: str | None = None) -> DeliveryEvent | None:
    """Record a provider status (`sent`, `delivered`, `opened`, `failed`, `undeliverable`) on the
    configuration's delivery with that provider id. Each kind is recorded once per delivery: the
    pipeline already recorded `sent`, and providers repeat callbacks. `stop_reason`: the provider
    says the person opted out (Twilio 21610), so the number is suppressed too.

    A status for an id no delivery has (yet) is kept for EARLY_STATUS_SECONDS; returns None."""
    if not provider_message_id:
        return None
    data = data or {}
    delivery = _locked_delivery(config, provider_message_id)
    if delivery is None:
        entry = {"at": (at or timezone.now()).timestamp(), "data": data, "stop_reason": stop_reason}
        cache.add(_early_key(config.pk, provider_message_id, kind), entry, EARLY_STATUS_SECONDS)
        # The pipeline reads the cache right after storing the id: if it stored the id between the
        # look-up above and the write, this second look-up (a new snapshot) finds the delivery.
        delivery = _locked_delivery(config, provider_message_id)
        if delivery is None:
            return None
    return _record_once(delivery, kind, at=at, data=data, stop_reason=stop_reason)


def _early_keys(delivery: Delivery) -> dict[str, str]:
    if not delivery.provider_message_id or not delivery.channel_config_id:
        return {}
    return {kind: _early_key(delivery.channel_config_id, delivery.provider_message_id, kind)
            for kind in EARLY_STATUS_KINDS}


def apply_early_statuses(delivery: Delivery) -> list[DeliveryEvent]:
    """Record the statuses that arrived for this delivery's provider id before it was stored.
    Called by the send pipeline right after recording `sent`; `delivery` is refreshed."""
    keys = _early_keys(delivery)
    found = cache.get_many(list(keys.values())) if keys else {}
    return _apply_found(delivery, keys, found) if found else []


def apply_early_statuses_many(deliveries: list[Delivery]) -> None:
    """`apply_early_statuses` for a send batch's deliveries: one Redis round trip looks for all of
    them; only those with early statuses are then locked and updated, one at a time."""
    keyed = [(delivery, _early_keys(delivery)) for delivery in deliveries]
    wanted = [key for _, keys in keyed for key in keys.values()]
    found = cache.get_many(wanted) if wanted else {}
    if not found:
        return
    for delivery, keys in keyed:
        own = {key: found[key] for key in keys.values() if key in found}
        if own:
            _apply_found(delivery, keys, own)


def _apply_found(delivery: Delivery, keys: dict[str, str], found: dict) -> list[DeliveryEvent]:
    events = []
    with transaction.atomic():
        locked = (Delivery.objects.for_workspace(delivery.workspace_id).select_for_update(of=("self",))
                  .select_related("channel_config", "profile")
                  .get(pk=delivery.pk))
        for kind, key in keys.items():
            entry = found.get(key)
            if entry is None:
                continue
            at = datetime.fromtimestamp(entry["at"], UTC)
            if locked.sent_at and at < locked.sent_at:  # arrived before we noted the send: not before it
                at = locked.sent_at
            event = _record_once(locked, kind, at=at, data=entry["data"], stop_reason=entry["stop_reason"])
            if event is not None:
                events.append(event)
        transaction.on_commit(lambda: cache.delete_many(list(found)))
    if events:
        delivery.refresh_from_db(fields=_REFRESHED_FIELDS)
    return events


def suppress_stopped_address(config, address: str, note: str, *, profile: Profile | None = None) -> None:
    """A provider says the person opted out at its level (Twilio error 21610): never again."""
    if profile is None:
        profile = Profile.objects.for_workspace(config.workspace_id).filter(
                                          phone=normalize_address(config.type, address)).order_by("pk").first()
    suppress(config.workspace, channel=config.type, address=address, reason=Suppression.Reason.STOP,
             profile=profile, note=note[:500])
