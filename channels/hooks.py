"""Provider webhooks under /hooks/: Twilio status callbacks and inbound messages, WhatsApp Cloud
API verification, statuses and inbound messages.

Each URL names a channel configuration by its public id. The request must carry the provider's
signature made with that configuration's credentials (Twilio: X-Twilio-Signature, HMAC-SHA1 of
the public URL and the sorted form parameters with the auth token; WhatsApp: X-Hub-Signature-256,
HMAC-SHA256 of the raw body with the app secret); otherwise the answer is 403 and nothing is
stored. Everything is then done in the configuration's workspace only (channels/inbound.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from channels import inbound
from channels.configs import read_secrets
from channels.models import ChannelConfig, ProviderKind
from channels.providers.whatsapp import phone_number_id
from core.api.exceptions import error_body
from core.context import workspace_scope

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Provider status → delivery event kind. Others (queued, accepted, sending...) change nothing.
TWILIO_STATUSES = {"sent": "sent", "delivered": "delivered", "read": "opened", "undelivered": "undeliverable",
                   "failed": "failed", "canceled": "failed"}
WHATSAPP_STATUSES = {"sent": "sent", "delivered": "delivered", "read": "opened", "failed": "failed"}
TWILIO_STOPPED = "21610"


def _error(message: str, status: int, field: str | None = None) -> JsonResponse:
    return JsonResponse(error_body([{"field": field, "message": message}]), status=status)


def _config(public_id: str, provider: str) -> ChannelConfig | None:
    return ChannelConfig.unscoped.select_related("workspace").filter(public_id=public_id, provider=provider).first()


def public_url(request) -> str:
    """The URL the provider called, as configured there: ULAK_PUBLIC_URL + path (+ query)."""
    return settings.ULAK_PUBLIC_URL.rstrip("/") + request.get_full_path()


# --- Twilio ------------------------------------------------------------------------------------------

def twilio_signature(auth_token: str, url: str, params) -> str:
    """Twilio's request signature: the URL followed by each parameter name and value, sorted."""
    payload = url
    for name in sorted(params.keys()):
        for value in sorted(params.getlist(name)):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _twilio_verified(request, config: ChannelConfig) -> bool:
    token = read_secrets(config).get("auth_token") or ""
    given = request.headers.get("X-Twilio-Signature", "")
    if not token or not given:
        return False
    return hmac.compare_digest(twilio_signature(token, public_url(request), request.POST), given)


def _twilio_request(request, public_id: str):
    """(config, None) for a genuine Twilio request to a Twilio configuration, else (None, response)."""
    config = _config(public_id, ProviderKind.TWILIO)
    if config is None:
        return None, _error("Unknown channel configuration.", 404)
    if not _twilio_verified(request, config):
        logger.warning("Twilio webhook with a bad signature", extra={"channel_config": config.pk})
        return None, _error("Invalid X-Twilio-Signature.", 403)
    return config, None


@csrf_exempt
@require_POST
def twilio_status(request, public_id: str):
    config, refused = _twilio_request(request, public_id)
    if refused is not None:
        return refused
    kind = TWILIO_STATUSES.get(request.POST.get("MessageStatus", "").lower())
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    if kind is None or not sid:
        return HttpResponse(status=204)
    code = request.POST.get("ErrorCode", "")
    data = {"provider_status": request.POST["MessageStatus"]}
    if code:
        data["provider_code"] = code
        data["reason"] = f"Twilio error {code}" + (f": {request.POST['ErrorMessage']}"
                                                     if request.POST.get("ErrorMessage") else "")
    with workspace_scope(config.workspace):
        inbound.record_status(config, sid, kind, data=data,
                              stop_reason=data["reason"] if code == TWILIO_STOPPED else None)
    return HttpResponse(status=204)


