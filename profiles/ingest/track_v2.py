"""Customer.io Track API v2 operations → internal operations.

A v2 operation is {"type", "action", "identifiers", ...}:
  person  identify, delete, event, page, screen, add_relationships, delete_relationships,
          add_device, delete_device, merge, suppress, unsuppress
  object  identify, delete, add_relationships, delete_relationships
  delivery  event (a metric for a delivery Ulak sent: opened, converted, delivered)
Field names in errors are relative to the operation; `batch()` prefixes them with `batch.<i>`.
"""

import json

from django.conf import settings

from core.errors import InvalidInput
from profiles.ingest.operations import (
    clean_attributes,
    clean_data,
    clean_platform,
    clean_str,
    clean_timestamp,
    event_op,
    identify_op,
    object_ref,
    person_ref,
    relationship_list,
    require_dict,
)
from profiles.ingest.metrics import v2_delivery
from profiles.ingest.track_v1 import relationships

# Attributes of a person identify that are not stored as plain attributes.
RESERVED = {"_update", "_timestamp", "anonymous_id", "email", "phone", "unsubscribed", "id", "created_at"}


def known_person(identifiers, field: str = "identifiers") -> dict:
    """A person named by id, email or cio_id (v2 does not address people by anonymous id)."""
    return person_ref(identifiers, field)


def related_people(value, field: str = "cio_relationships") -> list[dict]:
    """The people side of an object's relationships."""
    return relationship_list(value, field, ref=known_person)


def _non_empty_list(value, field: str = "cio_relationships") -> list:
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, "must be a non-empty list of relationships")
    return value


# --- person ---------------------------------------------------------------------------------------

def _identify(body, now: float) -> dict:
    raw = require_dict(body.get("attributes") or {}, "attributes")
    # The top-level timestamp says when the attributes were true; `_timestamp` is the v1 spelling.
    ts = clean_timestamp(body.get("timestamp"), "timestamp")
    if ts is None:
        ts = clean_timestamp(raw.get("_timestamp"), "attributes._timestamp", default=now)
    op = identify_op(
        person=known_person(body.get("identifiers")), ts=ts, reserved=raw, prefix="attributes",
        attributes=clean_attributes({k: v for k, v in raw.items() if k not in RESERVED}, "attributes"),
    )
    if body.get("cio_relationships") is not None:
        op["relationships"] = relationships(body["cio_relationships"])
    return op


def _event_actor(body) -> tuple[dict | None, str | None]:
    """(person, anonymous_id): an event without identifiers belongs to its `anonymous_id`."""
    anonymous_id = body.get("anonymous_id")
    if body.get("identifiers") is None and anonymous_id not in (None, ""):
        return None, anonymous_id
    person = person_ref(body.get("identifiers"), allow_anonymous=True)
    if "anonymous_id" in person:
        return None, person["anonymous_id"]
    return person, anonymous_id


def _event(kind: str):
    def build(body, now: float) -> dict:
        person, anonymous_id = _event_actor(body)
        return event_op(person=person, anonymous_id=anonymous_id, name=body.get("name"), kind=kind,
                        data=clean_data(body.get("attributes"), "attributes"), timestamp=body.get("timestamp"),
                        dedupe_id=body.get("id"), now=now)

    return build


def _person_action(action: str):
    def build(body, now: float) -> dict:
        return {"op": action, "person": known_person(body.get("identifiers"))}

    return build


def _person_relationships(action: str):
    def build(body, now: float) -> dict:
        objects = relationships(_non_empty_list(body.get("cio_relationships")))["objects"]
        return {"op": action, "person": known_person(body.get("identifiers")), "objects": objects}

    return build


def _add_device(body, now: float) -> dict:
    device = require_dict(body.get("device"), "device")
    return {
        "op": "add_device",
        "person": known_person(body.get("identifiers")),
        "device": {
            "token": clean_str(device.get("token"), "device.token", max_length=512),
            "platform": clean_platform(device.get("platform"), "device.platform"),
            "last_used": clean_timestamp(device.get("last_used"), "device.last_used"),
            "attributes": clean_attributes(device.get("attributes"), "device.attributes"),
        },
    }


