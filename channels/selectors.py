"""Reads of the messaging layer for the App API and the inbox API.

Every function takes the workspace and filters by it on top of the scoped managers (responses
that stream after the view returned use `unscoped` with the workspace named). Lists use keyset
paging: they take the last row's key (`after`) and return up to `limit + 1` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q
from django.db.models.functions import Coalesce, Left

from channels import activity
from channels.models import (
    ChannelConfig, ChannelType, ConsentRecord, Delivery, DeliveryEvent, DeliveryStatus, InboundMessage,
    SubscriptionPreference, SubscriptionTopic, Suppression,
)
from channels.usage import registered_users
from profiles.models import Profile

# In-app deliveries a person's inbox shows: handed over, whatever happened after.
INBOX_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.OPENED, DeliveryStatus.CLICKED,
                  DeliveryStatus.CONVERTED)
PERSON_COLUMNS = {"id": "external_id", "email": "email", "cio_id": "cio_id"}


# --- channel configurations ----------------------------------------------------------------------

def channel_configs(workspace):
    return ChannelConfig.objects.filter(workspace=workspace).order_by("type", "name", "pk")


def find_channel_config(workspace, pk) -> ChannelConfig | None:
    return channel_configs(workspace).filter(pk=pk).first()


def channel_config_users(config: ChannelConfig) -> dict[str, int]:
    """What still points at the configuration (rows that keep it from being deleted): name → count."""
    uses = {
        "deliveries": Delivery.objects.filter(workspace_id=config.workspace_id, channel_config=config).count(),
        "inbound messages": InboundMessage.objects.filter(workspace_id=config.workspace_id,
                                                          channel_config=config).count(),
        **registered_users(config),  # e.g. transactional messages (campaigns)
    }
    return {name: count for name, count in uses.items() if count}


# --- topics --------------------------------------------------------------------------------------

def topics(workspace):
    return SubscriptionTopic.objects.filter(workspace=workspace).order_by("name", "pk")


def find_topic(workspace, pk) -> SubscriptionTopic | None:
    return topics(workspace).filter(pk=pk).first()


def topics_by_key(workspace, keys) -> dict[str, SubscriptionTopic]:
    return {topic.key: topic for topic in topics(workspace).filter(key__in=set(keys))}


# --- people --------------------------------------------------------------------------------------

def find_person(workspace, id_type: str, identifier: str) -> Profile | None:
    if id_type == "email":
        identifier = identifier.strip().lower()
    return Profile.objects.filter(workspace=workspace, **{PERSON_COLUMNS[id_type]: identifier}).first()


def preference_rows(workspace, profile: Profile) -> list[SubscriptionPreference]:
    return list(SubscriptionPreference.objects.filter(workspace=workspace, profile=profile)
                .select_related("topic").order_by("channel", "topic_id"))


# --- deliveries ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryFilters:
    status: str | None = None
    channel: str | None = None
    source: str | None = None
    transactional_message_id: int | None = None
    person: tuple[str, str] | None = None  # (id_type, value)
    created_after: datetime | None = None
    created_before: datetime | None = None

    def apply(self, queryset):
        for name in ("status", "channel", "source"):
            if getattr(self, name) is not None:
                queryset = queryset.filter(**{name: getattr(self, name)})
        if self.transactional_message_id is not None:
            queryset = queryset.filter(source=Delivery.Source.TRANSACTIONAL, source_id=str(self.transactional_message_id))
        if self.person is not None:
            id_type, value = self.person
            value = value.strip().lower() if id_type == "email" else value
            queryset = queryset.filter(**{f"profile__{PERSON_COLUMNS[id_type]}": value})
        if self.created_after is not None:
            queryset = queryset.filter(created_at__gte=self.created_after)
        if self.created_before is not None:
            queryset = queryset.filter(created_at__lte=self.created_before)
        return queryset


def deliveries(workspace, filters: DeliveryFilters, *, after: int | None, limit: int) -> list[Delivery]:
    """Newest first."""
    queryset = filters.apply(Delivery.objects.filter(workspace=workspace)).select_related("profile")
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    return list(queryset.order_by("-pk")[: limit + 1])


def find_delivery(workspace, public_id: str) -> Delivery | None:
    events = DeliveryEvent.objects.filter(workspace=workspace).order_by("at", "pk")
    return (Delivery.objects.filter(workspace=workspace, public_id=public_id)
            .select_related("profile").prefetch_related(Prefetch("events", queryset=events)).first())


# --- suppressions and the consent ledger ---------------------------------------------------------

def suppressions(workspace, *, channel: str | None, after: int | None, limit: int) -> list[Suppression]:
    queryset = Suppression.objects.filter(workspace=workspace)
    if channel:
        queryset = queryset.filter(channel=channel)
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    return list(queryset.order_by("-pk")[: limit + 1])


def find_suppression(workspace, channel: str, address: str) -> Suppression | None:
    from channels.consent import normalize_address

    return Suppression.objects.filter(workspace=workspace, channel=channel,
                                      address=normalize_address(channel, address)).first()


LEDGER_VALUES = ("id", "created_at", "profile__cio_id", "profile__external_id", "channel", "topic_key", "action",
                 "source", "evidence")


def consent_ledger(workspace, *, since: datetime | None, until: datetime | None, channel: str | None,
                   topic_key: str | None, cio_id: str | None):
    """Ledger rows as dicts, oldest first, for streaming (unscoped: read after the view returns)."""
    records = ConsentRecord.objects.for_workspace(workspace)
    if since is not None:
        records = records.filter(created_at__gte=since)
    if until is not None:
        records = records.filter(created_at__lte=until)
    if channel is not None:
        records = records.filter(channel=channel)
    if topic_key is not None:
        records = records.filter(topic_key=topic_key)
    if cio_id is not None:
        records = records.filter(profile__cio_id=cio_id)
    return records.order_by("created_at", "id").values(*LEDGER_VALUES)


# --- the in-app inbox ----------------------------------------------------------------------------

def _with_dismissed(queryset, workspace):
    dismissed = DeliveryEvent.objects.filter(workspace=workspace, delivery=OuterRef("pk"), kind="dismissed")
    return queryset.annotate(dismissed=Exists(dismissed))


def inbox_messages(workspace, profile: Profile, *, include_dismissed: bool, after: int | None,
                   limit: int) -> list[Delivery]:
    queryset = _with_dismissed(Delivery.objects.filter(
        workspace=workspace, profile=profile, channel=ChannelType.IN_APP, status__in=INBOX_STATUSES), workspace)
    if not include_dismissed:
        queryset = queryset.filter(dismissed=False)
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    return list(queryset.order_by("-pk")[: limit + 1])


def find_inbox_message(workspace, profile: Profile, public_id: str) -> Delivery | None:
    return _with_dismissed(Delivery.objects.filter(
        workspace=workspace, profile=profile, channel=ChannelType.IN_APP, status__in=INBOX_STATUSES,
        public_id=public_id), workspace).first()


def pending_deliveries() -> dict[tuple[str, str], int]:
    """(channel, status) → deliveries queued or sending, over every workspace and channel (0 when
    none): the backlog /metrics reports."""
    counts = dict(((channel, status), n) for channel, status, n in Delivery.unscoped.filter(
        status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)).order_by().values_list("channel", "status")
        .annotate(n=Count("pk")).values_list("channel", "status", "n"))
    return {(channel, status): counts.get((channel, status), 0)
            for channel in ChannelType.values for status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)}


# --- the console's dashboard ----------------------------------------------------------------------

# What the dashboard charts per day, from the delivery's own timestamps.
ACTIVITY_KINDS = ("sent", "delivered", "opened", "clicked", "failed")
# Failure reasons are read from deliveries created up to this long before the period (a failure
# comes soon after the delivery is created; a later one of an older delivery is not listed).
ACTIVITY_LOOKBACK = timedelta(days=30)
FAILED_STATUSES = (DeliveryStatus.BOUNCED, DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERABLE)


def message_activity(workspace, *, start: datetime, end: datetime, time_zone: str, channel: str | None = None,
                     source: str | None = None, source_id: str | None = None) -> dict[tuple[date, str], int]:
    """(day in `time_zone`, kind) → deliveries sent, delivered, opened, clicked or failed (failed or
    bounced) that day, for `start` <= time < `end`, optionally of one channel and one message
    (`source`, `source_id`): read from the 15-minute activity rollup (channels/activity.py), so the
    cost follows the days shown, not the deliveries stored."""
    counts: dict[tuple[date, str], int] = {}
    for (day, kind), n in activity.per_day(workspace, start=start, end=end, time_zone=time_zone, channel=channel,
                                           source=source, source_id=source_id).items():
        kind = "failed" if kind == "bounced" else kind
        if kind in ACTIVITY_KINDS:
            counts[(day, kind)] = counts.get((day, kind), 0) + n
    return counts


REPORT_COUNTS = ("sent", "delivered", "opened", "clicked", "bounced", "failed", "unsubscribed")


def delivery_report(workspace, *, start: datetime, end: datetime, channel: str | None = None) -> list[dict]:
    """Per message (source, source id) and channel, what happened in [start, end): how many of its
    deliveries were sent, delivered, opened, clicked, bounced, failed, and the unsubscribes they
    brought, most sent first. One grouped query over the activity rollup (channels/activity.py):
    its cost follows the messages and the days, not the deliveries."""
    return activity.per_message_counts(workspace, kinds=REPORT_COUNTS, start=start, end=end, channel=channel)


def failure_reasons(workspace, *, since: datetime, limit: int = 8) -> list[dict]:
    """The commonest reasons deliveries failed, bounced or were undeliverable since `since`
    (status, channel, the reason's first line cut to 120 characters, how many), most first."""
    rows = (Delivery.objects.filter(workspace=workspace, created_at__gte=since - ACTIVITY_LOOKBACK,
                                    failed_at__gte=since, status__in=FAILED_STATUSES)
            .annotate(reason=Left("failure_reason", 120))
            .values("status", "channel", "reason").annotate(n=Count("pk")).order_by("-n", "status", "channel", "reason"))
    return [{**row, "reason": row["reason"].split("\n", 1)[0]} for row in rows[:limit]]


def delivery_backlog(workspace, *, now: datetime) -> dict:
    """Deliveries waiting to be handed to a provider: how many are due now (queued, not scheduled
    later) or being sent, per channel, and how long the oldest due one has waited (queue lag)."""
    due = Delivery.objects.filter(workspace=workspace, status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)).filter(
        Q(send_at__isnull=True) | Q(send_at__lte=now))
    per_channel = dict(due.order_by().values_list("channel").annotate(n=Count("pk")))
    oldest = due.filter(status=DeliveryStatus.QUEUED).aggregate(
        oldest=Min(Coalesce("send_at", "created_at")))["oldest"]
    return {"per_channel": per_channel, "total": sum(per_channel.values()),
            "lag_seconds": max(0, int((now - oldest).total_seconds())) if oldest else 0}