def _twilio_media(post) -> list[dict]:
    try:
        count = int(post.get("NumMedia") or 0)
    except ValueError:
        count = 0
    return [{"url": post.get(f"MediaUrl{i}", ""), "content_type": post.get(f"MediaContentType{i}", "")}
            for i in range(min(count, 10)) if post.get(f"MediaUrl{i}")]


@csrf_exempt
@require_POST
def twilio_inbound(request, public_id: str):
    config, refused = _twilio_request(request, public_id)
    if refused is not None:
        return refused
    post = request.POST
    sid = post.get("MessageSid") or post.get("SmsSid") or ""
    if not sid or not post.get("From"):
        return _error("This field is required.", 400, field="MessageSid" if not sid else "From")
    if inbound.sender_phone(config.type, post["From"]) is None:
        return _error("Must be an E.164 phone number.", 400, field="From")
    with workspace_scope(config.workspace):
        inbound.receive_message(config, from_address=post["From"], to_address=post.get("To", ""),
                                body=post.get("Body", ""), media=_twilio_media(post), provider_message_id=sid)
    # Replies go through the delivery pipeline, so Twilio is told to send nothing itself.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


# --- WhatsApp Cloud API ------------------------------------------------------------------------------

def _whatsapp_verified(request, secrets: dict) -> bool:
    secret = secrets.get("app_secret") or ""
    given = request.headers.get("X-Hub-Signature-256", "")
    if not secret or not given.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.removeprefix("sha256="))


def _verify_subscription(request, secrets: dict):
    """Meta's subscription check: echo hub.challenge when hub.verify_token is ours."""
    expected = secrets.get("verify_token") or ""
    given = request.GET.get("hub.verify_token", "")
    if request.GET.get("hub.mode") != "subscribe" or not expected or not hmac.compare_digest(expected, given):
        return _error("Verification failed.", 403)
    return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")


def _target(config: ChannelConfig, number_id: str) -> ChannelConfig | None:
    """The configuration of the number the change is about: a Meta app has one webhook URL for all
    its numbers, so it may be another WhatsApp configuration of the same workspace."""
    if not number_id or number_id == phone_number_id(config):
        return config
    for other in ChannelConfig.objects.for_workspace(config.workspace_id).filter(provider=ProviderKind.WHATSAPP_CLOUD):
        if phone_number_id(other) == number_id:
            other.workspace = config.workspace
            return other
    return None


def _at(timestamp) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# Meta's payloads are signed but their shape is still checked: a value of the wrong type is
# skipped (and logged), never a 500, which Meta would retry for days.

