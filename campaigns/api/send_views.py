"""Transactional sends in Customer.io's wire format: `POST /v1/send/{email,sms,push,whatsapp,in_app}`
(and `/v1/send/inbox_message`, which Customer.io's client calls for inbox messages; here it is
the in-app inbox too). `customerio.APIClient(key, url=<Ulak>)` works unchanged.

A request names a transactional message (`transactional_message_id`: its numeric id or its
name) or carries the content inline; inline fields also override the message's own. The person
(`identifiers`: exactly one of id, email, cio_id) is created when missing, by id or email, as
Customer.io does; a person deleted at their request is not re-created (400). Answers
`{"delivery_id", "queued_at"}`. An `Idempotency-Key` header makes retries safe: the same key
returns the first delivery and sends nothing more. Needs the `write` scope.

Email `attachments` ({"<filename>": "<base64 content>"}, at most 2 MB decoded in all) and `bcc`
(one address or several, comma-separated) are kept on the delivery's content as they are sent
(never rendered as templates); a bcc address on the suppression list is dropped when it is sent.

Accepted but ignored: `language` (no translations), `body_amp`, `fake_bcc`,
`disable_css_preprocessing`. Refused with a 400: `queue_draft: true` (drafts are not kept) and
`cc` (one visible recipient per message).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from campaigns import transactional
from campaigns.api.openapi import SEND_REQUESTS
from channels.api.openapi import QueuedDelivery
from channels.api.serializers import clean_recipient, unix
from channels.api.views import MessagingView
from channels.providers.whatsapp import buttons_problem
from channels.models import ChannelType
from campaigns.api.serializers import IdempotencyKey
from core.errors import InvalidInput
from profiles.ingest.operations import (
    clean_bool, clean_email, clean_str, clean_timestamp, person_ref, require_dict,
)

COMMON = ("transactional_message_id", "identifiers", "disable_message_retention", "queue_draft", "message_data",
          "send_at", "language", "send_to_unsubscribed")
FIELDS = {
    ChannelType.EMAIL: (*COMMON, "to", "from", "headers", "reply_to", "cc", "bcc", "subject", "preheader", "body",
                        "body_plain", "plaintext_body", "body_amp", "fake_bcc", "tracked", "attachments",
                        "disable_css_preprocessing"),
    ChannelType.SMS: (*COMMON, "to", "body"),
    ChannelType.WHATSAPP: (*COMMON, "to", "tracked", "body", "template"),
    ChannelType.PUSH: (*COMMON, "to", "title", "message", "image_url", "link", "custom_data", "custom_payload",
                       "custom_device", "sound"),
    ChannelType.IN_APP: (*COMMON, "title", "body", "payload"),
}
MAX_TEXT = 1_000_000
MAX_SCHEDULE = timedelta(days=90)
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")
RESERVED_HEADERS = {"from", "to", "cc", "bcc", "subject", "reply-to", "message-id", "content-type",
                    "content-transfer-encoding", "mime-version"}
IDEMPOTENCY_KEY = IdempotencyKey(150)
MAX_ATTACHMENT_BYTES = 2 * 1024 * 1024  # all attachments together, decoded (Customer.io's limit)
MAX_FILENAME = 255
# Customer.io: at most 15 recipients between `to` and `bcc`.
MAX_BCC = 14


def _text(body: dict, name: str, *, max_length: int = MAX_TEXT) -> str | None:
    return clean_str(body.get(name), name, max_length=max_length, required=False)


def _url(body: dict, name: str) -> str | None:
    value = _text(body, name, max_length=2000)
    if value is not None and "://" not in value:  # https://... or an app's deep link (acme://orders/1)
        raise InvalidInput(name, "must be a URL")
    return value


def _address(body: dict, name: str) -> str | None:
    """An email address, optionally with a display name ("Ada <ada@example.com>")."""
    value = _text(body, name, max_length=255)
    if value is None:
        return None
    if "\n" in value or "\r" in value:
        raise InvalidInput(name, "must be one line")
    clean_email(parseaddr(value)[1] or value, name)
    return value


def _headers(value) -> dict:
    headers = require_dict(value, "headers")
    for name, item in headers.items():
        field = f"headers.{name}"
        if not HEADER_NAME.match(name):
            raise InvalidInput(field, "is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidInput(field, "is set from the message's own fields")
        if not isinstance(item, str) or "\n" in item or "\r" in item or len(item) > 998:
            raise InvalidInput(field, "must be a one-line string of at most 998 characters")
    return headers


def _filename(name: str, field: str) -> str:
    """A plain file name: no path, no control characters (they would break the MIME header)."""
    filename = name.strip()
    if not filename or len(filename) > MAX_FILENAME:
        raise InvalidInput(field, f"the file name must be 1 to {MAX_FILENAME} characters")
    if filename in (".", "..") or any(char in filename for char in "/\\\"") or not filename.isprintable():
        raise InvalidInput(field, "the file name may not hold a path, quotes or control characters")
    return filename


def _attachments(value) -> list[dict]:
    """{"<filename>": "<base64 content>"} → [{"filename", "content_type", "content_b64"}]."""
    attachments = require_dict(value, "attachments")
    cleaned, total = [], 0
    for name, encoded in attachments.items():
        field = f"attachments.{name}"
        filename = _filename(name, field)
        if not isinstance(encoded, str):
            raise InvalidInput(field, "must be the file's content, base64-encoded")
        encoded = "".join(encoded.split())  # line-wrapped base64 (MIME style) is base64 too
        if len(encoded) > (MAX_ATTACHMENT_BYTES // 3 + 1) * 4:
            raise InvalidInput(field, "attachments may total at most 2 MB")
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(field, "is not valid base64") from exc
        if not content:
            raise InvalidInput(field, "is empty")
        total += len(content)
        if total > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(field, "attachments may total at most 2 MB")
        content_type = mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"
        cleaned.append({"filename": filename, "content_type": content_type,
                        "content_b64": base64.b64encode(content).decode("ascii")})
    return cleaned


def _bcc(value) -> list[str]:
    """One address or several, comma-separated (Customer.io's format), or a list of them."""
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        values = value
    else:
        raise InvalidInput("bcc", "must be an email address, or several separated by commas")
    if any("\n" in item or "\r" in item for item in values):
        raise InvalidInput("bcc", "must be one line")
    if any(";" in item for item in values):
        raise InvalidInput("bcc", "separate several addresses with commas")
    addresses: list[str] = []
    for display, address in getaddresses(values):
        if not (display or address):
            continue  # "a@example.com," — an empty item
        address = clean_email(address or display, "bcc")
        if address not in addresses:
            addresses.append(address)
    if len(addresses) > MAX_BCC:
        raise InvalidInput("bcc", f"may name at most {MAX_BCC} addresses")
    return addresses


def _send_at(value) -> datetime | None:
    stamp = clean_timestamp(value, "send_at")
    if stamp is None:
        return None
    moment = datetime.fromtimestamp(stamp, UTC)
    now = datetime.now(UTC)
    if moment > now + MAX_SCHEDULE:
        raise InvalidInput("send_at", "must be at most 90 days ahead")
    return moment if moment > now else None


def _unsupported(body: dict) -> None:
    if body.get("queue_draft") not in (None, False):
        clean_bool(body["queue_draft"], "queue_draft")
        raise InvalidInput("queue_draft", "drafts are not supported; send the message, or omit queue_draft")
    if body.get("cc") not in (None, "", []):
        raise InvalidInput("cc", "is not supported: send one message per recipient, or use bcc")
    for name in ("fake_bcc", "disable_css_preprocessing"):
        if body.get(name) is not None:
            clean_bool(body[name], name)


# --- content of each channel ---------------------------------------------------------------------

def _email_content(body: dict) -> dict:
    plain_field = "body_plain" if body.get("body_plain") is not None else "plaintext_body"
    content = {
        "subject": _text(body, "subject", max_length=998), "body": _text(body, "body"),
        "body_plain": clean_str(body.get(plain_field), plain_field, max_length=MAX_TEXT, required=False),
        "from": _address(body, "from"), "reply_to": _address(body, "reply_to"),
        "preheader": _text(body, "preheader", max_length=255),
    }
    if content["subject"] and ("\n" in content["subject"] or "\r" in content["subject"]):
        raise InvalidInput("subject", "must be one line")
    if body.get("headers") is not None:
        content["headers"] = _headers(body["headers"])
    if body.get("attachments") not in (None, {}):
        content["attachments"] = _attachments(body["attachments"])
    if body.get("bcc") not in (None, "", []):
        content["bcc"] = _bcc(body["bcc"]) or None
    return content


def _push_content(body: dict) -> dict:
    if body.get("custom_payload") not in (None, {}):
        raise InvalidInput("custom_payload", "is not supported; put extra data in custom_data")
    content = {"body": _text(body, "message", max_length=4000), "title": _text(body, "title", max_length=1000),
               "image_url": _url(body, "image_url"), "link": _url(body, "link"),
               "sound": _text(body, "sound", max_length=100)}
    if body.get("custom_data") is not None:
        content["custom_data"] = require_dict(body["custom_data"], "custom_data")
    return content


def _whatsapp_content(body: dict) -> dict:
    content = {"body": _text(body, "body", max_length=4096)}
    if body.get("template") is not None:
        template = require_dict(body["template"], "template")
        unknown = sorted(set(template) - {"name", "language", "components"})
        if unknown:
            raise InvalidInput(f"template.{unknown[0]}", "is not a field of a WhatsApp template")
        cleaned = {"name": clean_str(template.get("name"), "template.name", max_length=512),
                   "language": clean_str(template.get("language") or "en", "template.language", max_length=20)}
        if template.get("components") is not None:
            if not isinstance(template["components"], list):
                raise InvalidInput("template.components", "must be a list")
            cleaned["components"] = template["components"]
        content["template"] = cleaned
    if body.get("buttons") is not None:
        problem = buttons_problem(body["buttons"], templates=True)
        if problem:
            raise InvalidInput("buttons", problem)
        content["buttons"] = body["buttons"]
    return content


def _in_app_content(body: dict) -> dict:
    """`payload` keys are the in-app message's own fields (what the app reads), next to title and body."""
    content = {"body": _text(body, "body"), "title": _text(body, "title", max_length=1000)}
    if body.get("payload") is not None:
        for key, value in require_dict(body["payload"], "payload").items():
            if key in RESERVED_IN_APP_KEYS:
                raise InvalidInput(f"payload.{key}", "is reserved; use the top-level field")
            content[key] = value
    return content


RESERVED_IN_APP_KEYS = {"subject", "preheader", "from", "reply_to", "body", "body_plain", "title"}
CONTENT = {ChannelType.EMAIL: _email_content, ChannelType.SMS: lambda body: {"body": _text(body, "body", max_length=1600)},
           ChannelType.WHATSAPP: _whatsapp_content, ChannelType.PUSH: _push_content,
           ChannelType.IN_APP: _in_app_content}
# Without a transactional message, the content a message cannot go without (any one of them).
REQUIRED_INLINE = {
    ChannelType.EMAIL: (("subject",), ("body",)),
    ChannelType.SMS: (("body",),),
    ChannelType.WHATSAPP: (("body", "template"),),
    ChannelType.PUSH: (("message",),),
    ChannelType.IN_APP: (("body", "title", "payload"),),
}


def _compact(content: dict) -> dict:
    """Only what the request named: inline fields override a transactional message's own."""
    return {key: value for key, value in content.items() if value is not None}


def _message_ref(value) -> int | str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput("transactional_message_id", "must be the message's numeric id or its name")
    if isinstance(value, int) and value < 1:
        raise InvalidInput("transactional_message_id", "must be a positive id")
    return clean_str(value, "transactional_message_id", max_length=150) if isinstance(value, str) else value


def _push_recipient(body: dict) -> str:
    if body.get("custom_device") is not None:
        device = require_dict(body["custom_device"], "custom_device")
        token = clean_str(device.get("token"), "custom_device.token", max_length=512)
        if body.get("to") not in (None, ""):
            raise InvalidInput("to", "name either to or custom_device, not both")
        return token
    return clean_recipient(ChannelType.PUSH, body.get("to"), "to")


def clean_send(channel: str, body, idempotency_key: str) -> transactional.SendRequest:
    body = require_dict(body, None)
    unknown = sorted(set(body) - set(FIELDS[channel]))
    if unknown:
        raise InvalidInput(unknown[0], f"is not a field of a transactional {channel} message")
    _unsupported(body)
    if "identifiers" not in body:
        raise InvalidInput("identifiers", "is required")
    message_ref = _message_ref(body.get("transactional_message_id"))
    if message_ref is None:
        for names in REQUIRED_INLINE[channel]:
            if all(body.get(name) in (None, "", {}) for name in names):
                raise InvalidInput(names[0], "is required without a transactional_message_id")
    request = transactional.SendRequest(
        channel=channel, person_ref=person_ref(body["identifiers"], "identifiers"), message_ref=message_ref,
        content=_compact(CONTENT[channel](body)),
        message_data=require_dict(body["message_data"], "message_data") if body.get("message_data") is not None else {},
        send_at=_send_at(body.get("send_at")), idempotency_key=idempotency_key)
    if channel == ChannelType.PUSH:
        request.to = _push_recipient(body)
    elif channel != ChannelType.IN_APP:
        request.to = clean_recipient(channel, body.get("to"), "to")
    if body.get("disable_message_retention") is not None:
        request.retain_content = not clean_bool(body["disable_message_retention"], "disable_message_retention")
    for name in ("send_to_unsubscribed", "tracked"):
        if body.get(name) is not None:
            setattr(request, name, clean_bool(body[name], name))
    if body.get("language") is not None:
        clean_str(body["language"], "language", max_length=20, required=False)
    return request


clean_idempotency_key = IDEMPOTENCY_KEY.clean


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, pattern=IDEMPOTENCY_KEY.pattern.pattern,
    description="Retries with the same key return the first delivery and send nothing more.")
