"""Batched sending: campaign and broadcast deliveries of one channel configuration, many per task.

    claim up to ULAK_SEND_BATCH_SIZE due deliveries (one statement) → the configuration check →
    consent and suppression for all of them (a few queries) → per sub-batch of
    ULAK_SEND_SUB_BATCH_SIZE: render → the hold → mark started (one statement, committed with
    the previous sub-batch's results) → provider calls (paced by the configuration's rate limit) →
    results recorded in bulk

Every rule is the single-delivery path's (channels/sending.py): which claimed rows are failed
instead of taken (`untakeable`), the inactive configuration, the consent decision
(`channels.consent.decide`), the rate limit (the same bucket; a rate-limited configuration's
calls are paced, each booking its slot right before it), rendering, the started marker, the
classification of provider errors and the recording of events (`record_delivery_events` shares
the status logic of `record_delivery_event`). Exactly once holds per delivery: a worker killed
in a batch leaves each delivery either not started (sent by the next claim) or started (never
sent again: "outcome unknown"), at most one sub-batch of them. Rows this task claimed before its
worker died (the same message redelivered) and claims whose worker died long ago are sent one
at a time through `deliver`, so a delivery that kills its worker cannot burn its batch-mates'
attempts.

Scheduling: `schedule_batch` publishes `<channel>.send_batch` for a configuration unless one is
already on its way (Redis keys, one per slot); channels.deliveries.enqueue_send calls it on commit
for batched sources, the sweep for configurations with due or orphaned batched deliveries, and a
running task whose claim came back full brings in one more (up to ULAK_SEND_BATCH_TASKS) unless
it waited for its rate limit or its provider calls are slow. A task's time budget is checked
before every provider call, so it gives its worker back after the budget and one call at most.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from channels.consent import decide, load_consent
from channels.content.rendering import snippets_read_once
from channels.feedback import EventEntry, record_delivery_event, record_delivery_events
from channels.models import ChannelConfig, ChannelType, Delivery, DeliveryStatus
from channels.providers import get_provider
from channels.sending import (
    BATCHED, BATCHED_SOURCES, _due_or_dead, _release, after_sent_many, call_provider, consent_ask, deliver,
    hold_configuration, inactive_reason, mark_started, prepare, sent_entries, take_rate, untakeable,
)

logger = logging.getLogger(__name__)

BATCH_TASK_FOR_CHANNEL = {
    ChannelType.EMAIL: "email.send_batch",
    ChannelType.SMS: "sms.send_batch",
    ChannelType.WHATSAPP: "whatsapp.send_batch",
    ChannelType.PUSH: "push.send_batch",
    ChannelType.IN_APP: "in_app.send_batch",
    ChannelType.WEBHOOK: "webhooks.send_batch",
}
RATE_LIMITED = "rate limit of the channel configuration, or held back by its provider"
HELD_BACK = "the provider asked to slow down; the rest of the batch waits"
# A rate-limited configuration is paced: each provider call books its own slot from the bucket
# (channels.sending.take_rate) right before it and the task waits for it, up to this many seconds;
# a slot further ahead (other tasks booked before it, or a hold) sends the rest back to `queued`
# for that time instead.
PACE_HORIZON_SECONDS = 0.25
OUT_OF_TIME = "the batch task's time was spent; the next task of the configuration sends it"
# A configuration whose provider calls take this long on average is slow: its tasks bring in no
# other task, and hand over to at most one, so it keeps one worker of its channel's queue.
SLOW_CALL_SECONDS = 0.5


def _pause(seconds: float) -> None:
    time.sleep(seconds)


# --- scheduling ----------------------------------------------------------------------------------

def batch_key(config_id: int, slot: int = 0) -> str:
    return f"send-batch:{config_id}:{slot}"


def schedule_batch(workspace_id: int, config_id: int, channel: str, *, countdown: int | None = None,
                   spread: bool = False) -> bool:
    """Publish a batch task for the configuration; True when published. A task holds one of
    ULAK_SEND_BATCH_TASKS slots (a Redis key it deletes when done, or that expires) from publication
    to its end. By default (new deliveries, the sweep, a task handing over) nothing is published
    while any slot is held: a task of the configuration is on its way and claims until nothing is
    due. `spread` (a running task whose claim came back full, or that ran out of time) takes the
    first free slot: as many tasks as the backlog needs, at most ULAK_SEND_BATCH_TASKS."""
    slots = [batch_key(config_id, slot) for slot in range(max(1, settings.ULAK_SEND_BATCH_TASKS))]
    if not spread and any(cache.get_many(slots).values()):
        return False
    timeout = settings.ULAK_SEND_BATCH_KEY_SECONDS + (countdown or 0)
    for slot, key in enumerate(slots):
        if not cache.add(key, 1, timeout):
            if spread:
                continue
            return False  # another publisher was quicker
        try:
            current_app.send_task(BATCH_TASK_FOR_CHANNEL[ChannelType(channel)], countdown=countdown,
                                  kwargs={"workspace_id": workspace_id, "config_id": config_id, "slot": slot})
        except Exception:
            cache.delete(key)
            raise
        return True
    return False


def due_batches():
    """(workspace id, configuration id, channel) of every configuration with batched deliveries
    that are due or whose claim's worker died (the sweep schedules a batch task for each)."""
    due, dead_claim = _due_or_dead()
    return (Delivery.unscoped.filter((due | dead_claim) & BATCHED, channel_config__isnull=False)
            .order_by().values_list("workspace_id", "channel_config_id", "channel").distinct())