def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _id(value) -> str:
    """An id Meta writes as a string (sometimes a number); anything else is no id."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _items(value, where: str, skipped: list[str]) -> list[dict]:
    """The objects of a list that may be absent; a non-list, and non-objects in it, are skipped."""
    if value is None:
        return []
    if not isinstance(value, list):
        skipped.append(where)
        return []
    items = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            items.append(item)
        else:
            skipped.append(f"{where}[{index}]")
    return items


def _message_text(message: dict) -> str:
    kind = message.get("type")
    if kind == "text":
        return _text(_dict(message.get("text")).get("body"))
    if kind == "button":
        return _text(_dict(message.get("button")).get("text"))
    if kind == "interactive":
        interactive = _dict(message.get("interactive"))
        reply = _dict(interactive.get("button_reply")) or _dict(interactive.get("list_reply"))
        return _text(reply.get("title"))
    if kind in ("image", "video", "document"):
        return _text(_dict(message.get(kind)).get("caption"))
    return ""


def _message_media(message: dict) -> list[dict]:
    kind = message.get("type")
    if kind in ("image", "video", "document", "audio", "sticker") and isinstance(message.get(kind), dict):
        media = message[kind]
        return [{"type": kind, "id": _id(media.get("id")), "content_type": _text(media.get("mime_type"))}]
    return []


def _status_data(status: dict) -> dict:
    data = {"provider_status": status["status"]}
    errors = status.get("errors")
    error = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    if error is not None:
        code = _id(error.get("code"))
        data["provider_code"] = error["code"] if code else None
        detail = (_text(_dict(error.get("error_data")).get("details")) or _text(error.get("title"))
                  or _text(error.get("message")))
        data["reason"] = (f"WhatsApp error {code}: {detail}" if code else f"WhatsApp error: {detail}").strip()
    return data


def _whatsapp_status(config: ChannelConfig, status: dict, where: str, skipped: list[str]) -> None:
    message_id, state = _id(status.get("id")), status.get("status")
    if not message_id or not isinstance(state, str):
        skipped.append(where)
        return
    kind = WHATSAPP_STATUSES.get(state)
    if kind is not None:
        inbound.record_status(config, message_id, kind, at=_at(status.get("timestamp")), data=_status_data(status))


def _whatsapp_message(config: ChannelConfig, message: dict, to_address: str, where: str,
                      skipped: list[str]) -> None:
    message_id, sender = _id(message.get("id")), _id(message.get("from"))
    if not message_id or not sender:
        skipped.append(where)
        return
    if inbound.sender_phone(config.type, sender) is None:
        logger.warning("WhatsApp message from a sender that is not a phone number",
                       extra={"channel_config": config.pk})
        return
    inbound.receive_message(config, from_address=sender, to_address=to_address, body=_message_text(message),
                            media=_message_media(message), provider_message_id=message_id)


def _whatsapp_change(config: ChannelConfig, value: dict, where: str, skipped: list[str]) -> None:
    metadata = value.get("metadata")
    metadata = {} if metadata is None else metadata
    raw_number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    number_id = _id(raw_number)
    if not isinstance(metadata, dict) or raw_number not in (None, "") and not number_id:
        skipped.append(f"{where}.metadata")  # which number the change is about cannot be told
        return
    target = _target(config, number_id)
    if target is None:
        logger.info("WhatsApp change for a number of no configuration", extra={"channel_config": config.pk})
        return
    for index, status in enumerate(_items(value.get("statuses"), f"{where}.statuses", skipped)):
        _whatsapp_status(target, status, f"{where}.statuses[{index}]", skipped)
    to_address = _id(metadata.get("display_phone_number"))
    for index, message in enumerate(_items(value.get("messages"), f"{where}.messages", skipped)):
        _whatsapp_message(target, message, to_address, f"{where}.messages[{index}]", skipped)


def _whatsapp_document(config: ChannelConfig, entries: list) -> list[str]:
    """Handle every well-formed change; returns where the malformed parts were."""
    skipped: list[str] = []
    for e, entry in enumerate(_items(entries, "entry", skipped)):
        for c, change in enumerate(_items(entry.get("changes"), f"entry[{e}].changes", skipped)):
            if change.get("field", "messages") != "messages":
                continue  # another subscription (account updates, templates): not ours to handle
            if isinstance(change.get("value"), dict):
                _whatsapp_change(config, change["value"], f"entry[{e}].changes[{c}].value", skipped)
            else:
                skipped.append(f"entry[{e}].changes[{c}].value")
    return skipped


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request, public_id: str):
    config = _config(public_id, ProviderKind.WHATSAPP_CLOUD)
    if config is None:
        return _error("Unknown channel configuration.", 404)
    secrets = read_secrets(config)
    if request.method == "GET":
        return _verify_subscription(request, secrets)
    if not _whatsapp_verified(request, secrets):
        logger.warning("WhatsApp webhook with a bad signature", extra={"channel_config": config.pk})
        return _error("Invalid X-Hub-Signature-256.", 403)
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError):
        return _error("The body is not JSON.", 400)
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        return _error("Must be a list.", 400, field="entry")
    with workspace_scope(config.workspace):
        skipped = _whatsapp_document(config, document["entry"])
    if skipped:
        logger.warning("WhatsApp webhook: malformed parts skipped",
                       extra={"channel_config": config.pk, "skipped": skipped[:20], "skipped_count": len(skipped)})
    return JsonResponse({"ok": True})
