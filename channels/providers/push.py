"""Push notifications: Firebase Cloud Messaging (HTTP v1) and Apple Push Notification service
(token-based authentication).

A delivery goes to every device token in `payload["tokens"]` (channels/outgoing.py), one call per
token. Tokens the service calls invalid come back in `SendResult.invalid_tokens` (the pipeline
removes those devices); when every token is invalid the delivery is undeliverable.

Credentials are turned into short-lived bearer tokens that are cached (Django cache) per
configuration and key: FCM's OAuth2 access token (JWT-bearer grant signed RS256 with the service
account key) until shortly before it expires, APNs' ES256 provider token for 50 minutes (Apple
accepts one for up to an hour and refuses renewals more often than every 20 minutes).

APNs speaks HTTP/2 only: its calls go through safe_http.safe_http2_request (httpx, same SSRF guard,
connections kept open and reused as Apple asks); FCM's go through call_provider (requests).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from dataclasses import dataclass, field

import httpx
import jwt
from django.conf import settings as django_settings
from django.core.cache import cache

from channels.providers.base import ConfigurationError, OutgoingMessage, Provider, ProviderError, SendResult
from channels.providers.http import call_provider, reply_json, retry_after
from channels.safe_http import BlockedDestination, safe_http2_request

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
APNS_TOKEN_SECONDS = 50 * 60
TOKEN_MARGIN_SECONDS = 120


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass
class TokenOutcome:
    """What happened to one device token."""

    token: str
    message_id: str = ""
    invalid: bool = False
    transient: bool = False
    reason: str = ""
    retry_after: int | None = None


@dataclass
class Fanout:
    outcomes: list[TokenOutcome] = field(default_factory=list)

    def result(self, service: str) -> SendResult:
        """A SendResult when at least one device took the message, else the right ProviderError.

        Retrying is only safe when no device may have got it: every failure was transient or an
        invalid token. An unknown outcome on any device makes the failure permanent."""
        sent = [o for o in self.outcomes if o.message_id]
        invalid = [o.token for o in self.outcomes if o.invalid]
        failed = [o for o in self.outcomes if not o.message_id and not o.invalid]
        detail = {"devices": len(self.outcomes), "sent": len(sent)}
        if invalid:
            detail["invalid_tokens"] = invalid
        if failed:
            detail["errors"] = sorted({o.reason for o in failed})[:5]
        if sent:
            return SendResult(provider_message_id=sent[0].message_id, detail=detail, invalid_tokens=invalid)
        if failed and all(o.transient for o in failed):
            waits = [o.retry_after for o in failed if o.retry_after]
            raise ProviderError(failed[0].reason, transient=True, retry_after=max(waits) if waits else None,
                                detail=detail)
        if failed:
            raise ProviderError(failed[0].reason, detail=detail)
        raise ProviderError(f"every device token was rejected by {service} as invalid", undeliverable=True,
                            detail=detail)


def _custom_data(payload: dict) -> dict:
    data = payload.get("data") or payload.get("custom_data") or {}
    return data if isinstance(data, dict) else {}


def _title(message: OutgoingMessage) -> str:
    return str(message.payload.get("title") or message.subject or "")


def _image(payload: dict) -> str:
    return str(payload.get("image_url") or payload.get("image") or "")


def _link(payload: dict) -> str:
    return str(payload.get("link") or payload.get("deep_link") or payload.get("url") or "")


# --- Firebase Cloud Messaging -----------------------------------------------------------------------

class FcmProvider(Provider):
    settings_fields = {"project_id": False, "base_url": False, "token_url": False}
    secret_fields = {"service_account": True}

    @classmethod
    def validate_settings(cls, settings: dict, secrets: dict, *, partial_secrets: bool = False) -> dict:
        errors = super().validate_settings(settings, secrets, partial_secrets=partial_secrets)
        if secrets.get("service_account") not in (None, ""):
            try:
                cls._parse_account(secrets["service_account"])
            except ConfigurationError as exc:
                errors["secrets.service_account"] = exc.reason
        return errors

    @staticmethod
    def _parse_account(value) -> dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigurationError("the service account is not valid JSON") from None
        if not isinstance(value, dict):
            raise ConfigurationError("the service account must be a JSON object")
        missing = [k for k in ("client_email", "private_key") if not value.get(k)]
        if missing:
            raise ConfigurationError(f"the service account lacks {', '.join(missing)}")
        return value

    def _account(self) -> dict:
        return self._parse_account(self.secrets.get("service_account"))

    def _token_url(self) -> str:
        return self.settings.get("token_url") or django_settings.ULAK_GOOGLE_TOKEN_URL

    def _cache_key(self, account: dict) -> str:
        print_ = _fingerprint(account["client_email"], account.get("private_key_id", ""), account["private_key"],
                              self._token_url())
        return f"push:fcm-token:{self.config.pk}:{print_}"

    def access_token(self, *, fresh: bool = False) -> str:
        account = self._account()
        key = self._cache_key(account)
        if not fresh:
            cached = cache.get(key)
            if cached:
                return cached
        now = int(time.time())
        token_url = self._token_url()
        claims = {"iss": account["client_email"], "scope": FCM_SCOPE, "aud": token_url, "iat": now, "exp": now + 3600}
        key_id = {"kid": account["private_key_id"]} if account.get("private_key_id") else None
        try:
            assertion = jwt.encode(claims, account["private_key"], algorithm="RS256", headers=key_id)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigurationError(f"the service account private key cannot sign: {exc}") from exc
        try:
            response = call_provider("POST", token_url, data={"grant_type": JWT_BEARER, "assertion": assertion},
                                     what="the Google token endpoint")
        except ConfigurationError:
            raise
        except ProviderError as exc:
            # Nothing was sent to any device yet: whatever happened, trying again is safe.
            raise ProviderError(exc.reason, transient=True) from exc
        reply = reply_json(response) or {}
        if response.status_code != 200 or not reply.get("access_token"):
            reason = reply.get("error_description") or reply.get("error") or response.text[:200]
            if response.status_code >= 500 or response.status_code == 429:
                raise ProviderError(f"Google token endpoint answered HTTP {response.status_code}", transient=True)
            raise ConfigurationError(f"Google refused the service account: {reason}")
        lifetime = int(reply.get("expires_in") or 3600)
        cache.set(key, reply["access_token"], max(lifetime - TOKEN_MARGIN_SECONDS, 1))
        return reply["access_token"]

    def _project(self) -> str:
        project = self.settings.get("project_id") or self._account().get("project_id")
        if not project:
            raise ConfigurationError("the FCM configuration needs a project_id")
        return project

    def fcm_message(self, message: OutgoingMessage, token: str) -> dict:
        payload = message.payload or {}
        notification = {"title": _title(message), "body": message.body or message.body_plain}
        if _image(payload):
            notification["image"] = _image(payload)
        data = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in _custom_data(payload).items()}
        body = {"token": token, "notification": {k: v for k, v in notification.items() if v}}
        link = _link(payload)
        if link:
            data.setdefault("link", link)
            if link.startswith("https://"):
                body["webpush"] = {"fcm_options": {"link": link}}
        if data:
            body["data"] = data
        return {"message": body}

    def send(self, message: OutgoingMessage) -> SendResult:
        tokens = message.payload.get("tokens") or []
        if not tokens:
            raise ProviderError("the person has no push devices", undeliverable=True)
        base = (self.settings.get("base_url") or django_settings.ULAK_FCM_BASE_URL).rstrip("/")
        url = f"{base}/v1/projects/{self._project()}/messages:send"
        access = self.access_token()
        fanout = Fanout()
        for token in tokens:
            outcome, access = self._send_one(url, access, self.fcm_message(message, token), token)
            fanout.outcomes.append(outcome)
        return fanout.result("FCM")

    def _send_one(self, url: str, access: str, body: dict, token: str) -> tuple[TokenOutcome, str]:
        for attempt in (1, 2):
            try:
                response = call_provider("POST", url, json_body=body, headers={"Authorization": f"Bearer {access}"},
                                         what="FCM")
            except ProviderError as exc:
                return TokenOutcome(token, transient=exc.transient, reason=exc.reason), access
            if response.status_code == 401 and attempt == 1:  # the cached access token expired early
                access = self.access_token(fresh=True)
                continue
            return self._outcome(token, response), access
        return self._outcome(token, response), access

    @staticmethod
    def _outcome(token: str, response) -> TokenOutcome:
        status = response.status_code
        reply = reply_json(response) or {}
        if 200 <= status < 300 and reply.get("name"):
            return TokenOutcome(token, message_id=reply["name"])
        error = reply.get("error") if isinstance(reply, dict) and isinstance(reply.get("error"), dict) else {}
        codes = {d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict)}
        fields = {v.get("field", "") for d in error.get("details") or [] if isinstance(d, dict)
                  for v in d.get("fieldViolations") or [] if isinstance(v, dict)}
        state = error.get("status") or ""
        text = error.get("message") or response.text[:200]
        reason = f"FCM {next(iter(codes - {None}), state) or status}: {text}"
        if "UNREGISTERED" in codes or (status == 404 and state == "NOT_FOUND"):
            return TokenOutcome(token, invalid=True, reason=reason)
        if status == 400 and ("INVALID_ARGUMENT" in codes or state == "INVALID_ARGUMENT") and (
                "message.token" in fields or "token" in text.lower()):
            return TokenOutcome(token, invalid=True, reason=reason)
        if "SENDER_ID_MISMATCH" in codes:
            return TokenOutcome(token, invalid=True, reason=reason)
        if status in (429, 503) or codes & {"QUOTA_EXCEEDED", "UNAVAILABLE"}:
            return TokenOutcome(token, transient=True, reason=reason, retry_after=retry_after(response))
        if status in (401, 403):
            return TokenOutcome(token, reason=f"FCM refused the credentials ({reason})")
        if status >= 500:
            return TokenOutcome(token, reason=f"{reason} (outcome unknown, not sent again)")
        return TokenOutcome(token, reason=reason)


# --- Apple Push Notification service ------------------------------------------------------------

def _certificate_refused(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def call_http2(method: str, url: str, *, headers: dict, json_body=None, what: str, verify: bool | str = True):
    """call_provider's contract over HTTP/2 (safe_http2_request): ConfigurationError for a forbidden
    URL; ProviderError transient when nothing was sent (DNS, connection refused or timed out, no free
    connection), permanent otherwise (read timeout, dropped connection: the outcome is unknown)."""
    try:
        response = safe_http2_request(method, url, headers=headers, json=json_body, verify=verify)
    except BlockedDestination as exc:
        raise ConfigurationError(f"{what} URL is not allowed: {exc}") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        if _certificate_refused(exc):
            raise ProviderError(f"the TLS certificate of {what} was refused: {exc}") from exc
        raise ProviderError(f"could not connect to {what}: {type(exc).__name__}", transient=True) from exc
    except httpx.HTTPError as exc:
        raise ProviderError(f"no answer from {what} ({type(exc).__name__}): outcome unknown, not sent again") from exc
    if response.status_code in (301, 302, 303, 307, 308):
        raise ProviderError(f"{what} answered with a redirect, which is not followed")
    return response


class ApnsProvider(Provider):
    settings_fields = {"team_id": True, "key_id": True, "bundle_id": True, "base_url": False, "sound": False}
    secret_fields = {"private_key": True}

    def _cache_key(self) -> str:
        print_ = _fingerprint(self.settings.get("team_id", ""), self.settings.get("key_id", ""),
                              self.secrets.get("private_key", ""))
        return f"push:apns-jwt:{self.config.pk}:{print_}"

    def provider_token(self, *, fresh: bool = False) -> str:
        key = self._cache_key()
        if not fresh:
            cached = cache.get(key)
            if cached:
                return cached
        team, key_id, private_key = (self.settings.get("team_id"), self.settings.get("key_id"),
                                     self.secrets.get("private_key"))
        if not (team and key_id and private_key):
            raise ConfigurationError("the APNs configuration needs team_id, key_id and private_key")
        try:
            token = jwt.encode({"iss": team, "iat": int(time.time())}, private_key, algorithm="ES256",
                               headers={"kid": key_id})
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigurationError(f"the APNs private key (.p8) cannot sign: {exc}") from exc
        cache.set(key, token, APNS_TOKEN_SECONDS)
        return token

    def apns_payload(self, message: OutgoingMessage) -> dict:
        payload = message.payload or {}
        alert = {"title": _title(message), "body": message.body or message.body_plain}
        aps = {"alert": {k: v for k, v in alert.items() if v}, "sound": payload.get("sound")
               or self.settings.get("sound") or "default"}
        body = {k: v for k, v in _custom_data(payload).items() if k != "aps"}
        if _image(payload):
            aps["mutable-content"] = 1
            body.setdefault("image", _image(payload))
        if _link(payload):
            body.setdefault("link", _link(payload))
        body["aps"] = aps
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        tokens = message.payload.get("tokens") or []
        if not tokens:
            raise ProviderError("the person has no push devices", undeliverable=True)
        if not self.settings.get("bundle_id"):
            raise ConfigurationError("the APNs configuration needs a bundle_id (apns-topic)")
        base = (self.settings.get("base_url") or django_settings.ULAK_APNS_BASE_URL).rstrip("/")
        body = self.apns_payload(message)
        bearer = self.provider_token()
        fanout = Fanout()
        for token in tokens:
            outcome, bearer = self._send_one(f"{base}/3/device/{token}", bearer, body, token)
            fanout.outcomes.append(outcome)
        return fanout.result("APNs")

    def _headers(self, bearer: str) -> dict:
        return {"authorization": f"bearer {bearer}", "apns-topic": self.settings["bundle_id"],
                "apns-push-type": "alert", "apns-priority": "10"}

    def _send_one(self, url: str, bearer: str, body: dict, token: str) -> tuple[TokenOutcome, str]:
        for attempt in (1, 2):
            try:
                response = call_http2("POST", url, json_body=body, headers=self._headers(bearer), what="APNs",
                                      verify=django_settings.ULAK_APNS_CA_BUNDLE or True)
            except ProviderError as exc:
                return TokenOutcome(token, transient=exc.transient, reason=exc.reason), bearer
            reason = (reply_json(response) or {}).get("reason", "") if response.status_code != 200 else ""
            if response.status_code == 403 and reason == "ExpiredProviderToken" and attempt == 1:
                bearer = self.provider_token(fresh=True)
                continue
            return self._outcome(token, response, reason), bearer
        return self._outcome(token, response, reason), bearer

    @staticmethod
    def _outcome(token: str, response, reason: str) -> TokenOutcome:
        status = response.status_code
        if status == 200:
            return TokenOutcome(token, message_id=response.headers.get("apns-id") or "accepted")
        text = f"APNs {status} {reason}".strip()
        if status == 410 or reason in ("BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"):
            return TokenOutcome(token, invalid=True, reason=text)
        if status in (429, 503):
            return TokenOutcome(token, transient=True, reason=text, retry_after=retry_after(response))
        if status == 403:
            return TokenOutcome(token, reason=f"APNs refused the provider token or topic ({text})")
        if status >= 500:
            return TokenOutcome(token, reason=f"{text} (outcome unknown, not sent again)")
        return TokenOutcome(token, reason=text)
