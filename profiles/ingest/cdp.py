"""Segment-style CDP messages (identify, track, page, screen, group, alias) → operations.

A batch is all or nothing: every message is validated before anything is staged, and one bad
message rejects the batch naming `batch.N.<field>`, so the client's retry cannot double-store.
`context` and `integrations` are accepted and not stored.
"""

import json

from django.conf import settings

from core.errors import InvalidInput
from profiles.ingest.operations import (
    MAX_EVENT_NAME,
    MAX_ID_LENGTH,
    clean_attributes,
    clean_data,
    clean_str,
    clean_timestamp,
    event_op,
    identify_op,
    require_dict,
)

# Traits that are columns or identifiers rather than attributes.
RESERVED_TRAITS = {"email", "phone", "unsubscribed", "created_at", "createdAt", "id"}


def batch(body, now: float) -> list[dict]:
    body = require_dict(body, None)
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise InvalidInput("batch", "must be a list of messages")
    operations = []
    for index, message in enumerate(messages):
        try:
            operations.append(to_operation(message, now))
        except InvalidInput as exc:
            raise exc.prefixed(f"batch.{index}") from None
    return operations


def check_serialized(message) -> None:
    """32 KB per message (the parser has already refused NaN/Infinity)."""
    limit = settings.ULAK_MAX_MESSAGE_BYTES
    size = len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise InvalidInput(None, f"message exceeds {limit // 1024} KB", status=413)


def to_operation(message, now: float, kind: str | None = None) -> dict:
    """One message; `kind` comes from the URL of a single-message endpoint, else from `type`."""
    message = require_dict(message, None)
    check_serialized(message)
    kind = kind or message.get("type")
    if not isinstance(kind, str) or kind not in MAPPERS:
        raise InvalidInput("type", f"must be one of {', '.join(MAPPERS)}")
    return MAPPERS[kind](message, now)


# --- common fields --------------------------------------------------------------------------------

def user_id(message) -> str | None:
    return clean_str(message.get("userId"), "userId", max_length=MAX_ID_LENGTH, required=False)


def anonymous_id(message) -> str | None:
    return clean_str(message.get("anonymousId"), "anonymousId", max_length=200, required=False)


def someone(message) -> tuple[str | None, str | None]:
    ids = user_id(message), anonymous_id(message)
    if ids == (None, None):
        raise InvalidInput("userId", "userId or anonymousId is required")
    return ids


def user_ref(uid: str | None, aid: str | None) -> dict:
    return {"id": uid} if uid else {"anonymous_id": aid}


def timestamp(message, now: float) -> float:
    field = "timestamp" if message.get("timestamp") not in (None, "") else "originalTimestamp"
    return clean_timestamp(message.get(field), field, default=now)


def traits(message) -> dict:
    return dict(require_dict(message.get("traits") or {}, "traits"))


def properties(message) -> dict:
    return dict(clean_data(message.get("properties"), "properties"))


def message_id(message) -> str | None:
    return clean_str(message.get("messageId"), "messageId", max_length=200, required=False)


# --- one mapper per type ------------------------------------------------------------------------

def identify(message, now: float) -> dict:
    uid, aid = someone(message)
    values = traits(message)
    reserved = {k: values[k] for k in ("email", "phone", "unsubscribed", "created_at", "createdAt") if k in values}
    op = identify_op(
        person=user_ref(uid, aid), ts=timestamp(message, now), reserved=reserved, prefix="traits",
        created_at_keys=("created_at", "createdAt"),
        attributes=clean_attributes({k: v for k, v in values.items() if k not in RESERVED_TRAITS}, "traits"),
    )
    if uid and aid:
        op["anonymous_id"] = aid
    return op


def _event(message, now: float, *, kind: str, name: str, data: dict) -> dict:
    uid, aid = someone(message)
    return event_op(person={"id": uid} if uid else None, anonymous_id=aid, name=name, kind=kind, data=data,
                    timestamp=timestamp(message, now), dedupe_id=message_id(message), now=now)


def track(message, now: float) -> dict:
    name = clean_str(message.get("event"), "event", max_length=MAX_EVENT_NAME)
    return _event(message, now, kind="event", name=name, data=properties(message))


def _with_page_fields(message, data: dict) -> dict:
    for key in ("name", "category"):
        if message.get(key) not in (None, ""):
            data[key] = clean_str(message[key], key, max_length=MAX_EVENT_NAME)
    return data


def page(message, now: float) -> dict:
    data = _with_page_fields(message, properties(message))
    url = clean_str(data.get("url"), "properties.url", max_length=8192, required=False)
    # A page event is named by its URL, cut to the column's length rather than losing the batch.
    name = (url or data.get("name") or "page")[:MAX_EVENT_NAME]
    return _event(message, now, kind="page", name=name, data=data)


def screen(message, now: float) -> dict:
    name = clean_str(message.get("name"), "name", max_length=MAX_EVENT_NAME)
    return _event(message, now, kind="screen", name=name, data=_with_page_fields(message, properties(message)))


def group(message, now: float) -> dict:
    uid, aid = someone(message)
    values = traits(message)
    type_id = clean_str(values.pop("object_type_id", None), "traits.object_type_id", max_length=64, required=False)
    return {
        "op": "object_identify",
        "object": {"type_id": type_id or "1", "object_id": clean_str(message.get("groupId"), "groupId")},
        "attributes": clean_attributes(values, "traits"),
        "ts": timestamp(message, now),
        "people": [{"person": user_ref(uid, aid), "attributes": {}}],
    }


def alias(message, now: float) -> dict:
    return {
        "op": "alias",
        "person": {"id": clean_str(message.get("userId"), "userId")},
        "previous_id": clean_str(message.get("previousId"), "previousId", max_length=200),
    }


MAPPERS = {"identify": identify, "track": track, "page": page, "screen": screen, "group": group, "alias": alias}
