"""The send pipeline, run by the per-channel send tasks (channels/tasks.py).

    claim (row lock + state check) → consent and suppression → rate limit → render →
    mark the provider call started → call the provider → record the result

Exactly-once hand-off: `send_started_at` is committed right before the provider call. A task that
finds a claimed delivery whose call has not started (its worker died before the call) claims it
again and sends; one that finds the call started but no result never calls again and fails the
delivery with "outcome unknown" (docs/messaging.md). Transient provider errors (the provider did
not act) release the claim and retry with backoff; permanent ones fail with the reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from channels.consent import block_reason
from channels.feedback import record_delivery_event
from channels.models import ChannelType, Delivery, DeliveryStatus
from channels.providers import get_provider
from channels.providers.base import ProviderError

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    result: str  # sent, suppressed, failed, undeliverable, retry, skipped
    retry_in: int | None = None
    detail: str = ""


class RateLimited(Exception):
    pass


def _claim(delivery_id: int, token: str) -> tuple[Delivery | None, str]:
    """Lock the row and take the claim; returns (delivery, "") or (None, why it was not taken).

    A claim held by another task is left alone until ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS pass
    (longer than any provider call may take); the same task id (a redelivered message) may take
    its own claim back at once."""
    now = timezone.now()
    expired = now - timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",))
                    .select_related("workspace", "profile", "channel_config", "topic", "message_content",
                                    "message_content__layout")
                    .filter(pk=delivery_id).first())
        if delivery is None:
            return None, "missing"
        if delivery.status == DeliveryStatus.SENDING:
            held_elsewhere = (delivery.claim_token != token and delivery.claimed_at is not None
                              and delivery.claimed_at > expired)
            if held_elsewhere:
                return None, "in flight" if delivery.send_started_at else "claimed by another task"
            if delivery.send_started_at is not None:
                _fail_unknown(delivery)
                return None, "outcome unknown"
        elif delivery.status != DeliveryStatus.QUEUED:
            return None, f"already {delivery.status}"
        if delivery.send_at and delivery.send_at > now + timedelta(seconds=1):
            return None, "not due yet"
        if delivery.attempts >= settings.ULAK_DELIVERY_MAX_ATTEMPTS:
            # e.g. a worker that dies in every render (out of memory): stop, never loop forever.
            record_delivery_event(delivery, "failed", data={
                "reason": f"gave up after {delivery.attempts} attempts that never reached the provider"})
            return None, "too many attempts"
        delivery.status = DeliveryStatus.SENDING
        delivery.claimed_at = now
        delivery.claim_token = token
        delivery.attempts += 1
        delivery.save(update_fields=["status", "claimed_at", "claim_token", "attempts", "updated_at"])
        return delivery, ""


def _fail_unknown(delivery: Delivery) -> None:
    reason = ("outcome unknown: the worker stopped during the provider call; not sent again so the "
              "person never receives it twice")
    record_delivery_event(delivery, "failed", data={"reason": reason})


_RELEASED_FIELDS = ("status", "claimed_at", "claim_token", "send_started_at", "send_at", "attempts")


def _release(delivery: Delivery, *, retry_in: int, reason: str, attempt_counts: bool = True) -> None:
    """Give the claim back (the provider was not called, or said it did not act). A release for the
    channel's rate limit is not an attempt and leaves no event (it may happen every second)."""
    delivery.status = DeliveryStatus.QUEUED
    delivery.claimed_at = None
    delivery.claim_token = ""
    delivery.send_started_at = None
    delivery.send_at = timezone.now() + timedelta(seconds=retry_in)
    if attempt_counts:
        record_delivery_event(delivery, "retry", data={"reason": reason, "retry_in": retry_in},
                              update_fields=_RELEASED_FIELDS)
    else:
        delivery.attempts -= 1
        delivery.save(update_fields=[*_RELEASED_FIELDS, "updated_at"])


def _check_rate(config) -> None:
    limit = config.rate_limit_per_second if config else None
    if not limit:
        return
    key = f"send-rate:{config.pk}:{int(timezone.now().timestamp())}"
    cache.add(key, 0, 5)
    if cache.incr(key) > limit:
        raise RateLimited()


def _mark_started(delivery: Delivery) -> bool:
    """Commit the marker right before the provider call; False if the claim was lost meanwhile."""
    now = timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING, claim_token=delivery.claim_token,
                                      send_started_at__isnull=True).update(send_started_at=now, updated_at=now)
    delivery.send_started_at = now
    return updated == 1


