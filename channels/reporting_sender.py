"""Sending reporting webhook calls (the webhooks themselves are managed in channels/services.py).

`send_due_calls()` runs from the beat task `webhooks.send_due_reporting_calls`: it locks small
batches of due pending calls across workspaces (`FOR UPDATE SKIP LOCKED`, so two workers never
hold, and never send, the same call), POSTs each JSON payload through the SSRF guard, signed as
Customer.io signs reporting webhooks:

    X-CIO-Timestamp: <unix seconds>
    X-CIO-Signature: hex(HMAC-SHA256(secret, "v0:<timestamp>:<body>"))

2xx → sent. Anything else → attempts + 1 and `next_attempt_at` pushed back exponentially
(30 s · 2^n, at most an hour); after MAX_ATTEMPTS the call is `failed` with `last_error`. Nothing
is lost: a worker that dies mid-batch rolls its transaction back and the calls stay due. Once one
call to a webhook fails in a run, that webhook's other due calls in the run are postponed the same
way without being tried, so a dead endpoint costs one timeout per run, not one per call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels.models import ReportingWebhook, ReportingWebhookCall
from channels.safe_http import BlockedDestination, safe_request
from core.crypto import decrypt

logger = logging.getLogger(__name__)

BATCH_SIZE = 10
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600


def max_attempts() -> int:
    return settings.ULAK_REPORTING_WEBHOOK_MAX_ATTEMPTS


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = f"v0:{timestamp}:".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def retry_delay(attempts: int) -> int:
    """Seconds before the next try after `attempts` failed tries (30, 60, 120 ... 3600)."""
    return min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS)


def encode_payload(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _post(webhook: ReportingWebhook, payload: dict) -> str | None:
    """POST one payload; None on success, else why it failed."""
    try:
        secret = decrypt(webhook.secret_encrypted)
    except ValueError as exc:
        return str(exc)
    body = encode_payload(payload)
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-CIO-Timestamp": str(timestamp),
               "X-CIO-Signature": signature(secret, timestamp, body)}
    try:
        response = safe_request("POST", webhook.url, headers=headers, data=body)
    except BlockedDestination as exc:
        return f"blocked destination: {exc}"
    except (requests.RequestException, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"answered {response.status_code}: {response.text[:200].strip()}".strip(": ")


def _due_batch(size: int) -> list[ReportingWebhookCall]:
    return list(
        ReportingWebhookCall.unscoped.select_for_update(skip_locked=True, of=("self",))
        .select_related("webhook")
        .filter(state=ReportingWebhookCall.State.PENDING, next_attempt_at__lte=timezone.now(), webhook__active=True)
        .order_by("next_attempt_at", "pk")[:size]
    )


def _record_failure(call: ReportingWebhookCall, error: str) -> str:
    call.attempts += 1
    call.last_error = error
    if call.attempts >= max_attempts():
        call.state = ReportingWebhookCall.State.FAILED
        call.last_error = f"{error} (gave up after {call.attempts} attempts)"
    else:
        call.next_attempt_at = timezone.now() + timedelta(seconds=retry_delay(call.attempts))
    call.save(update_fields=["attempts", "last_error", "state", "next_attempt_at"])
    return call.state


def _postpone(call: ReportingWebhookCall, reason: str) -> None:
    call.last_error = reason
    call.next_attempt_at = timezone.now() + timedelta(seconds=retry_delay(max(call.attempts, 1)))
    call.save(update_fields=["last_error", "next_attempt_at"])


def send_due_calls(limit: int = 200, batch_size: int = BATCH_SIZE) -> dict:
    """Send up to `limit` due calls; returns counts of sent, retrying and failed calls."""
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    failing: dict[int, str] = {}  # webhook id → error, for this run
    handled = 0
    while handled < limit:
        # The lock is held while the batch is sent: a second worker skips these rows.
        with transaction.atomic():
            batch = _due_batch(min(batch_size, limit - handled))
            if not batch:
                break
            for call in batch:
                handled += 1
                earlier = failing.get(call.webhook_id)
                if earlier is not None:  # not an attempt: it waits for the endpoint to recover
                    _postpone(call, f"not tried: an earlier call to this webhook failed in this run ({earlier})")
                    counts["retrying"] += 1
                    continue
                error = _post(call.webhook, call.payload)
                if error is None:
                    call.state = ReportingWebhookCall.State.SENT
                    call.sent_at = timezone.now()
                    call.attempts += 1
                    call.last_error = ""
                    call.save(update_fields=["state", "sent_at", "attempts", "last_error"])
                    counts["sent"] += 1
                    continue
                failing.setdefault(call.webhook_id, error)
                state = _record_failure(call, error)
                counts["failed" if state == ReportingWebhookCall.State.FAILED else "retrying"] += 1
    if counts["retrying"] or counts["failed"]:
        logger.info("reporting webhooks: %s", counts)
    return counts
