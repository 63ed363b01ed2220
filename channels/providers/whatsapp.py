"""WhatsApp Business Cloud API (Meta Graph API).

POST {base}/{phone_number_id}/messages with the access token as Bearer. A message is a template
(allowed any time) or free-form text/media/reply buttons, which WhatsApp only allows inside the 24-hour
customer service window: within 24 hours of the person's last message to this number (an
InboundMessage on this configuration). Statuses and inbound messages arrive at
/hooks/whatsapp/<public_id>, signed with the app secret (channels/hooks.py).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings as django_settings
from django.utils import timezone

from channels.keywords import REPLY_SETTINGS
from channels.providers.base import ConfigurationError, OutgoingMessage, Provider, ProviderError, SendResult
from channels.providers.http import call_provider, reply_json, retry_after

SERVICE_WINDOW = timedelta(hours=24)
MEDIA_TYPES = ("image", "document", "video", "audio", "sticker")
CAPTIONED = ("image", "document", "video")

# Graph API / WhatsApp error codes.
TRANSIENT_CODES = {
    2: "WhatsApp service temporarily unavailable",
    4: "application request limit reached",
    80007: "WhatsApp Business Account rate limit reached",
    130429: "Cloud API throughput limit reached",
    131048: "spam rate limit reached",
    131056: "too many messages to this number in a short time",
    133004: "WhatsApp server temporarily unavailable",
}
UNDELIVERABLE_CODES = {
    131026: "the number cannot receive WhatsApp messages (not on WhatsApp, or old app version)",
    131021: "the recipient is the sender's own number",
    131050: "the person stopped marketing messages from this business",
}
REENGAGEMENT_CODE = 131047
AUTH_CODES = {0, 10, 190, 200}
OUTSIDE_WINDOW = ("outside the 24-hour window: the person has not written to this number in the last 24 hours; "
                  "use a template")


def phone_number_id(config) -> str:
    return str((config.settings or {}).get("phone_number_id") or config.sender or "")


def window_open(config, address: str, *, now=None) -> bool:
    """Whether the person wrote to this configuration's number within the last 24 hours."""
    from channels.consent import normalize_address
    from channels.models import InboundMessage

    since = (now or timezone.now()) - SERVICE_WINDOW
    return InboundMessage.objects.for_workspace(config.workspace_id).filter(channel_config_id=config.pk,
        from_address=normalize_address("whatsapp", address), received_at__gte=since).exists()


def template_object(template: dict) -> dict:
    if not isinstance(template, dict) or not template.get("name"):
        raise ProviderError("the WhatsApp template needs a name")
    language = template.get("language") or "en_US"
    if isinstance(language, str):
        language = {"code": language}
    body = {"name": str(template["name"]), "language": language}
    if template.get("components"):
        body["components"] = template["components"]
    return body


MAX_BUTTONS, MAX_BUTTON_TITLE, MAX_BUTTON_ID = 3, 20, 256


def buttons_object(text: str, buttons) -> dict:
    """An interactive message with reply buttons (free-form, inside the window): `buttons` is a
    list of 1 to 3 {"title", "id"?}; the person's tap comes back as an inbound message whose text
    is the button's title (channels/hooks.py), so a journey's wait-for-reply branches on it."""
    if not text:
        raise ProviderError("a WhatsApp message with buttons needs a body")
    problem = buttons_problem(buttons)
    if problem:
        raise ProviderError(problem)
    replies = [{"type": "reply", "reply": {"id": str(button.get("id") or button["title"].strip())[:MAX_BUTTON_ID],
                                           "title": button["title"].strip()}} for button in buttons]
    return {"type": "button", "body": {"text": text}, "action": {"buttons": replies}}


def buttons_problem(buttons, *, templates: bool = False) -> str | None:
    """What is wrong with a list of reply buttons, or None. `templates`: titles are still Liquid
    (checked at save), so a title with a tag may be longer until rendered."""
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        return f"a WhatsApp message has 1 to {MAX_BUTTONS} reply buttons"
    for i, button in enumerate(buttons):
        if not isinstance(button, dict) or set(button) - {"id", "title"}:
            return f"button {i + 1}: {{\"title\", \"id\"}} only"
        title = button.get("title")
        if not isinstance(title, str) or not title.strip():
            return f"button {i + 1}: a title of 1 to {MAX_BUTTON_TITLE} characters"
        if len(title.strip()) > MAX_BUTTON_TITLE and not (templates and "{" in title):
            return f"button {i + 1}: a title of 1 to {MAX_BUTTON_TITLE} characters"
        if button.get("id") is not None and (not isinstance(button["id"], str) or len(button["id"]) > MAX_BUTTON_ID):
            return f"button {i + 1}: an id of at most {MAX_BUTTON_ID} characters"
    return None


