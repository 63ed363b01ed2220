"""The one internal shape of an ingest operation, and the checks every surface shares.

An operation is a JSON-able dict with an "op" key:
  identify        person, attributes, ts, update_only, anonymous_id?, relationships?
  event           person?, anonymous_id?, name, type, data, timestamp, dedupe_id?
  add_device      person, device {token, platform, last_used?, attributes}
  delete_device   person, token
  suppress | unsuppress | delete      person
  merge           primary, secondary
  alias           person, previous_id
  object_identify object {type_id, object_id}, attributes, ts, people? [{person, attributes}]
  object_delete   object
  add_relationships | delete_relationships
                  person + objects [{object, attributes}]  or  object + people [{person, attributes}]
A person reference has exactly one of: id, email, cio_id, anonymous_id.
Timestamps are Unix seconds (float).
"""

import json
import math
import re
from datetime import datetime

from core.errors import InvalidInput

MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME = 255
MAX_ID_LENGTH = 150
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
PLATFORMS = ("ios", "android", "web")
PERSON_KEYS = ("id", "email", "cio_id", "anonymous_id")


def require_dict(value, field: str | None) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object")
    return value


def clean_str(value, field: str, *, max_length: int = MAX_ID_LENGTH, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(field, "must be a string")
    value = str(value)
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    return value


def clean_email(value, field: str = "email") -> str | None:
    value = clean_str(value, field, max_length=254, required=False)
    if value is None:
        return None
    value = value.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value:
        raise InvalidInput(field, "is not a valid email address")
    return value


def clean_phone(value, field: str = "phone") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not E164.match(value.replace(" ", "")):
        raise InvalidInput(field, "must be an E.164 phone number, e.g. +905551234567")
    return value.replace(" ", "")


def clean_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise InvalidInput(field, "must be true or false")


LAST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last instant Python and PostgreSQL share


def clean_timestamp(value, field: str, *, default: float | None = None) -> float | None:
    """Unix seconds (int/float, milliseconds tolerated) or an ISO 8601 string."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a Unix timestamp or an ISO 8601 date")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise InvalidInput(field, "must be a positive Unix timestamp")
        seconds = float(value) / 1000 if value > 1e11 else float(value)
        if seconds > LAST_TIMESTAMP:
            raise InvalidInput(field, "must be a Unix timestamp before the year 10000")
        return seconds
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return clean_timestamp(int(text), field)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(field, "must be a Unix timestamp or an ISO 8601 date") from exc
        if parsed.tzinfo is None:
            raise InvalidInput(field, "must include a time zone")
        return parsed.timestamp()
    raise InvalidInput(field, "must be a Unix timestamp or an ISO 8601 date")


def clean_attributes(value, field: str = "attributes") -> dict:
    attributes = require_dict(value if value is not None else {}, field)
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(field, f"at most {MAX_ATTRIBUTES} attributes are allowed")
    for name, item in attributes.items():
        if not name:
            raise InvalidInput(field, "attribute names must not be empty")
        if len(name.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
            raise InvalidInput(f"{field}.{name[:40]}", f"attribute names are limited to {MAX_ATTRIBUTE_NAME_BYTES} bytes")
        size = len(json.dumps(item, ensure_ascii=False).encode()) if not isinstance(item, str) else len(item.encode())
        if size > MAX_ATTRIBUTE_VALUE_BYTES:
            raise InvalidInput(f"{field}.{name}", f"attribute values are limited to {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return attributes


def clean_data(value, field: str = "data") -> dict:
    if value is None:
        return {}
    return require_dict(value, field)


def person_ref(identifiers, field: str = "identifiers", *, allow_anonymous: bool = False) -> dict:
    identifiers = require_dict(identifiers, field)
    keys = PERSON_KEYS if allow_anonymous else PERSON_KEYS[:3]
    present = [k for k in PERSON_KEYS if identifiers.get(k) not in (None, "")]
    if len(present) != 1 or present[0] not in keys:
        raise InvalidInput(field, f"must hold exactly one of {', '.join(keys)}")
    key = present[0]
    if key == "email":
        return {"email": clean_email(identifiers["email"], f"{field}.email")}
    return {key: clean_str(identifiers[key], f"{field}.{key}", max_length=200)}


def path_person(identifier: str) -> dict:
    """A person from a Track v1 URL: `cio_<cio_id>` names Ulak's id, anything else is the `id`."""
    if identifier.startswith("cio_") and len(identifier) > 4:
        return {"cio_id": identifier[4:]}
    return {"id": clean_str(identifier, "identifier")}


def object_ref(identifiers, field: str = "identifiers") -> dict:
    identifiers = require_dict(identifiers, field)
    return {
        "type_id": clean_str(identifiers.get("object_type_id"), f"{field}.object_type_id", max_length=64),
        "object_id": clean_str(identifiers.get("object_id"), f"{field}.object_id"),
    }


def clean_platform(value, field: str) -> str:
    if value not in PLATFORMS:
        raise InvalidInput(field, f"must be one of {', '.join(PLATFORMS)}")
    return value


def event_op(*, person, anonymous_id, name, kind, data, timestamp, dedupe_id, now: float) -> dict:
    op = {
        "op": "event",
        "name": clean_str(name, "name", max_length=MAX_EVENT_NAME),
        "type": kind,
        "data": clean_data(data),
        "timestamp": clean_timestamp(timestamp, "timestamp", default=now),
    }
    if person:
        op["person"] = person
    if anonymous_id not in (None, ""):
        op["anonymous_id"] = clean_str(anonymous_id, "anonymous_id", max_length=200)
    if dedupe_id not in (None, ""):
        op["dedupe_id"] = clean_str(dedupe_id, "id", max_length=200)
    return op


def identify_op(*, person: dict, ts: float, attributes: dict, reserved: dict, prefix: str | None = None,
                created_at_keys: tuple[str, ...] = ("created_at",)) -> dict:
    """An identify operation from a surface's attributes and its reserved fields.

    `reserved` holds whichever of _update, email, phone, unsubscribed, created_at (or the names in
    `created_at_keys`), id and anonymous_id the surface accepts; `prefix` names where they sat.
    """
    def name(field: str) -> str:
        return f"{prefix}.{field}" if prefix else field

    op = {"op": "identify", "person": person, "ts": ts, "attributes": attributes}
    if "_update" in reserved:
        op["update_only"] = clean_bool(reserved["_update"], name("_update"))
    if "email" in reserved:
        op["email"] = clean_email(reserved["email"], name("email"))
    if "phone" in reserved:
        op["phone"] = clean_phone(reserved["phone"], name("phone"))
    if "unsubscribed" in reserved:
        op["unsubscribed"] = clean_bool(reserved["unsubscribed"], name("unsubscribed"))
    for key in created_at_keys:
        if reserved.get(key) not in (None, ""):
            attributes["created_at"] = int(clean_timestamp(reserved[key], name(key)))
    if reserved.get("id") not in (None, "") and "id" not in person:
        op["set_id"] = clean_str(reserved["id"], name("id"))
    if reserved.get("anonymous_id") not in (None, ""):
        op["anonymous_id"] = clean_str(reserved["anonymous_id"], name("anonymous_id"), max_length=200)
    return op


def relationship_list(value, field: str, ref=None) -> list[dict]:
    """Customer.io `cio_relationships` items → [{"object" (or "person"), "attributes"}].

    `ref` reads each item's identifiers: `object_ref` (the default) or `person_ref`.
    """
    if not isinstance(value, list):
        raise InvalidInput(field, "must be a list of relationships")
    ref, key = (ref, "person") if ref is not None else (object_ref, "object")
    items = []
    for index, item in enumerate(value):
        item = require_dict(item, f"{field}.{index}")
        items.append({
            key: ref(item.get("identifiers"), f"{field}.{index}.identifiers"),
            "attributes": clean_attributes(item.get("relationship_attributes"),
                                           f"{field}.{index}.relationship_attributes"),
        })
    return items
