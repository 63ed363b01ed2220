"""Twilio Programmable Messaging (SMS/MMS).

POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded, Basic auth
AccountSid:AuthToken. Twilio reports delivery to our StatusCallback
(/hooks/twilio/<public_id>/status) and inbound messages to /hooks/twilio/<public_id>/inbound,
both signed with the auth token (channels/hooks.py).
"""

from __future__ import annotations

from django.conf import settings as django_settings

from channels.keywords import REPLY_SETTINGS
from channels.providers.base import ConfigurationError, OutgoingMessage, Provider, ProviderError, SendResult
from channels.providers.http import basic_auth, call_provider, reply_json, retry_after

# Twilio error codes (https://www.twilio.com/docs/api/errors).
UNDELIVERABLE_CODES = {
    21211: "invalid 'To' phone number",
    21612: "the 'To' number cannot be reached from this sender",
    21614: "'To' is not a valid mobile number",
    21610: "the recipient replied STOP to this sender",
}
STOPPED_CODE = 21610
AUTH_CODES = {20003, 20404}
RATE_CODES = {20429, 14107}


def status_callback_url(config) -> str:
    return f"{django_settings.ULAK_PUBLIC_URL.rstrip('/')}/hooks/twilio/{config.public_id}/status"


def inbound_url(config) -> str:
    return f"{django_settings.ULAK_PUBLIC_URL.rstrip('/')}/hooks/twilio/{config.public_id}/inbound"


def _media_urls(payload: dict) -> list[str]:
    urls = payload.get("media_urls") or payload.get("media_url") or []
    return [urls] if isinstance(urls, str) else [str(u) for u in urls]


def suppress_stopped(config, message: OutgoingMessage, note: str) -> None:
    from channels.inbound import suppress_stopped_address
    from channels.models import Delivery

    delivery = (Delivery.objects.for_workspace(config.workspace_id).filter(public_id=message.delivery_id)
                .select_related("profile").first())
    suppress_stopped_address(config, message.recipient, note, profile=delivery.profile if delivery else None)


class TwilioProvider(Provider):
    settings_fields = {"account_sid": True, "messaging_service_sid": False, "base_url": False,
                       **dict.fromkeys(REPLY_SETTINGS.values(), False)}
    secret_fields = {"auth_token": True}
    settings_types = dict.fromkeys(settings_fields, str)

    def _url(self) -> str:
        base = (self.settings.get("base_url") or django_settings.ULAK_TWILIO_BASE_URL).rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self.settings.get('account_sid', '')}/Messages.json"

    def _form(self, message: OutgoingMessage) -> list[tuple[str, str]]:
        form = [("To", message.recipient), ("Body", message.body or message.body_plain)]
        service = self.settings.get("messaging_service_sid")
        if service:
            form.append(("MessagingServiceSid", service))
        elif message.sender:
            form.append(("From", message.sender))
        else:
            raise ConfigurationError("the Twilio configuration has neither a sender number nor a messaging service")
        form += [("MediaUrl", url) for url in _media_urls(message.payload)]
        form.append(("StatusCallback", status_callback_url(self.config)))
        return form

    def send(self, message: OutgoingMessage) -> SendResult:
        if not self.settings.get("account_sid") or not self.secrets.get("auth_token"):
            raise ConfigurationError("the Twilio configuration needs account_sid and auth_token")
        headers = {"Authorization": basic_auth(self.settings["account_sid"], self.secrets["auth_token"]),
                   "Accept": "application/json"}
        response = call_provider("POST", self._url(), headers=headers, data=self._form(message), what="Twilio")
        reply = reply_json(response) or {}
        if 200 <= response.status_code < 300 and reply.get("sid"):
            return SendResult(provider_message_id=reply["sid"], detail={"provider_status": reply.get("status", "")})
        raise self._error(message, response, reply)

    def _error(self, message: OutgoingMessage, response, reply: dict) -> ProviderError:
        status = response.status_code
        code = reply.get("code")
        text = reply.get("message") or response.text[:200]
        reason = f"Twilio error {code}: {text}" if code else f"Twilio answered HTTP {status}: {text}"
        detail = {"provider_code": code} if code else {}
        if status in (429, 503) or code in RATE_CODES:
            return ProviderError(reason, transient=True, retry_after=retry_after(response), detail=detail)
        if code in UNDELIVERABLE_CODES:
            if code == STOPPED_CODE:
                suppress_stopped(self.config, message, note=reason)
            return ProviderError(f"{UNDELIVERABLE_CODES[code]} ({reason})", undeliverable=True, detail=detail)
        if status == 401 or code in AUTH_CODES:
            return ConfigurationError(f"Twilio refused the credentials ({reason})", detail=detail)
        if status >= 500:
            return ProviderError(f"{reason} (outcome unknown, not sent again)", detail=detail)
        return ProviderError(reason, detail=detail)