def is_opt_out_confirmation(delivery: Delivery) -> bool:
    return delivery.source == Delivery.Source.AUTO_REPLY and delivery.content.get("opt_out_confirmation") is True


def backoff(attempts: int) -> int:
    return min(settings.ULAK_DELIVERY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
               settings.ULAK_TASK_MAX_COUNTDOWN_SECONDS)


def deliver(delivery_id: int, *, token: str | None = None) -> Outcome:
    """Run the pipeline for one delivery, in the workspace scope of the caller (a WorkspaceTask)."""
    from channels.content.rendering import RenderError, render_delivery
    from channels.inbound import apply_early_statuses
    from channels.outgoing import after_send, build_outgoing

    token = token or uuid.uuid4().hex
    delivery, why = _claim(delivery_id, token)
    if delivery is None:
        return Outcome("skipped", detail=why)
    config = delivery.channel_config
    if config is not None and not config.active and delivery.source != Delivery.Source.TEST:
        reason = f"the channel configuration {config.name!r} is inactive"
        record_delivery_event(delivery, "failed", data={"reason": reason})
        return Outcome("failed", detail=reason)
    reason = block_reason(delivery.workspace, profile=delivery.profile, channel=delivery.channel,
                          address=delivery.recipient, topic=delivery.topic,
                          send_to_unsubscribed=delivery.send_to_unsubscribed,
                          opt_out_confirmation=is_opt_out_confirmation(delivery))
    if reason is not None:
        record_delivery_event(delivery, "suppressed", data={"reason": reason})
        return Outcome("suppressed", detail=reason)
    try:
        _check_rate(delivery.channel_config)
    except RateLimited:
        _release(delivery, retry_in=1, reason="rate limit of the channel configuration", attempt_counts=False)
        return Outcome("retry", retry_in=1, detail="rate limited")
    try:
        rendered = render_delivery(delivery)
        message = build_outgoing(delivery, rendered)
    except RenderError as exc:
        record_delivery_event(delivery, "failed", data={"reason": f"template error: {exc}"})
        return Outcome("failed", detail=str(exc))
    except ProviderError as exc:  # nothing to send to (no device tokens, bad configuration)
        kind = "undeliverable" if exc.undeliverable else "failed"
        record_delivery_event(delivery, kind, data={"reason": exc.reason})
        return Outcome(kind, detail=exc.reason)
    _keep_content(delivery, message)
    if not _mark_started(delivery):
        return Outcome("skipped", detail="claim lost before the provider call")
    try:
        result = get_provider(delivery.channel_config).send(message)
    except ProviderError as exc:
        return _provider_failed(delivery, exc)
    except Exception as exc:  # a bug or an unexpected library error: the outcome is unknown
        logger.exception("provider call raised", extra={"delivery": delivery.public_id})
        record_delivery_event(delivery, "failed", data={"reason": f"provider call raised {type(exc).__name__}"})
        return Outcome("failed", detail=str(exc))
    delivery.provider_message_id = result.provider_message_id[:255]
    kept = ("provider_message_id", "subject", "body", "body_plain", "rendered_payload")
    if not delivery.retain_content:  # disable_message_retention: the inputs go once they were used
        delivery.content, delivery.message_data = {}, {}
        kept += ("content", "message_data")
    record_delivery_event(delivery, "sent", data=result.detail, update_fields=kept)
    if result.status == "delivered":
        record_delivery_event(delivery, "delivered")
    apply_early_statuses(delivery)  # provider callbacks that beat the provider's own answer
    after_send(delivery, result)
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
        from channels.providers.base import SendResult

        after_send(delivery, SendResult(invalid_tokens=exc.detail["invalid_tokens"]))
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
    from django.db.models import Q

    now = timezone.now()
    stale = now - timedelta(seconds=settings.ULAK_DELIVERY_STALE_SECONDS)
    expired = now - timedelta(seconds=settings.ULAK_DELIVERY_CLAIM_TIMEOUT_SECONDS)
    due = Q(status=DeliveryStatus.QUEUED) & (
        Q(send_at__isnull=False, send_at__lte=now) | Q(send_at__isnull=True, updated_at__lt=stale))
    dead_claim = Q(status=DeliveryStatus.SENDING, claimed_at__lt=expired)
    return Delivery.unscoped.filter(due | dead_claim).order_by("send_at", "pk")[:limit]
