"""Customer.io Track API v1 requests → operations."""

from core.errors import InvalidInput
from profiles.ingest.operations import (
    clean_attributes,
    clean_platform,
    clean_str,
    clean_timestamp,
    event_op,
    identify_op,
    path_person,
    person_ref,
    relationship_list,
    require_dict,
)

RESERVED = {"_update", "_timestamp", "anonymous_id", "cio_relationships", "email", "phone", "unsubscribed", "id",
            "created_at"}
EVENT_TYPES = ("event", "page", "screen")


def relationships(value, field: str = "cio_relationships") -> dict:
    """Both Customer.io forms: a list of relationships, or {"action", "relationships"}."""
    action = "add"
    if isinstance(value, dict):
        raw_action = value.get("action", "add_relationships")
        if raw_action not in ("add_relationships", "delete_relationships"):
            raise InvalidInput(f"{field}.action", "must be add_relationships or delete_relationships")
        action = "delete" if raw_action == "delete_relationships" else "add"
        value = value.get("relationships")
        field = f"{field}.relationships"
    return {"action": action, "objects": relationship_list(value, field)}


def identify(identifier: str, body, now: float) -> dict:
    body = require_dict(body, None)
    op = identify_op(
        person=path_person(identifier),
        ts=clean_timestamp(body.get("_timestamp"), "_timestamp", default=now),
        attributes=clean_attributes({k: v for k, v in body.items() if k not in RESERVED}, "attributes"),
        reserved=body,
    )
    if body.get("cio_relationships") is not None:
        op["relationships"] = relationships(body["cio_relationships"])
    return op


def _event_type(body) -> str:
    kind = body.get("type") or "event"
    if kind not in EVENT_TYPES:
        raise InvalidInput("type", "must be event, page or screen")
    return kind


def customer_event(identifier: str, body, now: float) -> dict:
    body = require_dict(body, None)
    return event_op(person=path_person(identifier), anonymous_id=None, name=body.get("name"),
                    kind=_event_type(body), data=body.get("data"), timestamp=body.get("timestamp"),
                    dedupe_id=body.get("id"), now=now)


def anonymous_event(body, now: float) -> dict:
    body = require_dict(body, None)
    return event_op(person=None, anonymous_id=body.get("anonymous_id"), name=body.get("name"),
                    kind=_event_type(body), data=body.get("data"), timestamp=body.get("timestamp"),
                    dedupe_id=body.get("id"), now=now)


def add_device(identifier: str, body) -> dict:
    body = require_dict(body, None)
    device = require_dict(body.get("device"), "device")
    token = clean_str(device.get("id") or device.get("token"), "device.id", max_length=512)
    known = {"id", "token", "platform", "last_used", "attributes"}
    attributes = {k: v for k, v in device.items() if k not in known}
    attributes.update(require_dict(device.get("attributes") or {}, "device.attributes"))
    return {
        "op": "add_device",
        "person": path_person(identifier),
        "device": {
            "token": token,
            "platform": clean_platform(device.get("platform"), "device.platform"),
            "last_used": clean_timestamp(device.get("last_used"), "device.last_used"),
            "attributes": clean_attributes(attributes, "device.attributes"),
        },
    }


def delete_device(identifier: str, token: str) -> dict:
    return {"op": "delete_device", "person": path_person(identifier),
            "token": clean_str(token, "device_id", max_length=512)}


def person_action(identifier: str, action: str) -> dict:
    return {"op": action, "person": path_person(identifier)}


def merge(body) -> dict:
    body = require_dict(body, None)
    return {"op": "merge", "primary": person_ref(body.get("primary"), "primary"),
            "secondary": person_ref(body.get("secondary"), "secondary")}
