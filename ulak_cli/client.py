"""The App API over HTTP, with the standard library only: the command line must run wherever
Python does (a CI job, a laptop) without Ulak's own code or its dependencies.

Every failure becomes one of three exceptions, each with the exit code a script can branch on:
`UsageError` (2: the command or a file it read is wrong; nothing was sent), `Refused` (1: the
server answered 4xx; its JSON error names each field) and `Unavailable` (3: no answer, a 5xx, or
an answer that is not the API's JSON).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

USER_AGENT = "ulak-cli"


class CliError(Exception):
    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, body: dict | None = None):
        super().__init__(message)
        self.message = message
        self.body = body  # the server's JSON answer, when there is one (printed by --json)


class UsageError(CliError):
    exit_code = EXIT_USAGE


class Refused(CliError):
    """A 4xx answer, or something the server was asked about that does not exist (a key no
    campaign has). `errors` are the API's `[{"field", "message"}]`."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, status: int | None = None, errors: list[dict] | None = None,
                 body: dict | None = None):
        super().__init__(message, body=body)
        self.status = status
        self.errors = errors or [{"field": None, "message": message}]


class Unavailable(CliError):
    exit_code = EXIT_UNAVAILABLE


class Client:
    """`request("GET", "/v1/campaigns")` → the decoded JSON answer (None for an empty one)."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0):
        if not url:
            raise UsageError("no server: set ULAK_URL or pass --url (e.g. https://ulak.example.com)")
        if not key:
            raise UsageError("no App API key: set ULAK_APP_KEY or pass --key")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"the server URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, *, headers: dict | None = None, query: dict | None = None):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Accept": "application/json", "User-Agent": USER_AGENT,
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timeout
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"cannot reach {self.url}: {reason}") from None
        answer = _decode(raw)
        if status >= 500:
            raise Unavailable(f"the server failed (HTTP {status}): {_summary(answer) or 'no details'}",
                              body=answer if isinstance(answer, dict) else None)
        if status >= 400:
            errors = answer.get("errors") if isinstance(answer, dict) else None
            if not isinstance(errors, list) or not errors:
                errors = [{"field": None, "message": _summary(answer) or f"HTTP {status}"}]
            raise Refused(_summary(answer) or f"HTTP {status}", status=status, errors=errors,
                          body=answer if isinstance(answer, dict) else None)
        if raw and answer is _NOT_JSON:
            raise Unavailable(f"{self.url} answered {method} {path} with something that is not JSON: is ULAK_URL the "
                              "address of an Ulak server?")
        return None if answer is _NOT_JSON else answer


_NOT_JSON = object()


def _decode(raw: bytes):
    if not raw:
        return _NOT_JSON
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _summary(answer) -> str | None:
    if isinstance(answer, dict):
        meta = answer.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("error"), str):
            return meta["error"]
    return None