def _delete_device(body, now: float) -> dict:
    device = require_dict(body.get("device"), "device")
    return {"op": "delete_device", "person": known_person(body.get("identifiers")),
            "token": clean_str(device.get("token"), "device.token", max_length=512)}


def _merge(body, now: float) -> dict:
    return {"op": "merge", "primary": known_person(body.get("primary"), "primary"),
            "secondary": known_person(body.get("secondary"), "secondary")}


# --- object ---------------------------------------------------------------------------------------

def _object_identify(body, now: float) -> dict:
    op = {
        "op": "object_identify",
        "object": object_ref(body.get("identifiers")),
        "attributes": clean_attributes(body.get("attributes")),
        "ts": clean_timestamp(body.get("timestamp"), "timestamp", default=now),
    }
    if body.get("cio_relationships") is not None:
        op["people"] = related_people(body["cio_relationships"])
    return op


def _object_delete(body, now: float) -> dict:
    return {"op": "object_delete", "object": object_ref(body.get("identifiers"))}


def _object_relationships(action: str):
    def build(body, now: float) -> dict:
        return {"op": action, "object": object_ref(body.get("identifiers")),
                "people": related_people(_non_empty_list(body.get("cio_relationships")))}

    return build


ACTIONS = {
    "person": {
        "identify": _identify,
        "delete": _person_action("delete"),
        "event": _event("event"),
        "page": _event("page"),
        "screen": _event("screen"),
        "add_relationships": _person_relationships("add_relationships"),
        "delete_relationships": _person_relationships("delete_relationships"),
        "add_device": _add_device,
        "delete_device": _delete_device,
        "merge": _merge,
        "suppress": _person_action("suppress"),
        "unsuppress": _person_action("unsuppress"),
    },
    "object": {
        "identify": _object_identify,
        "delete": _object_delete,
        "add_relationships": _object_relationships("add_relationships"),
        "delete_relationships": _object_relationships("delete_relationships"),
    },
}


def operation(body, now: float) -> dict:
    """One v2 operation (the /entity body) → one internal operation, or InvalidInput."""
    body = require_dict(body, None)
    kind = body.get("type")
    if kind == "delivery":
        return v2_delivery(body, now)
    actions = ACTIONS.get(kind) if isinstance(kind, str) else None
    if actions is None:
        raise InvalidInput("type", "must be person, object or delivery")
    action = body.get("action")
    build = actions.get(action) if isinstance(action, str) else None
    if build is None:
        raise InvalidInput("action", f"must be one of {', '.join(actions)} for type {kind}")
    return build(body, now)


def _error(index: int, reason: str, exc: InvalidInput) -> dict:
    return {"batch_index": index, "reason": reason, "field": exc.prefixed(f"batch.{index}").field,
            "message": exc.message}


def _serialized_size(item) -> int:
    return len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode())


def batch(body, now: float) -> tuple[list[dict], list[dict]]:
    """The valid operations of a /batch body in order, and one error per invalid operation.

    The body itself being wrong (not an object, no `batch` list, an empty list) raises InvalidInput.
    An operation over the per-message limit is invalid with reason "too_large".
    """
    body = require_dict(body, None)
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidInput("batch", "must be a list of operations")
    if not items:
        raise InvalidInput("batch", "must not be empty")
    limit = settings.ULAK_MAX_MESSAGE_BYTES
    operations, errors = [], []
    for index, item in enumerate(items):
        if _serialized_size(item) > limit:
            errors.append(_error(index, "too_large", InvalidInput(None, f"operation exceeds {limit // 1024} KB")))
            continue
        try:
            operations.append(operation(item, now))
        except InvalidInput as exc:
            errors.append(_error(index, "invalid", exc))
    return operations, errors