REPLAYED_HEADER = OpenApiParameter(
    "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, enum=["true"], response=[200],
    description="Present when the Idempotency-Key was seen before: the first delivery, nothing sent.")


def send_schema(channel: str, path: str | None = None):
    """The OpenAPI description of POST /v1/send/<path> (default: the channel)."""
    return extend_schema(
        operation_id=f"send_{path or channel}", request=SEND_REQUESTS[channel],
        responses={200: OpenApiResponse(QueuedDelivery, description="Queued; the channel's worker sends it.")},
        parameters=[IDEMPOTENCY_PARAMETER, REPLAYED_HEADER])


class SendView(MessagingView):
    channel: str = ""

    def post(self, request):
        key = clean_idempotency_key(request.headers.get("Idempotency-Key"))
        send = clean_send(self.channel, request.data, key)
        delivery, created = transactional.send_transactional(workspace=self.workspace, request=send)
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response({"delivery_id": delivery.public_id, "queued_at": unix(delivery.created_at)},
                        status=status.HTTP_200_OK, headers=headers)


class SendEmailView(SendView):
    channel = ChannelType.EMAIL

    @send_schema(ChannelType.EMAIL)
    def post(self, request):
        return super().post(request)


class SendSmsView(SendView):
    channel = ChannelType.SMS

    @send_schema(ChannelType.SMS)
    def post(self, request):
        return super().post(request)


class SendWhatsAppView(SendView):
    channel = ChannelType.WHATSAPP

    @send_schema(ChannelType.WHATSAPP)
    def post(self, request):
        return super().post(request)


class SendPushView(SendView):
    channel = ChannelType.PUSH

    @send_schema(ChannelType.PUSH)
    def post(self, request):
        return super().post(request)


class SendInAppView(SendView):
    channel = ChannelType.IN_APP

    @send_schema(ChannelType.IN_APP)
    def post(self, request):
        return super().post(request)


class SendInboxMessageView(SendInAppView):
    """Customer.io's client calls /v1/send/inbox_message for inbox messages: the in-app inbox here."""

    @send_schema(ChannelType.IN_APP, "inbox_message")
    def post(self, request):
        return super().post(request)
