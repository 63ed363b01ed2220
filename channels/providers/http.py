"""The HTTP call every SMS, WhatsApp and push adapter makes, and small helpers for replies.

Every call goes through the SSRF guard (channels/safe_http.py): a channel's `settings.base_url`
is the tenant's, as is an HTTP gateway's URL.
"""

from __future__ import annotations

import base64

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from channels.providers.base import ConfigurationError, ProviderError
from channels.safe_http import BlockedDestination, safe_request

# HTTP statuses after which the provider certainly did not act: safe to send again later.
RETRYABLE_STATUSES = (429, 503)


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached the provider (refused, unreachable, DNS)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.Timeout):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
        return True
    return isinstance(reason, str) and reason.startswith("could not resolve")


def call_provider(method: str, url: str, *, headers: dict | None = None, data=None, json_body=None,
                  timeout=None, what: str = "the provider") -> requests.Response:
    """One HTTP call to a provider through the SSRF guard, redirects not followed.

    Raises ProviderError: transient when the request never left (connection refused, DNS), not
    transient when it may have been received (read timeout, connection dropped mid-way)."""
    try:
        return safe_request(method, url, headers=headers, data=data, json=json_body, timeout=timeout,
                            max_redirects=0)
    except BlockedDestination as exc:
        raise ConfigurationError(f"{what} URL is not allowed: {exc}") from exc
    except requests.TooManyRedirects as exc:
        raise ProviderError(f"{what} answered with a redirect, which is not followed") from exc
    except requests.RequestException as exc:
        if _never_connected(exc):
            raise ProviderError(f"could not connect to {what}: {type(exc).__name__}", transient=True) from exc
        raise ProviderError(f"no answer from {what} ({type(exc).__name__}): outcome unknown, not sent again") from exc


def reply_json(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def snippet(response: requests.Response, limit: int = 200) -> str:
    return response.text[:limit].strip()
