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

from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q

from channels.models import (
    ChannelType, ConsentRecord, SubscriptionPreference, SubscriptionTopic, Suppression,
)
from profiles.addresses import normalize_email, normalize_phone
from profiles.changefeed import recording as feed
from profiles.erasure import erased_among
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


# Channels whose addresses are checked against the suppression list.
SUPPRESSION_CHANNELS = (ChannelType.EMAIL, ChannelType.SMS, ChannelType.WHATSAPP)


@dataclass(frozen=True)
class SendAsk:
    """What the consent rules look at for one message (block_reason's arguments)."""

    profile: Profile | None
    channel: str
    address: str
    topic: SubscriptionTopic | None
    send_to_unsubscribed: bool
    opt_out_confirmation: bool = False

    @property
    def listed(self) -> bool:
        return bool(self.address) and self.channel in SUPPRESSION_CHANNELS


@dataclass
class ConsentFacts:
    """What the rules need from the database for a set of asks, loaded by `load_consent`."""

    suppressions: dict = field(default_factory=dict)  # (channel, normalized address) -> reason
    erased: set = field(default_factory=set)  # (channel, address) of people deleted from the workspace
    preferences: dict = field(default_factory=dict)  # profile id -> {(channel, topic id): subscribed}

    def preferences_of(self, profile_id: int) -> dict:
        return self.preferences.get(profile_id, {})


def _listed_reason(ask: SendAsk, facts: ConsentFacts) -> str | None:
    """Rule 1: the address is on the channel's suppression list. Nothing bypasses it, except the
    single confirmation that answers the STOP keyword which suppressed the address (carriers expect
    it; channels/inbound.py queues it once)."""
    if not ask.listed:
        return None
    reason = facts.suppressions.get((ask.channel, normalize_address(ask.channel, ask.address)))
    confirming = ask.opt_out_confirmation and reason == Suppression.Reason.STOP
    if reason is not None and not confirming:
        return f"suppressed: the {ask.channel} address is on the suppression list ({reason})"
    return None


def _erased_reason(ask: SendAsk, facts: ConsentFacts) -> str | None:
    """Rule 1 for a message to a bare address: it belonged to a person deleted from the workspace."""
    if ask.listed and ask.profile is None and (ask.channel, ask.address) in facts.erased:
        return "suppressed: the address belonged to a person deleted from the workspace"
    return None


def _person_reason(ask: SendAsk, facts: ConsentFacts) -> str | None:
    """Rule 1 for the person, then rule 2: subscriptions (global, channel, topic)."""
    profile = ask.profile
    if profile is None:
        return None
    if profile.suppressed:
        return "suppressed: the person is suppressed"
    if ask.send_to_unsubscribed or ask.opt_out_confirmation:
        return None
    if profile.unsubscribed:
        return "unsubscribed: the person unsubscribed from all messages"
    if not topic_allows(ask.topic, ask.channel, facts.preferences_of(profile.pk)):
        what = f"topic {ask.topic.key!r}" if ask.topic else f"the {ask.channel} channel"
        return f"unsubscribed: the person is not subscribed to {what}"
    return None


def decide(ask: SendAsk, facts: ConsentFacts) -> str | None:
    """Why this message may not be sent, or None when it may: the one decision of both send paths
    (block_reason for one message, the batched path for many), from facts loaded beforehand."""
    return _listed_reason(ask, facts) or _erased_reason(ask, facts) or _person_reason(ask, facts)


class _AskedPreferences(ConsentFacts):
    """Facts that note whose preferences the rules ask for (and answer "none")."""

    def __init__(self, facts: ConsentFacts):
        super().__init__(facts.suppressions, facts.erased, {})
        self.asked: set[int] = set()

    def preferences_of(self, profile_id: int) -> dict:
        self.asked.add(profile_id)
        return {}


def load_consent(workspace, asks: list[SendAsk]) -> ConsentFacts:
    """Load what `decide` needs for all of `asks` in a few queries: the suppression list entries of
    their addresses, the deleted people's addresses among those sent to a bare address, and the
    preferences of the people whose decision still depends on them."""
    facts = ConsentFacts()
    wanted: dict[str, set[str]] = {}
    for ask in asks:
        if ask.listed:
            wanted.setdefault(ask.channel, set()).add(normalize_address(ask.channel, ask.address))
    if wanted:
        condition = Q()
        for channel, addresses in wanted.items():
            condition |= Q(channel=channel, address__in=sorted(addresses))
        rows = Suppression.objects.for_workspace(workspace).filter(condition).values_list("channel", "address",
                                                                                           "reason")
        facts.suppressions = {(channel, address): reason for channel, address, reason in rows}
    open_asks = [ask for ask in asks if _listed_reason(ask, facts) is None]
    bare: dict[str, set[str]] = {}
    for ask in open_asks:
        if ask.listed and ask.profile is None:
            bare.setdefault(ask.channel, set()).add(ask.address)
    for channel, addresses in bare.items():
        kind = "email" if channel == ChannelType.EMAIL else "phone"
        facts.erased |= {(channel, address) for address in erased_among(workspace, kind, addresses)}
    asking = _AskedPreferences(facts)
    for ask in open_asks:
        if _erased_reason(ask, facts) is None:
            _person_reason(ask, asking)
    if asking.asked:
        rows = SubscriptionPreference.objects.for_workspace(workspace).filter(profile_id__in=sorted(asking.asked))
        for row in rows:
            facts.preferences.setdefault(row.profile_id, {})[(row.channel, row.topic_id)] = row.subscribed
    return facts


def load_consent_for(workspace, ask: SendAsk) -> ConsentFacts:
    """`load_consent` for one message (the single send path), in at most one query: the address's
    suppression entry and, when the decision may depend on them, the person's preferences, read
    together (`decide` looks at the suppression first, so preferences read beside a suppressed
    address change nothing). A message to a bare address (no person) also needs the deleted
    people's addresses: it goes through `load_consent`."""
    if ask.listed and ask.profile is None:
        return load_consent(workspace, [ask])
    facts = ConsentFacts()
    asking = _AskedPreferences(facts)
    _person_reason(ask, asking)
    parts, params = [], {"ws": workspace.pk}
    if ask.listed:
        parts.append(f"SELECT 's', channel, NULL::bigint, reason, NULL::boolean FROM {Suppression._meta.db_table}"
                     " WHERE workspace_id = %(ws)s AND channel = %(channel)s AND address = %(address)s")
        params.update(channel=ask.channel, address=normalize_address(ask.channel, ask.address))
    if asking.asked:
        parts.append(f"SELECT 'p', channel, topic_id, '', subscribed FROM {SubscriptionPreference._meta.db_table}"
                     " WHERE workspace_id = %(ws)s AND profile_id = %(profile)s")
        params["profile"] = ask.profile.pk
    if not parts:
        return facts
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    for kind, channel, topic_id, reason, subscribed in rows:
        if kind == "s":
            facts.suppressions[(channel, params["address"])] = reason
        else:
            facts.preferences.setdefault(params["profile"], {})[(channel, topic_id)] = subscribed
    return facts


def block_reason(workspace, *, profile: Profile | None, channel: str, address: str,
                 topic: SubscriptionTopic | None, send_to_unsubscribed: bool,
                 opt_out_confirmation: bool = False) -> str | None:
    """Why this message may not be sent, or None when it may (see `decide`)."""
    ask = SendAsk(profile=profile, channel=channel, address=address, topic=topic,
                  send_to_unsubscribed=send_to_unsubscribed, opt_out_confirmation=opt_out_confirmation)
    return decide(ask, load_consent(workspace, [ask]))