def _has_due(workspace, config) -> bool:
    return Delivery.objects.for_workspace(workspace).filter(
        Q(send_at__isnull=True) | Q(send_at__lte=timezone.now()), channel_config_id=config.pk,
        source__in=BATCHED_SOURCES, status=DeliveryStatus.QUEUED).exists()


# --- the claim -----------------------------------------------------------------------------------

_CLAIM = """
WITH picked AS (
    SELECT id, send_started_at, attempts FROM {table}
    WHERE workspace_id = %(ws)s AND channel_config_id = %(config)s AND source = ANY(%(sources)s)
      AND status = %(queued)s AND (send_at IS NULL OR send_at <= %(now)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {table} AS d
    SET status = %(sending)s, claimed_at = %(now)s, claim_token = %(token)s, attempts = d.attempts + 1,
        updated_at = %(now)s
    FROM picked
    WHERE d.id = picked.id AND picked.send_started_at IS NULL AND picked.attempts < %(max_attempts)s
    RETURNING d.id
)
SELECT picked.id, taken.id IS NOT NULL FROM picked LEFT JOIN taken ON taken.id = picked.id ORDER BY picked.id
"""


def claim(workspace, config_id: int, token: str, limit: int) -> tuple[list[int], int]:
    """Take up to `limit` due campaign and broadcast deliveries of the configuration in one
    statement (rows locked by another claim are skipped, never waited for). Rows picked but not
    takeable are failed in the same transaction, as the single claim fails them (`untakeable`).
    Returns (ids taken, in id order; how many rows were picked)."""
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM.format(table=Delivery._meta.db_table), {
                "ws": workspace.pk, "config": config_id, "sources": [str(source) for source in BATCHED_SOURCES],
                "queued": DeliveryStatus.QUEUED.value, "sending": DeliveryStatus.SENDING.value, "now": now,
                "limit": limit, "token": token, "max_attempts": settings.ULAK_DELIVERY_MAX_ATTEMPTS})
            rows = cursor.fetchall()
        left = [pk for pk, taken in rows if not taken]
        if left:
            for delivery in (Delivery.objects.for_workspace(workspace).select_related("workspace", "profile")
                             .filter(pk__in=left).order_by("pk")):
                verdict = untakeable(delivery)
                if verdict is None:  # cannot happen: the statement takes exactly the others
                    logger.error("batch claim left a takeable delivery", extra={"delivery": delivery.public_id})
                    continue
                record_delivery_event(delivery, "failed", data={"reason": verdict[1]})
    return [pk for pk, taken in rows if taken], len(rows)


# --- one round: claim and send -------------------------------------------------------------------

@dataclass
class Round:
    picked: int = 0
    sent: int = 0
    full: bool = False
    wait: float = 0  # seconds before the configuration may send again (rate limit, provider back-pressure)
    rate_bound: bool = False  # it waited for the rate limit: another task would not send faster
    calls: int = 0
    call_seconds: float = 0.0  # spent in provider calls

    @property
    def slow(self) -> bool:
        return bool(self.calls) and self.call_seconds / self.calls >= SLOW_CALL_SECONDS


