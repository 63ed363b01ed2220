"""App API shapes for snippets, layouts and transactional messages, and the cleaning of input.

Output is built by the `*_json` functions (times are Unix seconds, as Customer.io answers them).
Input cleaning raises InvalidInput naming the offending field; the API's `from` is the model's
`from_address`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from campaigns.models import TransactionalMessage
from channels.content.models import Layout
from channels.models import ChannelConfig, ChannelType, SubscriptionTopic
from core.errors import InvalidInput

READ_ONLY = {"id", "version", "created_at", "updated_at"}
TM_STRINGS = {"name": "name", "description": "description", "subject": "subject", "body": "body",
              "body_mjml": "body_mjml", "body_plain": "body_plain", "from": "from_address", "reply_to": "reply_to",
              "preheader": "preheader"}
TM_BOOLEANS = ("send_to_unsubscribed", "tracked")
TM_RELATIONS = ("channel_config", "topic", "layout")
API_FIELD = {"from_address": "from"}
INLINE_FIELDS = ("subject", "body", "body_plain", "from", "reply_to", "preheader")
RELATED = {"channel_config": (ChannelConfig, "channel configuration"), "topic": (SubscriptionTopic, "subscription topic"),
           "layout": (Layout, "layout")}


def unix(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# --- output ----------------------------------------------------------------------------------------

def snippet_json(snippet) -> dict:
    return {"name": snippet.name, "value": snippet.value, "version": snippet.version,
            "created_at": unix(snippet.created_at), "updated_at": unix(snippet.updated_at)}


def layout_json(layout) -> dict:
    return {"id": layout.pk, "name": layout.name, "body": layout.body, "version": layout.version,
            "created_at": unix(layout.created_at), "updated_at": unix(layout.updated_at)}


def transactional_json(message: TransactionalMessage) -> dict:
    """The message with its content's fields, as one object (Customer.io's shape)."""
    topic = {"id": message.topic.pk, "key": message.topic.key} if message.topic_id else None
    content = message.content
    return {
        "id": message.pk, "name": message.name, "description": message.description, "channel": message.channel,
        "channel_config": message.channel_config_id, "topic": topic, "layout": content.layout_id,
        "subject": content.subject, "body": content.body, "body_mjml": content.body_mjml,
        "body_plain": content.body_plain, "from": content.from_address, "reply_to": content.reply_to, "preheader": content.preheader,
        "payload": content.payload, "send_to_unsubscribed": message.send_to_unsubscribed,
        "tracked": message.tracked, "version": message.version,
        "created_at": unix(message.created_at), "updated_at": unix(message.updated_at),
    }


def rendered_json(rendered) -> dict:
    return {"subject": rendered.subject, "body": rendered.body, "body_plain": rendered.body_plain,
            "from": rendered.sender, "reply_to": rendered.reply_to, "headers": rendered.headers,
            "payload": rendered.payload}


def api_field(name: str | None, prefix: str | None = None) -> str | None:
    if name is None:
        return prefix
    head, dot, rest = name.partition(".")
    name = API_FIELD.get(head, head) + dot + rest
    return f"{prefix}.{name}" if prefix else name


# --- input -----------------------------------------------------------------------------------------

def unwrap(body, envelope: str) -> dict:
    """The object itself, or the one inside `{envelope: {...}}`."""
    if not isinstance(body, Mapping):
        raise InvalidInput(None, "the body must be a JSON object")
    if set(body) == {envelope} and isinstance(body[envelope], Mapping):
        return dict(body[envelope])
    return dict(body)


def _string(data: Mapping, key: str) -> str:
    value = data[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(key, "must be a string")
    return value


def _relation(workspace, key: str, value):
    """A channel configuration, topic or layout of the workspace by id (a topic also by key)."""
    if value is None or value == "":
        return None
    if key == "topic":
        if isinstance(value, Mapping):
            value = value.get("id", value.get("key"))
        if isinstance(value, str) and not value.isdigit():
            topic = SubscriptionTopic.objects.filter(workspace=workspace, key=value).first()
            if topic is None:
                raise InvalidInput(key, "no subscription topic of this workspace has this key")
            return topic
    elif isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise InvalidInput(key, "must be an id")
    model, label = RELATED[key]
    row = model.objects.filter(workspace=workspace, pk=int(value)).first()
    if row is None:
        raise InvalidInput(key, f"no {label} of this workspace has this id")
    return row


def clean_transactional(workspace, body, *, partial: bool) -> dict:
    """API input → keyword arguments of the transactional message services."""
    data = unwrap(body, "message")
    fields = {}
    for key, value in data.items():
        if key in READ_ONLY:
            continue
        if key in TM_STRINGS:
            fields[TM_STRINGS[key]] = _string(data, key)
        elif key == "channel":
            if value not in TransactionalMessage.Channel.values:
                raise InvalidInput(key, f"must be one of {', '.join(TransactionalMessage.Channel.values)}")
            fields[key] = value
        elif key in TM_BOOLEANS:
            if not isinstance(value, bool):
                raise InvalidInput(key, "must be true or false")
            fields[key] = value
        elif key == "payload":
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise InvalidInput(key, "must be an object")
            fields[key] = dict(value)
        elif key in TM_RELATIONS:
            fields[key] = _relation(workspace, key, value)
        else:
            raise InvalidInput(key, "is not a field of a transactional message")
    if not partial:
        for required in ("name", "channel"):
            if required not in fields:
                raise InvalidInput(required, "is required")
    return fields


def clean_layout(body, *, partial: bool) -> dict:
    data = unwrap(body, "layout")
    fields = {}
    for key in data:
        if key in READ_ONLY:
            continue
        if key not in ("name", "body"):
            raise InvalidInput(key, "is not a field of a layout")
        fields[key] = _string(data, key)
    if not partial:
        for required in ("name", "body"):
            if required not in fields:
                raise InvalidInput(required, "is required")
    return fields


def clean_snippet(body) -> dict:
    data = unwrap(body, "snippet")
    for key in data:
        if key not in ("name", "value") and key not in READ_ONLY:
            raise InvalidInput(key, "is not a field of a snippet")
    for required in ("name", "value"):
        if required not in data:
            raise InvalidInput(required, "is required")
    return {"name": _string(data, "name"), "value": _string(data, "value")}


def clean_object(data: Mapping, key: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(key, "must be an object")
    return dict(value)


def clean_person_ref(data: Mapping) -> tuple[str, str] | None:
    """(id_type, value) from `customer_id` or `identifiers`; None when neither is given."""
    if data.get("customer_id") not in (None, ""):
        value = data["customer_id"]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidInput("customer_id", "must be a string or number")
        return "id", str(value)
    identifiers = data.get("identifiers")
    if identifiers is None:
        return None
    if not isinstance(identifiers, Mapping) or len(identifiers) != 1:
        raise InvalidInput("identifiers", "must hold exactly one of id, email or cio_id")
    (id_type, value), = identifiers.items()
    if id_type not in ("id", "email", "cio_id"):
        raise InvalidInput("identifiers", "must hold exactly one of id, email or cio_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise InvalidInput(f"identifiers.{id_type}", "must be a non-empty string or number")
    return id_type, str(value)


def clean_inline_content(workspace, data: Mapping) -> dict:
    """The inline template of POST /v1/templates/preview: channel, fields, layout and payload."""
    channel = data.get("channel") or ChannelType.EMAIL
    if channel not in ChannelType.values:
        raise InvalidInput("channel", f"must be one of {', '.join(ChannelType.values)}")
    content = {key: _string(data, key) for key in INLINE_FIELDS if key in data}
    payload = clean_object(data, "payload")
    overlap = set(payload) & set(INLINE_FIELDS)
    if overlap:
        raise InvalidInput(f"payload.{sorted(overlap)[0]}", "belongs at the top level of the request")
    layout = _relation(workspace, "layout", data.get("layout"))
    if layout is not None and channel != ChannelType.EMAIL:
        raise InvalidInput("layout", "only email messages have a layout")
    return {"channel": channel, "content": {**content, **payload}, "layout": layout}


class IdempotencyKey:
    """The `Idempotency-Key` header of an endpoint: 1 to `max_length` printable ASCII characters
    without spaces (`pattern` for its OpenAPI parameter); `clean` answers a 400 naming the header."""

    def __init__(self, max_length: int):
        self.max_length = max_length
        self.pattern = re.compile(rf"^[\x21-\x7e]{{1,{max_length}}}$")

    def clean(self, value: str | None) -> str:
        if value is None:
            return ""
        if not self.pattern.match(value):
            raise InvalidInput("Idempotency-Key",
                               f"must be 1 to {self.max_length} printable ASCII characters without spaces")
        return value
