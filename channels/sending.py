"""The send pipeline, run by the per-channel send tasks (channels/tasks.py).

    claim (row lock + state check) → consent and suppression → rate limit → render →
    mark the provider call started → call the provider → record the result

`deliver` runs it for one delivery; channels/batching.py runs it for a batch of campaign and
broadcast deliveries of one channel configuration with the same rules (the functions here).

Exactly-once hand-off: `send_started_at` is committed right before the provider call. A task that
finds a claimed delivery whose call has not started (its worker died before the call) claims it
again and sends; one that finds the call started but no result never calls again and fails the
delivery with "outcome unknown" (docs/messaging.md). Transient provider errors (the provider did
not act) release the claim and retry with backoff; permanent ones fail with the reason.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from channels.consent import SendAsk, decide, load_consent_for
from channels.feedback import EventEntry, FixedQuery, record_delivery_event, record_delivery_events
from channels.models import ChannelType, Delivery, DeliveryStatus
from channels.providers import get_provider
from channels.providers.base import ProviderError, SendResult
from core.context import current_workspace

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    result: str  # sent, suppressed, failed, undeliverable, retry, skipped
    retry_in: float | None = None  # seconds
    detail: str = ""


class RateLimited(Exception):
    pass


# Deliveries sent in batches per channel configuration (channels/batching.py); every other source
# (transactional, test sends, keyword auto-replies) gets one task per delivery, for first-byte latency.
BATCHED_SOURCES = (Delivery.Source.CAMPAIGN, Delivery.Source.BROADCAST)

UNKNOWN_OUTCOME = ("outcome unknown: the worker stopped during the provider call; not sent again so the "
                   "person never receives it twice")


def untakeable(delivery: Delivery) -> tuple[str, str] | None:
    """Why a delivery a claim may look at must be failed instead of taken, as (detail, reason), or
    None: its provider call started and has no result (never called again), or its workers kept
    dying before the call (e.g. out of memory in every render: stop, never loop forever). The one
    rule of both claims (the single one here, the batched one in channels/batching.py)."""
    if delivery.send_started_at is not None:
        return "outcome unknown", UNKNOWN_OUTCOME
    if delivery.attempts >= settings.ULAK_DELIVERY_MAX_ATTEMPTS:
        return "too many attempts", f"gave up after {delivery.attempts} attempts that never reached the provider"
    return None


# The claim's row, locked, with what the pipeline reads of it (compiled once: channels.feedback.FixedQuery).
_CLAIM_ROW = FixedQuery(
    lambda workspace_id, delivery_id: (
        Delivery.objects.for_workspace(workspace_id).select_for_update(of=("self",))
        .select_related("workspace", "profile", "channel_config", "topic", "message_content",
                        "message_content__layout")
        .filter(pk=delivery_id)),
    workspace_id=-910_001, delivery_id=-910_002)

_TAKE_CLAIM_SQL = f"""UPDATE {Delivery._meta.db_table}
    SET status = %(sending)s, claimed_at = %(now)s, claim_token = %(token)s, attempts = %(attempts)s,
        updated_at = %(now)s
    WHERE id = %(id)s AND workspace_id = %(ws)s"""


def _claim(delivery_id: int, token: str) -> tuple[Delivery | None, str]:
    """Lock the row and take the claim; returns (delivery, "") or (None, why it was not taken).

    A claim held by another task is left alone until ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS pass
    (longer than any provider call may take); the same task id (a redelivered message) may take
    its own claim back at once. Two statements: the row locked and read with its related rows,
    the claim written."""
    now = timezone.now()
    expired = now - timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        rows = _CLAIM_ROW.run(workspace_id=current_workspace().pk, delivery_id=delivery_id)
        delivery = rows[0] if rows else None
        if delivery is None:
            return None, "missing"
        if delivery.status == DeliveryStatus.SENDING:
            held_elsewhere = (delivery.claim_token != token and delivery.claimed_at is not None
                              and delivery.claimed_at > expired)
            if held_elsewhere:
                return None, "in flight" if delivery.send_started_at else "claimed by another task"
        elif delivery.status != DeliveryStatus.QUEUED:
            return None, f"already {delivery.status}"
        if delivery.send_started_at is None and delivery.send_at and delivery.send_at > now + timedelta(seconds=1):
            return None, "not due yet"
        verdict = untakeable(delivery)
        if verdict is not None:
            record_delivery_event(delivery, "failed", data={"reason": verdict[1]})
            return None, verdict[0]
        delivery.status = DeliveryStatus.SENDING
        delivery.claimed_at = now
        delivery.claim_token = token
        delivery.attempts += 1
        delivery.updated_at = now
        with connection.cursor() as cursor:
            cursor.execute(_TAKE_CLAIM_SQL, {"sending": DeliveryStatus.SENDING.value, "now": now, "token": token,
                                             "attempts": delivery.attempts, "id": delivery.pk,
                                             "ws": delivery.workspace_id})
        return delivery, ""


def inactive_reason(delivery: Delivery, config) -> str | None:
    """A deactivated channel configuration fails its queued deliveries (test sends excepted)."""
    if config is not None and not config.active and delivery.source != Delivery.Source.TEST:
        return f"the channel configuration {config.name!r} is inactive"
    return None


def consent_ask(delivery: Delivery) -> SendAsk:
    """What the consent rules (channels/consent.py) are asked about a delivery."""
    return SendAsk(profile=delivery.profile, channel=delivery.channel, address=delivery.recipient,
                   topic=delivery.topic, send_to_unsubscribed=delivery.send_to_unsubscribed,
                   opt_out_confirmation=is_opt_out_confirmation(delivery))


_RELEASED_FIELDS = ("status", "claimed_at", "claim_token", "send_started_at", "send_at", "attempts")


def _release(deliveries, *, retry_in: int, reason: str, attempt_counts: bool = True) -> None:
    """Give the claims back (the provider was not called, or said it did not act). A release for
    the channel's rate limit or a batch held back is not an attempt and leaves no event (it may
    happen every second): the deliveries are released in one statement."""
    deliveries = [deliveries] if isinstance(deliveries, Delivery) else list(deliveries)
    if not deliveries:
        return
    send_at = timezone.now() + timedelta(seconds=retry_in)
    for delivery in deliveries:
        delivery.status = DeliveryStatus.QUEUED
        delivery.claimed_at = None
        delivery.claim_token = ""
        delivery.send_started_at = None
        delivery.send_at = send_at
    if attempt_counts:
        for delivery in deliveries:
            record_delivery_event(delivery, "retry", data={"reason": reason, "retry_in": retry_in},
                                  update_fields=_RELEASED_FIELDS)
        return
    for delivery in deliveries:
        delivery.attempts -= 1
    Delivery.objects.for_workspace(deliveries[0].workspace_id).filter(pk__in=[d.pk for d in deliveries]).update(
        status=DeliveryStatus.QUEUED, claimed_at=None, claim_token="", send_started_at=None, send_at=send_at,
        attempts=F("attempts") - 1, updated_at=timezone.now())


# The rate limit is a GCRA ("generic cell rate algorithm", a token bucket kept as one timestamp) per
# configuration in Redis, checked in one round trip together with the provider's hold:
#   KEYS[1] the theoretical arrival time (TAT, microseconds): when the next send may go;
#   KEYS[2] the hold the provider asked for (`hold_configuration`, milliseconds since the epoch).
#   ARGV: wanted, interval (microseconds between sends; 0: no limit), horizon (microseconds: how far
#   ahead slots may be booked), now (microseconds; empty: the Redis server's clock).
# Each send books the slot at TAT (or now, if TAT has passed) and moves TAT one interval on, so
# slots are never closer than one interval and no credit builds up while a configuration is idle
# (burst tolerance 0). Slots up to `horizon` ahead are booked (the caller waits for each); a first
# slot further ahead books nothing. Returns {how many were booked, microseconds until the first
# of them, microseconds until the slot after them (or until the hold ends)}.
_TAKE_RATE = """
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
local held = tonumber(redis.call('GET', KEYS[2]) or '0') * 1000
if held > now then return {0, 0, held - now} end
local wanted, interval, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if interval <= 0 then return {wanted, 0, 0} end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local first = tat - now
if first > horizon then return {0, 0, first} end
local booked = math.min(wanted, math.floor((horizon - first) / interval) + 1)
tat = tat + booked * interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return {booked, first, tat - now}
"""

# The share of each second the bucket keeps free: N+1 slots are at least 1 s + RATE_GUARD apart, so
# a send handed to the provider up to RATE_GUARD later than its slot (a worker's sleep overshooting,
# the hand-off itself) still never makes N + 1 in any second at the provider (docs/messaging.md).
RATE_GUARD_SECONDS = 0.05


def rate_interval(limit: int | None) -> int:
    """Microseconds between two sends of a configuration limited to `limit` a second (0: none)."""
    if not limit:
        return 0
    return math.ceil((1_000_000 + RATE_GUARD_SECONDS * 1_000_000) / limit)


@dataclass(frozen=True)
class RateTake:
    """What the bucket granted: `allowed` sends, the first `first` seconds from now and each next
    one `interval` seconds later; the one after them may go in `wait` seconds (the hold's rest
    when the provider asked to wait; 0: no limit)."""

    allowed: int
    first: float = 0.0
    interval: float = 0.0
    wait: float = 0.0

    def at(self, index: int) -> float:
        """Seconds from the take until the `index`-th granted send may go."""
        return self.first + index * self.interval


def _hold_key(config_id: int) -> str:
    return cache.make_and_validate_key(f"send-hold:{config_id}")


def _rate_now_us(now) -> str:
    """The bucket's clock: the Redis server's (one clock for every worker, so a worker whose clock
    is off neither sends early nor stalls the others), unless the caller gives `now` or
    ULAK_RATE_CLOCK is "worker" (the caller's own clock: tests on a controlled clock)."""
    if now is None and settings.ULAK_RATE_CLOCK == "worker":
        now = timezone.now()
    return "" if now is None else str(int(now.timestamp() * 1_000_000))


def take_rate(config, wanted: int, *, horizon: float = 0.0, now=None) -> RateTake:
    """Book up to `wanted` sends from the configuration's bucket (shared by every worker and batch
    task), unless a hold is on it (`hold_configuration`). Without a `horizon` only a send that may
    go now is granted (at most one when the configuration is limited: no bursts); with one, slots
    up to `horizon` seconds ahead are booked and the caller waits for each (`RateTake.at`)."""
    if config is None or wanted <= 0:
        return RateTake(max(wanted, 0))
    interval = rate_interval(config.rate_limit_per_second)
    rate_key = cache.make_and_validate_key(f"send-gcra:{config.pk}")
    client = cache._cache.get_client(rate_key, write=True)
    booked, first, after = client.eval(_TAKE_RATE, 2, rate_key, _hold_key(config.pk), wanted, interval,
                                       int(horizon * 1_000_000), _rate_now_us(now))
    return RateTake(booked, first / 1_000_000, interval / 1_000_000, after / 1_000_000)


# Hold the configuration until now + ARGV[2] milliseconds unless a later hold is already set; now
# is ARGV[1] (microseconds) or, empty, the Redis server's clock.
_HOLD = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = math.floor(tonumber(ARGV[1]) / 1000)
end
local ends = now + tonumber(ARGV[2])
if ends > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', tonumber(ARGV[2]) + 1000)
end
return 1
"""


def hold_configuration(config, seconds: float, *, now=None) -> None:
    """The provider asked the configuration to slow down (a 429 or Retry-After, or calls failing
    transiently in a row): no worker or batch task sends through it for `seconds` (a later hold
    already set is kept). Measured on the bucket's clock (`_rate_now_us`)."""
    key = _hold_key(config.pk)
    client = cache._cache.get_client(key, write=True)
    client.eval(_HOLD, 1, key, _rate_now_us(now), int(seconds * 1000))


def _check_rate(config) -> None:
    """The single path: one send that may go now, or RateLimited(seconds until it may)."""
    take = take_rate(config, 1)
    if take.allowed < 1:
        raise RateLimited(take.wait)


def mark_started(workspace_id: int, token: str, ids, *, holding=(), now=None) -> tuple[set[int], set[int]]:
    """Commit the marker right before the provider calls, in one statement: `ids` are marked
    started, `holding` (later sub-batches of the same claim) only have their claim renewed
    (`claimed_at`, so a long batch is never taken for a dead one). Only deliveries still claimed by
    `token` and not started are touched. Returns (ids marked started: only those may be sent, ids
    of `holding` still held)."""
    ids, holding = list(ids), list(holding)
    if not ids and not holding:
        return set(), set()
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {Delivery._meta.db_table}
                SET send_started_at = CASE WHEN id = ANY(%(ids)s) THEN %(now)s END,
                    claimed_at = %(now)s, updated_at = %(now)s
                WHERE workspace_id = %(ws)s AND id = ANY(%(all)s) AND status = %(sending)s
                  AND claim_token = %(token)s AND send_started_at IS NULL
                RETURNING id, send_started_at IS NOT NULL""",
            {"ids": ids, "all": ids + holding, "now": now, "ws": workspace_id, "token": token,
             "sending": DeliveryStatus.SENDING.value})
        rows = cursor.fetchall()
    return {pk for pk, started in rows if started}, {pk for pk, started in rows if not started}


def _mark_started(delivery: Delivery) -> bool:
    """Commit the marker right before the provider call; False if the claim was lost meanwhile."""
    now = timezone.now()
    started, _ = mark_started(delivery.workspace_id, delivery.claim_token, [delivery.pk], now=now)
    delivery.send_started_at = now
    return delivery.pk in started


def is_opt_out_confirmation(delivery: Delivery) -> bool:
    return delivery.source == Delivery.Source.AUTO_REPLY and delivery.content.get("opt_out_confirmation") is True


def backoff(attempts: int) -> int:
    return min(settings.ULAK_DELIVERY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
               settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS)


@dataclass
class Prepared:
    """A delivery rendered for its provider (`message`), or why it cannot be (`kind`, `reason`)."""

    message: object = None
    kind: str = ""
    reason: str = ""
    detail: str = ""


def prepare(delivery: Delivery) -> Prepared:
    """Render the delivery and build what its provider receives; keep the rendered content."""
    from channels.content.rendering import RenderError, render_delivery
    from channels.outgoing import build_outgoing

    try:
        rendered = render_delivery(delivery)
        message = build_outgoing(delivery, rendered)
    except RenderError as exc:
        return Prepared(kind="failed", reason=f"template error: {exc}", detail=str(exc))
    except ProviderError as exc:  # nothing to send to (no device tokens, bad configuration)
        kind = "undeliverable" if exc.undeliverable else "failed"
        return Prepared(kind=kind, reason=exc.reason, detail=exc.reason)
    _keep_content(delivery, message)
    return Prepared(message=message)


@dataclass
class Called:
    """A provider call: its result, or the outcome already recorded and the error it raised."""

    result: SendResult | None = None
    outcome: Outcome | None = None
    error: ProviderError | None = None


def call_provider(delivery: Delivery, provider, message) -> Called:
    """Hand the message to the provider (already marked started). A failure is recorded here; a
    result is recorded by the caller (`sent_entries`)."""
    try:
        if provider is None:
            provider = get_provider(delivery.channel_config)
        return Called(result=provider.send(message))
    except ProviderError as exc:
        return Called(outcome=_provider_failed(delivery, exc), error=exc)
    except Exception as exc:  # a bug or an unexpected library error: the outcome is unknown
        logger.exception("provider call raised", extra={"delivery": delivery.public_id})
        record_delivery_event(delivery, "failed", data={"reason": f"provider call raised {type(exc).__name__}"})
        return Called(outcome=Outcome("failed", detail=str(exc)))


def sent_entries(delivery: Delivery, result: SendResult) -> list[EventEntry]:
    """What a provider's acceptance records: `sent` (with the provider id and the kept content;
    without retention the delivery's inputs go once used), then `delivered` if it says so."""
    delivery.provider_message_id = result.provider_message_id[:255]
    kept = ("provider_message_id", "subject", "body", "body_plain", "rendered_payload")
    if not delivery.retain_content:  # disable_message_retention: the inputs go once they were used
        delivery.content, delivery.message_data = {}, {}
        kept += ("content", "message_data")
    answered = timezone.now()  # the batch writes these with its next sub-batch: keep the answer's time
    entries = [EventEntry(delivery, "sent", result.detail, kept, at=answered)]
    if result.status == "delivered":
        entries.append(EventEntry(delivery, "delivered", at=answered))
    return entries


def after_sent(delivery: Delivery, result: SendResult) -> None:
    """Once `sent` is recorded: provider callbacks that beat the provider's own answer, and what
    the result changes (push tokens the provider rejected)."""
    after_sent_many([(delivery, result)])


def after_sent_many(finished: list[tuple[Delivery, SendResult]]) -> None:
    """`after_sent` for a batch's deliveries: the early statuses of all of them looked up at once."""
    from channels.inbound import apply_early_statuses_many
    from channels.outgoing import after_send

    apply_early_statuses_many([delivery for delivery, _ in finished])
    for delivery, result in finished:
        after_send(delivery, result)


def deliver(delivery_id: int, *, token: str | None = None) -> Outcome:
    """Run the pipeline for one delivery, in the workspace scope of the caller (a WorkspaceTask)."""
    token = token or uuid.uuid4().hex
    delivery, why = _claim(delivery_id, token)
    if delivery is None:
        return Outcome("skipped", detail=why)
    reason = inactive_reason(delivery, delivery.channel_config)
    if reason is not None:
        record_delivery_event(delivery, "failed", data={"reason": reason})
        return Outcome("failed", detail=reason)
    ask = consent_ask(delivery)
    reason = decide(ask, load_consent_for(delivery.workspace, ask))
    if reason is not None:
        record_delivery_event(delivery, "suppressed", data={"reason": reason})
        return Outcome("suppressed", detail=reason)
    try:
        _check_rate(delivery.channel_config)
    except RateLimited as limited:
        wait = limited.args[0]
        _release(delivery, retry_in=wait, reason="rate limit of the channel configuration", attempt_counts=False)
        return Outcome("retry", retry_in=wait, detail="rate limited or held back")
    prepared = prepare(delivery)
    if prepared.message is None:
        record_delivery_event(delivery, prepared.kind, data={"reason": prepared.reason})
        return Outcome(prepared.kind, detail=prepared.detail)
    if not _mark_started(delivery):
        return Outcome("skipped", detail="claim lost before the provider call")
    called = call_provider(delivery, None, prepared.message)
    if called.result is None:
        return called.outcome
    record_delivery_events(delivery.workspace, sent_entries(delivery, called.result))
    after_sent(delivery, called.result)
    return Outcome("sent", detail=delivery.provider_message_id)


def _keep_content(delivery: Delivery, message) -> None:
    # An in-app message is read from the delivery itself, so its content is always kept.
    if delivery.retain_content or delivery.channel == ChannelType.IN_APP:
        delivery.subject = message.subject
        delivery.body = message.body
        delivery.body_plain = message.body_plain
        delivery.rendered_payload = message.payload


def _provider_failed(delivery: Delivery, exc: ProviderError) -> Outcome:
    if exc.detail.get("invalid_tokens"):  # push: every token was rejected; forget those devices
        from channels.outgoing import after_send

        after_send(delivery, SendResult(invalid_tokens=exc.detail["invalid_tokens"]))
    if exc.retry_after and delivery.channel_config_id:  # the provider throttles: every sender waits
        hold_configuration(delivery.channel_config,
                           min(exc.retry_after, settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS))
    if exc.transient and delivery.attempts < settings.ULAK_DELIVERY_MAX_ATTEMPTS:
        retry_in = exc.retry_after or backoff(delivery.attempts)
        retry_in = min(retry_in, settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS)
        _release(delivery, retry_in=retry_in, reason=exc.reason)
        return Outcome("retry", retry_in=retry_in, detail=exc.reason)
    kind = "undeliverable" if exc.undeliverable else "failed"
    reason = exc.reason if not exc.transient else f"{exc.reason} (gave up after {delivery.attempts} attempts)"
    record_delivery_event(delivery, kind, data={"reason": reason, **exc.detail})
    return Outcome(kind, detail=reason)


def due_deliveries(limit: int = 1000):
    """Queued deliveries that are due and whose task is not (or no longer) on its way: scheduled
    sends that came due, retries whose message was lost, and claims whose worker died."""
    due, dead_claim = _due_or_dead()
    single = ~BATCHED | Q(channel_config__isnull=True)  # batched ones: due_batches()
    due, dead_claim = due & single, dead_claim & single
    return Delivery.unscoped.filter(due | dead_claim).order_by("send_at", "pk")[:limit]


BATCHED = Q(source__in=BATCHED_SOURCES)


def _due_or_dead() -> tuple[Q, Q]:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.ULAK_DELIVERY_STALE_SECONDS)
    expired = now - timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS)
    due = Q(status=DeliveryStatus.QUEUED) & (
        Q(send_at__isnull=False, send_at__lte=now) | Q(send_at__isnull=True, updated_at__lt=stale))
    dead_claim = Q(status=DeliveryStatus.SENDING, claimed_at__lt=expired)
    return due, dead_claim
