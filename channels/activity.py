"""What happened to deliveries, counted per 15 minutes: the rollup the console's daily charts read
(the dashboard's messages per day, the delivery report's chart) instead of scanning deliveries.

A count is added in the transaction that sets the delivery's timestamp for the first time
(channels/feedback.py `_apply_kind`: sent_at, delivered_at, opened_at, clicked_at, converted_at,
failed_at), so the rollup and the deliveries agree: a rolled-back change counts nothing, a
repeated open counts once. Unsubscribes, which set no timestamp, count as their events are
recorded. Slots are 15 minutes of UTC, so a day of any time zone (all offsets are
whole quarters of an hour) is a whole number of slots. Each count goes to its message's row and to
the channel's total row (source `*`), which is what the dashboard reads: a month of totals is a few
thousand rows whatever the number of messages. One upsert per transaction, its rows in a
fixed order (concurrent batches never wait on each other in opposite orders). The rows hold no
personal data: counts per message and channel, kept when deliveries are deleted.
"""

from collections import Counter
from datetime import date, datetime, timedelta

from django.db import connection, models

from core.models import WorkspaceScopedModel

SLOT = timedelta(minutes=15)
# The delivery column first set → what the rollup counts (failed_at: bounced apart from failed).
KIND_FOR_COLUMN = {"sent_at": "sent", "delivered_at": "delivered", "opened_at": "opened", "clicked_at": "clicked",
                   "converted_at": "converted", "failed_at": "failed"}
# Delivery events counted as they are recorded (they set no timestamp on the delivery).
EVENT_KINDS = ("unsubscribed",)
TOTAL = "*"  # the source of a channel's total rows


class DeliveryActivity(WorkspaceScopedModel):
    slot = models.DateTimeField(help_text="Start of the 15-minute slot (UTC)")
    channel = models.CharField(max_length=10)
    source = models.CharField(max_length=20)
    source_id = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=20)
    count = models.BigIntegerField(default=0)

    audit_log = False  # counters written by the send path and provider feedback

    class Meta:
        app_label = "channels"
        constraints = [models.UniqueConstraint(fields=["workspace", "slot", "channel", "source", "source_id", "kind"],
                                               name="deliveryactivity_unique_slot")]
        indexes = [models.Index(fields=["workspace", "source", "source_id", "slot"], name="deliveryactivity_message")]
        verbose_name_plural = "delivery activity"

    def __str__(self):
        return f"{self.kind} {self.channel} at {self.slot:%Y-%m-%d %H:%M}"


def slot_of(at: datetime) -> datetime:
    return at - timedelta(minutes=at.minute % 15, seconds=at.second, microseconds=at.microsecond)


def kind_of(column: str, event_kind: str) -> str:
    return "bounced" if column == "failed_at" and event_kind == "bounced" else KIND_FOR_COLUMN[column]


