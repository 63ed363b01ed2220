"""Delivery metrics for /metrics and the console, counted in Redis so every process adds to the same
totals and every web process answers the same.

- `ulak_delivery_events_total{channel, kind}`: delivery events recorded (queued, sent, delivered,
  opened, clicked, bounced, failed, retry, suppressed, undeliverable...), counted once their
  transaction commits (`count_event`, called by channels.feedback for every event it records).
- `ulak_delivery_handoff_seconds{channel}`: a histogram of the time from a delivery becoming due (its
  creation, or the `send_at` of a scheduled first attempt) to the provider accepting it (`sent`).
- Per configuration, the messages sent in each of the last minutes (the console's throughput).

Counts are gathered in the process (on commit: a rolled-back event never counts) and written to
Redis in one pipeline when the task or request ends (`flush`, connected in ChannelsConfig.ready),
or when many have gathered. A process killed before its flush loses its last counts: these are
metrics, not records (the deliveries and their events are the records).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

EVENTS_KEY = "metrics:delivery-events"  # hash "<channel>|<kind>" → count
HANDOFF_KEY = "metrics:handoff"  # hash "<channel>|<bucket index>" → count, "<channel>|sum" → seconds
SENT_KEY = "metrics:sent:{minute}"  # hash configuration id → messages sent in that minute
SENT_MINUTES_KEPT = 15
HANDOFF_BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)  # seconds, then +Inf
FLUSH_AT = 1000  # gathered counts written at once when this many wait

_lock = threading.Lock()
_events: Counter = Counter()
_handoff: Counter = Counter()
_handoff_sum: Counter = Counter()
_sent: Counter = Counter()  # (minute, configuration id) → count
_waiting = 0


def _bucket(seconds: float) -> int:
    for index, bound in enumerate(HANDOFF_BUCKETS):
        if seconds <= bound:
            return index
    return len(HANDOFF_BUCKETS)


def count_event(delivery, kind: str, at: datetime) -> None:
    """Count `kind` for the delivery once the current transaction commits (called for every
    delivery event recorded)."""
    channel, config_id = delivery.channel, delivery.channel_config_id
    handoff = None
    if kind == "sent":
        due = delivery.created_at
        if delivery.send_at and delivery.attempts <= 1 and delivery.send_at > due:
            due = delivery.send_at
        if due is not None:
            handoff = max(0.0, (at - due).total_seconds())
    transaction.on_commit(lambda: _gather(channel, kind, config_id, handoff, at), robust=True)


def _gather(channel: str, kind: str, config_id: int | None, handoff: float | None, at: datetime) -> None:
    global _waiting
    with _lock:
        _events[f"{channel}|{kind}"] += 1
        if handoff is not None:
            _handoff[f"{channel}|{_bucket(handoff)}"] += 1
            _handoff_sum[f"{channel}|sum"] += handoff
        if kind == "sent" and config_id is not None:
            _sent[(int(at.timestamp()) // 60, config_id)] += 1
        _waiting += 1
        full = _waiting >= FLUSH_AT
    if full:
        flush()


def flush(**_signal_kwargs) -> None:
    """Write the gathered counts to Redis in one pipeline (a task or request ended, or many wait)."""
    global _waiting
    with _lock:
        if not _waiting:
            return
        events, handoff, handoff_sum, sent = dict(_events), dict(_handoff), dict(_handoff_sum), dict(_sent)
        _events.clear(), _handoff.clear(), _handoff_sum.clear(), _sent.clear()
        _waiting = 0
    try:
        client = _client()
        pipe = client.pipeline(transaction=False)
        for field, count in events.items():
            pipe.hincrby(cache.make_and_validate_key(EVENTS_KEY), field, count)
        for field, count in handoff.items():
            pipe.hincrby(cache.make_and_validate_key(HANDOFF_KEY), field, count)
        for field, seconds in handoff_sum.items():
            pipe.hincrbyfloat(cache.make_and_validate_key(HANDOFF_KEY), field, seconds)
        for (minute, config_id), count in sent.items():
            key = cache.make_and_validate_key(SENT_KEY.format(minute=minute))
            pipe.hincrby(key, str(config_id), count)
            pipe.expire(key, (SENT_MINUTES_KEPT + 1) * 60)
        pipe.execute()
    except Exception:  # metrics must never fail a send; the counts are lost, the log says so
        logger.warning("delivery metrics could not be written to Redis", exc_info=True)


def _client():
    return cache._cache.get_client(None, write=True)


# --- reading --------------------------------------------------------------------------------------

def event_counts() -> dict[tuple[str, str], int]:
    """(channel, kind) → events counted since Redis was last emptied."""
    raw = _client().hgetall(cache.make_and_validate_key(EVENTS_KEY))
    out = {}
    for field, count in raw.items():
        channel, _, kind = field.decode().partition("|")
        out[(channel, kind)] = int(count)
    return out


def handoff_histograms() -> dict[str, tuple[list[int], float]]:
    """channel → (count per bucket, the last one +Inf; sum of seconds)."""
    raw = _client().hgetall(cache.make_and_validate_key(HANDOFF_KEY))
    out: dict[str, tuple[list[int], float]] = {}
    for field, value in raw.items():
        channel, _, part = field.decode().partition("|")
        buckets, total = out.setdefault(channel, ([0] * (len(HANDOFF_BUCKETS) + 1), 0.0))
        if part == "sum":
            out[channel] = (buckets, float(value))
        else:
            buckets[int(part)] += int(value)
    return out


def sent_per_minute(config_ids, *, minutes: int = 5, now: float | None = None) -> dict[int, float]:
    """Configuration id → messages sent per minute over the last `minutes` minutes, the current
    (partial) one included (one Redis pipeline)."""
    config_ids = [int(pk) for pk in config_ids]
    if not config_ids:
        return {}
    current = int((now or time.time()) // 60)
    pipe = _client().pipeline(transaction=False)
    for minute in range(current - minutes + 1, current + 1):
        pipe.hmget(cache.make_and_validate_key(SENT_KEY.format(minute=minute)), [str(pk) for pk in config_ids])
    totals = Counter()
    for values in pipe.execute():
        for pk, value in zip(config_ids, values):
            totals[pk] += int(value or 0)
    return {pk: totals[pk] / minutes for pk in config_ids}