def media_object(payload: dict) -> tuple[str, dict] | None:
    """(type, {"link": url, ...}) from payload `media` {type, url|link, caption, filename} or
    `media_url` + `media_type`; None when there is no media."""
    media = payload.get("media")
    if isinstance(media, dict):
        kind, link = media.get("type") or "image", media.get("link") or media.get("url")
        extra = {k: media[k] for k in ("caption", "filename") if media.get(k)}
    elif payload.get("media_url"):
        kind, link, extra = payload.get("media_type") or "image", payload["media_url"], {}
    else:
        return None
    if kind not in MEDIA_TYPES:
        raise ProviderError(f"unsupported WhatsApp media type {kind!r}; use one of {', '.join(MEDIA_TYPES)}")
    if not link:
        raise ProviderError("the WhatsApp media has no URL")
    return kind, {"link": str(link), **extra}


class WhatsAppCloudProvider(Provider):
    settings_fields = {"phone_number_id": False, "business_account_id": False, "base_url": False,
                       **dict.fromkeys(REPLY_SETTINGS.values(), False)}
    secret_fields = {"access_token": True, "app_secret": True, "verify_token": True}
    # Ids as strings: Meta's ids are longer than a JSON number keeps exactly in many clients.
    settings_types = dict.fromkeys(settings_fields, str)

    def build_body(self, message: OutgoingMessage) -> dict:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": message.recipient.lstrip("+")}
        payload = message.payload or {}
        if payload.get("template"):
            body.update(type="template", template=template_object(payload["template"]))
            return body
        if not window_open(self.config, message.recipient):
            raise ProviderError(OUTSIDE_WINDOW)
        text = message.body or message.body_plain
        media = media_object(payload)
        if payload.get("buttons"):
            body.update(type="interactive", interactive=buttons_object(text, payload["buttons"]))
        elif media is not None:
            kind, obj = media
            if text and kind in CAPTIONED:
                obj.setdefault("caption", text)
            body.update({"type": kind, kind: obj})
        elif text:
            body.update(type="text", text={"body": text, "preview_url": bool(payload.get("preview_url"))})
        else:
            raise ProviderError("the WhatsApp message is empty")
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        number_id = phone_number_id(self.config)
        if not number_id or not self.secrets.get("access_token"):
            raise ConfigurationError("the WhatsApp configuration needs a phone_number_id (or sender) and access_token")
        body = self.build_body(message)
        base = (self.settings.get("base_url") or django_settings.ULAK_WHATSAPP_BASE_URL).rstrip("/")
        response = call_provider("POST", f"{base}/{number_id}/messages", json_body=body,
                                 headers={"Authorization": f"Bearer {self.secrets['access_token']}"},
                                 what="the WhatsApp Cloud API")
        reply = reply_json(response) or {}
        messages = reply.get("messages") if isinstance(reply, dict) else None
        if 200 <= response.status_code < 300 and messages and messages[0].get("id"):
            detail = {"type": body["type"]}
            contacts = reply.get("contacts") or []
            if contacts and contacts[0].get("wa_id"):
                detail["wa_id"] = contacts[0]["wa_id"]
            return SendResult(provider_message_id=messages[0]["id"], detail=detail)
        raise self._error(response, reply if isinstance(reply, dict) else {})

    def _error(self, response, reply: dict) -> ProviderError:
        status = response.status_code
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        code = error.get("code")
        text = (error.get("error_data") or {}).get("details") or error.get("message") or response.text[:200]
        reason = f"WhatsApp error {code}: {text}" if code is not None else f"WhatsApp answered HTTP {status}: {text}"
        detail = {"provider_code": code} if code is not None else {}
        if status in (429, 503) or code in TRANSIENT_CODES:
            return ProviderError(f"{TRANSIENT_CODES.get(code, 'rate limited')} ({reason})", transient=True,
                                 retry_after=retry_after(response), detail=detail)
        if code == REENGAGEMENT_CODE:
            return ProviderError(f"{OUTSIDE_WINDOW} ({reason})", detail=detail)
        if code in UNDELIVERABLE_CODES:
            return ProviderError(f"{UNDELIVERABLE_CODES[code]} ({reason})", undeliverable=True, detail=detail)
        if status == 401 or code in AUTH_CODES:
            return ConfigurationError(f"WhatsApp refused the access token ({reason})", detail=detail)
        if status >= 500:
            return ProviderError(f"{reason} (outcome unknown, not sent again)", detail=detail)
        return ProviderError(reason, detail=detail)