class Tally:
    """Counts gathered in one transaction, written with `save` before it commits."""

    def __init__(self):
        self.counts: Counter = Counter()

    def add(self, delivery, column: str | None, event_kind: str, at: datetime) -> None:
        """Count a timestamp set for the first time (`column`), or an event of EVENT_KINDS."""
        if column in KIND_FOR_COLUMN:
            kind = kind_of(column, event_kind)
        elif column is None and event_kind in EVENT_KINDS:
            kind = event_kind
        else:
            return
        slot = slot_of(at)
        self.counts[(delivery.workspace_id, slot, delivery.channel, delivery.source, delivery.source_id or "",
                     kind)] += 1
        self.counts[(delivery.workspace_id, slot, delivery.channel, TOTAL, "", kind)] += 1

    def save(self) -> None:
        if not self.counts:
            return
        rows = sorted(self.counts.items())
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        params = [value for key, n in rows for value in (*key, n)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {DeliveryActivity._meta.db_table}
                        (workspace_id, slot, channel, source, source_id, kind, count) VALUES {values}
                    ON CONFLICT (workspace_id, slot, channel, source, source_id, kind)
                    DO UPDATE SET count = {DeliveryActivity._meta.db_table}.count + EXCLUDED.count""", params)
        self.counts.clear()


def per_day(workspace, *, start: datetime, end: datetime, time_zone: str, channel: str | None = None,
            source: str | None = None, source_id: str | None = None) -> dict[tuple[date, str], int]:
    """(day in `time_zone`, kind) → how many deliveries that kind happened to that day, for
    `start` <= slot < `end` (both at a slot boundary), optionally for one channel and one message
    (without one, the channels' total rows are read)."""
    if source is None:  # the channels' total rows: (workspace, "*", "", slot) leads the message index
        source, source_id = TOTAL, ""
    params = {"tz": time_zone, "ws": workspace.pk, "start": start, "end": end, "channel": channel,
              "source": source, "source_id": source_id}
    filters = "".join(f" AND {name} = %({name})s" for name in ("channel", "source", "source_id")
                      if params[name] is not None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (slot AT TIME ZONE %(tz)s)::date, kind, sum(count)::bigint
                FROM {DeliveryActivity._meta.db_table}
                WHERE workspace_id = %(ws)s AND slot >= %(start)s AND slot < %(end)s{filters}
                GROUP BY 1, 2""", params)
        return {(day, kind): n for day, kind, n in cursor.fetchall()}


def per_message_counts(workspace, *, kinds: tuple[str, ...], start: datetime, end: datetime,
                       channel: str | None = None) -> list[dict]:
    """Per message (source, source id) and channel, how many times each of `kinds` happened in
    [start, end), the most `kinds[0]` first (the messages' rows, not the channel totals)."""
    rows = (DeliveryActivity.objects.for_workspace(workspace.pk)
            .filter(kind__in=kinds, slot__gte=start, slot__lt=end).exclude(source=TOTAL))
    if channel:
        rows = rows.filter(channel=channel)
    sums = {kind: models.Sum("count", filter=models.Q(kind=kind), default=0) for kind in kinds}
    return list(rows.values("source", "source_id", "channel").annotate(**sums)
                .order_by(f"-{kinds[0]}", "source", "source_id", "channel"))


def rebuild(workspace_id: int | None = None) -> None:
    """Recount the rollup from the deliveries stored (all workspaces, or one): its migration fills it
    so, and tests that store deliveries directly use it. The counts of deliveries deleted since are
    gone from a rebuilt rollup."""
    where = "" if workspace_id is None else " AND d.workspace_id = %(ws)s"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DeliveryActivity._meta.db_table}"
                       + ("" if workspace_id is None else " WHERE workspace_id = %(ws)s"), {"ws": workspace_id})
        cursor.execute(f"""
            INSERT INTO {DeliveryActivity._meta.db_table} (workspace_id, slot, channel, source, source_id, kind, count)
            SELECT d.workspace_id, date_bin('15 minutes', v.at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), d.channel,
                   d.source, d.source_id, v.kind, count(*)
            FROM channels_delivery d
            CROSS JOIN LATERAL (VALUES ('sent', d.sent_at), ('delivered', d.delivered_at), ('opened', d.opened_at),
                                       ('clicked', d.clicked_at), ('converted', d.converted_at),
                                       (CASE WHEN d.status = 'bounced' THEN 'bounced' ELSE 'failed' END, d.failed_at))
                 AS v(kind, at)
            WHERE v.at IS NOT NULL{where}
            GROUP BY 1, 2, 3, 4, 5, 6""", {"ws": workspace_id})
        cursor.execute(f"""
            INSERT INTO {DeliveryActivity._meta.db_table} (workspace_id, slot, channel, source, source_id, kind, count)
            SELECT d.workspace_id, date_bin('15 minutes', e.at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), d.channel,
                   d.source, d.source_id, e.kind, count(*)
            FROM channels_deliveryevent e JOIN channels_delivery d ON d.id = e.delivery_id
            WHERE e.kind = ANY(%(events)s){where}
            GROUP BY 1, 2, 3, 4, 5, 6""", {"ws": workspace_id, "events": list(EVENT_KINDS)})
        cursor.execute(f"""
            INSERT INTO {DeliveryActivity._meta.db_table} (workspace_id, slot, channel, source, source_id, kind, count)
            SELECT workspace_id, slot, channel, %(total)s, '', kind, sum(count)
            FROM {DeliveryActivity._meta.db_table}
            WHERE source <> %(total)s{where.replace("d.workspace_id", "workspace_id")}
            GROUP BY 1, 2, 3, 6""", {"ws": workspace_id, "total": TOTAL})
