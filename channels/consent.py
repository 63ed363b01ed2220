"""Consent, subscription preferences and suppression: who may be sent what.

Rules (docs/messaging.md):
1. A suppressed address (hard bounce, complaint, STOP, manual) or a suppressed person is never
   sent anything, transactional included.
2. Otherwise a message is stopped when the person unsubscribed globally (`Profile.unsubscribed`),
   from the channel, or from the message's topic (or never opted in to an opt-in topic), unless
   it is a transactional message sent with `send_to_unsubscribed`.
Every change of a preference goes through `record_consent`, which appends to the ledger.
"""

from __future__ import annotations

from django.db import transaction

from channels.models import (
    ChannelType, ConsentRecord, SubscriptionPreference, SubscriptionTopic, Suppression,
)
from profiles.addresses import normalize_email, normalize_phone
from profiles.changefeed import recording as feed
from profiles.erasure import is_erased
from profiles.models import Profile
from profiles.services import keep_segments_live

PHONE_CHANNELS = (ChannelType.SMS, ChannelType.WHATSAPP)


def normalize_address(channel: str, address: str) -> str:
    if channel == ChannelType.EMAIL:
        return normalize_email(address)
    if channel in PHONE_CHANNELS:
        return normalize_phone(address)
    return (address or "").strip()


def suppression_for(workspace, channel: str, address: str) -> Suppression | None:
    return Suppression.objects.for_workspace(workspace).filter(channel=channel,
                                       address=normalize_address(channel, address)).first()


def suppress(workspace, *, channel: str, address: str, reason: str, profile: Profile | None = None,
             note: str = "") -> Suppression:
    """Add an address to the channel's suppression list (idempotent: the first reason stays)."""
    suppression, _ = Suppression.objects.for_workspace(workspace).get_or_create(
        channel=channel, address=normalize_address(channel, address),
        defaults={"reason": reason, "profile": profile, "note": note})
    return suppression


def lift_suppression(workspace, *, channel: str, address: str) -> bool:
    removed, _ = Suppression.objects.for_workspace(workspace).filter(channel=channel,
                                             address=normalize_address(channel, address)).delete()
    return bool(removed)


@transaction.atomic
def record_consent(workspace, profile: Profile, *, subscribed: bool, source: str, channel: str = "",
                   topic: SubscriptionTopic | None = None, evidence: dict | None = None) -> ConsentRecord:
    """Append to the ledger and set the current preference. channel '' and no topic is the
    person's global subscription (`Profile.unsubscribed`, as in Customer.io)."""
    record = ConsentRecord.objects.for_workspace(workspace).create(
        profile=profile, channel=channel, topic_key=topic.key if topic else "",
        action=ConsentRecord.Action.OPT_IN if subscribed else ConsentRecord.Action.OPT_OUT,
        source=source, evidence=evidence or {})
    if not channel and topic is None:
        if profile.unsubscribed == subscribed:
            before = feed.snapshot(profile)
            profile.unsubscribed = not subscribed
            profile.save(update_fields=["unsubscribed", "updated_at"])
            feed.person_changed(profile, before)  # the change feed: `unsubscribed` changed
            keep_segments_live(workspace, [profile.pk], {"channels"})
        return record
    SubscriptionPreference.objects.for_workspace(workspace).update_or_create(
        profile=profile, channel=channel, topic=topic,
        defaults={"subscribed": subscribed, "source": source})
    keep_segments_live(workspace, [profile.pk], {"channels"})
    return record


def preferences_of(workspace, profile: Profile) -> dict[tuple[str, int | None], bool]:
    rows = SubscriptionPreference.objects.for_workspace(workspace).filter(profile=profile)
    return {(row.channel, row.topic_id): row.subscribed for row in rows}


def topic_allows(topic: SubscriptionTopic | None, channel: str, prefs: dict) -> bool:
    """Whether the person's preferences let a message of `topic` through on `channel`."""
    if prefs.get((channel, None)) is False:
        return False
    if topic is None:
        return True
    for key in ((channel, topic.pk), ("", topic.pk)):
        if key in prefs:
            return prefs[key]
    return topic.default_subscribed


def _erased(workspace, channel: str, address: str) -> bool:
    kind = "email" if channel == ChannelType.EMAIL else "phone"
    return is_erased(workspace, kind, address)


def block_reason(workspace, *, profile: Profile | None, channel: str, address: str,
                 topic: SubscriptionTopic | None, send_to_unsubscribed: bool,
                 opt_out_confirmation: bool = False) -> str | None:
    """Why this message may not be sent, or None when it may. Suppression first: nothing bypasses
    it, except the single confirmation that answers the STOP keyword which suppressed the address
    (carriers expect it; channels/inbound.py queues it once)."""
    if address and channel in (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP):
        suppression = suppression_for(workspace, channel, address)
        confirming = opt_out_confirmation and suppression is not None and suppression.reason == Suppression.Reason.STOP
        if suppression is not None and not confirming:
            return f"suppressed: the {channel} address is on the suppression list ({suppression.reason})"
        if profile is None and _erased(workspace, channel, address):
            return "suppressed: the address belonged to a person deleted from the workspace"
    if profile is None:
        return None
    if profile.suppressed:
        return "suppressed: the person is suppressed"
    if send_to_unsubscribed or opt_out_confirmation:
        return None
    if profile.unsubscribed:
        return "unsubscribed: the person unsubscribed from all messages"
    if not topic_allows(topic, channel, preferences_of(workspace, profile)):
        what = f"topic {topic.key!r}" if topic else f"the {channel} channel"
        return f"unsubscribed: the person is not subscribed to {what}"
    return None
