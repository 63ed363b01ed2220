"""Webhook channel: one HTTP request per delivery to a tenant-defined URL, signed per Standard
Webhooks (https://www.standardwebhooks.com/) and sent through the SSRF guard.

The rendered payload holds `method`, `url`, `headers` and `body` (a JSON object/array, sent as
JSON, or a string, sent as is). Headers added to every request:

    webhook-id:        the delivery id (the same on every retry: receivers dedupe by it)
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: "v1,<base64 HMAC-SHA256(key, '{id}.{timestamp}.{body}')>"

where key is the base64 part of the configuration's `signing_secret` ("whsec_<base64>").
Outcomes: 2xx → sent; timeouts, connection errors, 408, 429 and 5xx → retried (unlike other
providers a timeout is retried: the receiver dedupes by webhook-id); other answers → failed;
a forbidden destination → failed with "blocked destination: ...".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

import requests
from django.conf import settings

from channels.providers.base import OutgoingMessage, Provider, ProviderError, SendResult
from channels.safe_http import BlockedDestination, safe_request

METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
SECRET_PREFIX = "whsec_"
MAX_TIMEOUT_SECONDS = 30
# Set by Ulak: a template may not override them.
RESERVED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "host", "content-length")
RETRY_STATUSES = (408, 429)


def secret_key(signing_secret: str) -> bytes:
    """The HMAC key of a "whsec_<base64>" secret (the prefix is optional)."""
    encoded = signing_secret.strip().removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("must be 'whsec_' followed by a base64 key") from exc


def sign(signing_secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(signing_secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def encode_body(body) -> tuple[bytes, str]:
    """(bytes to send, default Content-Type)."""
    if body is None or body == "":
        return b"", ""
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"
    text = str(body)
    try:
        json.loads(text)
        return text.encode(), "application/json"
    except ValueError:
        return text.encode(), "text/plain; charset=utf-8"


def _retry_after(response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def _snippet(response) -> str:
    return response.text[:200].strip()


class WebhookProvider(Provider):
    settings_fields = {"timeout_seconds": False}
    secret_fields = {"signing_secret": True}

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        errors = super().validate_settings(settings, secrets, partial_secrets=partial_secrets)
        timeout = settings.get("timeout_seconds")
        if timeout not in (None, "") and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                          or not 0 < timeout <= MAX_TIMEOUT_SECONDS):
            errors["settings.timeout_seconds"] = f"Must be a number of seconds from 1 to {MAX_TIMEOUT_SECONDS}."
        secret = secrets.get("signing_secret")
        if secret not in (None, ""):
            try:
                size = len(secret_key(str(secret)))
            except ValueError as exc:
                errors["secrets.signing_secret"] = f"Must be 'whsec_' followed by a base64 key ({exc})."
            else:
                if not 24 <= size <= 64:
                    errors["secrets.signing_secret"] = "The key must be 24 to 64 bytes (Standard Webhooks)."
        return errors

    def _timeout(self) -> float:
        value = self.settings.get("timeout_seconds") or settings.ULAK_HTTP_TIMEOUT_SECONDS
        return min(float(value), MAX_TIMEOUT_SECONDS)

    def _request(self, message: OutgoingMessage) -> tuple[str, str, dict, bytes]:
        payload = message.payload
        method = str(payload.get("method") or "POST").upper()
        if method not in METHODS:
            raise ProviderError(f"unsupported webhook method {method!r}; use one of {', '.join(METHODS)}")
        url = str(payload.get("url") or message.recipient or "").strip()
        if not url:
            raise ProviderError("the webhook has no url")
        raw_headers = payload.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise ProviderError("webhook headers must be an object")
        body, content_type = encode_body(payload.get("body"))
        headers = {str(k).strip(): str(v) for k, v in raw_headers.items()
                   if str(k).strip().lower() not in RESERVED_HEADERS}
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        signing_secret = self.secrets.get("signing_secret")
        if not signing_secret:
            raise ProviderError("the webhook channel configuration has no signing_secret")
        timestamp = int(time.time())
        try:
            signature = sign(signing_secret, message.delivery_id, timestamp, body)
        except ValueError as exc:
            raise ProviderError(f"signing_secret {exc}") from exc
        headers.update({"webhook-id": message.delivery_id, "webhook-timestamp": str(timestamp),
                        "webhook-signature": signature})
        return method, url, headers, body

    def send(self, message: OutgoingMessage) -> SendResult:
        method, url, headers, body = self._request(message)
        try:
            response = safe_request(method, url, headers=headers, data=body or None, timeout=self._timeout())
        except BlockedDestination as exc:
            raise ProviderError(f"blocked destination: {exc}") from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise ProviderError(f"webhook request failed: {type(exc).__name__}: {exc}"[:500], transient=True) from exc
        except (requests.RequestException, ValueError) as exc:  # too many redirects, invalid header...
            raise ProviderError(f"webhook request failed: {type(exc).__name__}: {exc}"[:500]) from exc
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(provider_message_id=message.delivery_id, detail={"status_code": status})
        detail = {"status_code": status}
        reason = f"webhook answered {status}" + (f": {_snippet(response)}" if response.text else "")
        if status >= 500 or status in RETRY_STATUSES:
            raise ProviderError(reason, transient=True, retry_after=_retry_after(response), detail=detail)
        raise ProviderError(reason, detail=detail)