def send_batch(workspace, config: ChannelConfig, token: str, *, size: int | None = None,
               deadline: float | None = None) -> Round:
    """Claim one batch of the configuration's due campaign and broadcast deliveries and send it;
    past `deadline` (time.monotonic()), after at least one provider call, the rest of the claim
    goes back to `queued`, due at once, for the next task (no attempt counted, no event)."""
    size = size or settings.ULAK_SEND_BATCH_SIZE
    if config.rate_limit_per_second:
        size = min(size, config.rate_limit_per_second)
    taken, picked = claim(workspace, config.pk, token, size)
    outcome = Round(picked=picked, full=picked >= size)
    if not taken:
        return outcome
    with snippets_read_once():
        return _send_claimed(workspace, config, token, taken, outcome, deadline)


def _send_claimed(workspace, config: ChannelConfig, token: str, taken: list[int], outcome: Round,
                  deadline: float | None = None) -> Round:
    deliveries = list(Delivery.objects.for_workspace(workspace)
                      .select_related("profile", "topic", "message_content", "message_content__layout")
                      .filter(pk__in=taken).order_by("pk"))
    pending: list[EventEntry] = []  # written with the next sub-batch's marker, or at the end
    sendable = []
    for delivery in deliveries:
        delivery.workspace, delivery.channel_config = workspace, config
        reason = inactive_reason(delivery, config)
        if reason is not None:
            pending.append(EventEntry(delivery, "failed", {"reason": reason}))
        else:
            sendable.append(delivery)
    asks = [consent_ask(delivery) for delivery in sendable]
    facts = load_consent(workspace, asks) if asks else None
    remaining = []
    for delivery, ask in zip(sendable, asks):
        reason = decide(ask, facts)
        if reason is not None:
            pending.append(EventEntry(delivery, "suppressed", {"reason": reason}))
        else:
            remaining.append(delivery)
    try:
        provider = get_provider(config) if remaining else None
    except Exception:  # a configuration that cannot build its provider: each call records why
        provider = None
    finished = []  # (delivery, result) recorded sent, waiting for after_sent
    paced = bool(config.rate_limit_per_second)
    sub_size = settings.ULAK_SEND_SUB_BATCH_SIZE
    if paced:  # a sub-batch is marked started, then paced: about a quarter of a second of sends
        sub_size = min(sub_size, max(1, config.rate_limit_per_second // 4))
    while remaining:
        if _out_of_time(outcome, deadline):
            _release(remaining, retry_in=0, reason=OUT_OF_TIME, attempt_counts=False)
            remaining, outcome.full = [], True
            break
        chunk, remaining = remaining[:sub_size], remaining[sub_size:]
        ready = []
        for delivery in chunk:
            prepared = prepare(delivery)
            if prepared.message is None:
                pending.append(EventEntry(delivery, prepared.kind, {"reason": prepared.reason}))
            else:
                ready.append((delivery, prepared.message))
        now = timezone.now()
        if not paced:  # only a hold stops an unlimited configuration: one check for the sub-batch
            take = take_rate(config, len(ready))
            if take.allowed < len(ready):  # held back: back to queued, no attempt counted
                _release([delivery for delivery, _ in ready[take.allowed:]] + remaining, retry_in=take.wait,
                         reason=RATE_LIMITED, attempt_counts=False)
                ready, remaining, outcome.wait = ready[:take.allowed], [], take.wait
        with transaction.atomic():
            record_delivery_events(workspace, pending, at=now)
            started, held = mark_started(workspace.pk, token, [delivery.pk for delivery, _ in ready],
                                         holding=[delivery.pk for delivery in remaining], now=now)
        pending = []
        _finish(finished)
        remaining = [delivery for delivery in remaining if delivery.pk in held]  # claims lost are not ours
        ready = [(delivery, message) for delivery, message in ready if delivery.pk in started]
        transient = 0
        for index, (delivery, message) in enumerate(ready):
            if _out_of_time(outcome, deadline):  # not started after all: the next task sends them
                _release([later for later, _ in ready[index:]] + remaining, retry_in=0, reason=OUT_OF_TIME,
                         attempt_counts=False)
                remaining, outcome.full = [], True
                break
            if paced:  # each call's slot is booked right before it, so it goes out when booked
                take, taken_at = take_rate(config, 1, horizon=PACE_HORIZON_SECONDS), time.time()
                if not take.allowed:  # not started after all: back to queued, no attempt counted
                    _release([later for later, _ in ready[index:]] + remaining, retry_in=take.wait,
                             reason=RATE_LIMITED, attempt_counts=False)
                    remaining, outcome.wait, outcome.rate_bound = [], take.wait, True
                    break
                # The wall clock (a controlled one in tests): over a quarter second NTP slews it by µs.
                delay = take.first - (time.time() - taken_at)
                if delay > 0:
                    _pause(delay)
                    outcome.rate_bound = True
            delivery.send_started_at = now
            called_at = time.monotonic()
            called = call_provider(delivery, provider, message)
            outcome.calls += 1
            outcome.call_seconds += time.monotonic() - called_at
            if called.result is not None:
                pending += sent_entries(delivery, called.result)
                finished.append((delivery, called.result))
                outcome.sent += 1
                transient = 0
                continue
            if called.outcome.result != "retry":
                continue
            transient += 1
            if called.error.retry_after or transient >= 2:  # the provider is throttling or down: hold off
                wait = min(called.outcome.retry_in or 1, settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS)
                hold_configuration(config, wait)  # every task of the configuration (a Retry-After: done already)
                _release([later for later, _ in ready[index + 1:]] + remaining, retry_in=wait, reason=HELD_BACK,
                         attempt_counts=False)
                remaining, outcome.wait = [], max(outcome.wait, wait)
                break
    if pending:
        record_delivery_events(workspace, pending)
    _finish(finished)
    return outcome


def _out_of_time(outcome: Round, deadline: float | None) -> bool:
    """The task's time budget is spent (and it made at least one call, so every task moves on)."""
    return deadline is not None and outcome.calls > 0 and time.monotonic() >= deadline


def _finish(finished: list) -> None:
    done, finished[:] = list(finished), []
    if done:
        after_sent_many(done)


# --- the task's body -----------------------------------------------------------------------------

def recover(workspace, config: ChannelConfig, token: str, limit: int) -> int:
    """Send, one at a time through the single-delivery path, the configuration's batched
    deliveries left claimed by this task before its worker died (a redelivered message) or by a
    worker that died long ago (ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS): started ones fail as "outcome
    unknown", the others are sent. Fewest attempts first: a delivery that killed the worker when
    it was taken alone goes after its batch-mates, so they are sent before it is tried again.
    Returns how many were looked at."""
    expired = timezone.now() - timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS)
    ids = list(Delivery.objects.for_workspace(workspace)
               .filter(Q(claim_token=token) | Q(claimed_at__lt=expired), channel_config_id=config.pk,
                       source__in=BATCHED_SOURCES, status=DeliveryStatus.SENDING)
               .order_by("attempts", "pk").values_list("pk", flat=True)[:limit])
    for pk in ids:
        deliver(pk, token=token)
    return len(ids)


def run_batches(workspace, config_id: int, token: str, slot: int = 0) -> dict:
    """The `<channel>.send_batch` task (holding `slot`): recover what a dead worker left, then claim
    and send batches until nothing is due or ULAK_SEND_BATCH_SECONDS are spent, bringing in another
    task (a free slot) when a claim comes back full; then free the slot and hand over: at once when
    out of time with more to send or deliveries came due meanwhile, or after the wait the rate
    limit or the provider asked for. A slot is freed before the check for due rows, so of tasks
    ending together the last one always sees the rows and no other slot held."""
    config = ChannelConfig.objects.for_workspace(workspace).filter(pk=config_id).first()
    if config is None:
        cache.delete(batch_key(config_id, slot))
        return {"rounds": 0, "sent": 0, "recovered": 0}
    size = settings.ULAK_SEND_BATCH_SIZE
    recovered = recover(workspace, config, token, size)
    deadline = time.monotonic() + settings.ULAK_SEND_BATCH_SECONDS
    rounds = sent = 0
    spread = False
    while True:
        last = send_batch(workspace, config, token, size=size, deadline=deadline)
        rounds += 1
        sent += last.sent
        if last.picked == 0 or last.wait or time.monotonic() >= deadline:
            break
        # A backlog: another worker may claim beside this one (once per task), unless the rate
        # limit, not the provider calls, is what holds this one back, or its calls are slow.
        if last.full and not spread and not last.rate_bound and not last.slow:
            spread = True
            schedule_batch(workspace.pk, config.pk, config.type, spread=True)
    cache.delete(batch_key(config_id, slot))
    if last.wait:
        schedule_batch(workspace.pk, config.pk, config.type, countdown=last.wait)
    elif last.full or recovered >= size:  # to the back of the queue; a slow one to one task
        schedule_batch(workspace.pk, config.pk, config.type, spread=not last.slow)
    elif _has_due(workspace, config):
        schedule_batch(workspace.pk, config.pk, config.type)
    return {"rounds": rounds, "sent": sent, "recovered": recovered}
