"""Query-side input of the App API: Customer.io's people filter language, paging cursors, limits.

Everything here raises `InvalidInput(field, message)` naming the offending path; the views turn
it into a 400.
"""

import base64
import binascii
import json
from datetime import datetime

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from core.errors import InvalidInput
from profiles.ingest.operations import clean_bool

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_FILTER_DEPTH = 10
MAX_FILTER_NODES = 100
OPERATORS = ("eq", "exists")
ID_TYPES = {"id": "external_id", "email": "email", "cio_id": "cio_id"}
# Filter fields that name a column rather than a key of `attributes`.
COLUMN_FIELDS = {"id": "external_id", "cio_id": "cio_id", "email": "email", "phone": "phone",
                 "unsubscribed": "unsubscribed"}


# --- limits and cursors ---------------------------------------------------------------------------

def clean_limit(value, field: str = "limit") -> int:
    """Default 50; above 1000 is clamped to 1000, as Customer.io does."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a positive integer")
    try:
        limit = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "must be a positive integer") from exc
    if limit < 1:
        raise InvalidInput(field, "must be a positive integer")
    return min(limit, MAX_LIMIT)


def encode_cursor(*values) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value, field: str = "start", *, with_timestamp: bool = False):
    """None for the first page; a pk, or (timestamp, pk) when `with_timestamp`."""
    if value in (None, ""):
        return None
    try:
        text = str(value)
        decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if with_timestamp:
            stamp, pk = decoded
            moment = datetime.fromisoformat(stamp)
            if moment.tzinfo is None or not isinstance(pk, int):
                raise ValueError
            return moment, pk
        (pk,) = decoded
        if not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError
        return pk
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(field, "is not a cursor this API returned") from exc


def next_cursor(rows: list, limit: int, key) -> tuple[list, str]:
    """`rows` was fetched with limit + 1: trim it and name the cursor of the next page, if any."""
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))


def clean_id_type(value) -> str:
    value = value or "id"
    if value not in ID_TYPES:
        raise InvalidInput("id_type", f"must be one of {', '.join(ID_TYPES)}")
    return value


# --- people filters -------------------------------------------------------------------------------

def compile_people_filter(node, path: str = "filter") -> Q:
    """Customer.io's filter subset → one Q: and / or / not / attribute (eq, exists)."""
    return _Compiler().node(node, path, depth=0)


class _Compiler:
    def __init__(self):
        self.nodes = 0

    def node(self, node, path: str, depth: int) -> Q:
        self.nodes += 1
        if depth > MAX_FILTER_DEPTH or self.nodes > MAX_FILTER_NODES:
            raise InvalidInput(path, f"filters are limited to {MAX_FILTER_DEPTH} levels and {MAX_FILTER_NODES} nodes")
        if not isinstance(node, dict) or len(node) != 1:
            raise InvalidInput(path, "must be an object with exactly one of and, or, not, attribute")
        kind, body = next(iter(node.items()))
        path = f"{path}.{kind}"
        if kind in ("and", "or"):
            return self.combine(kind, body, path, depth)
        if kind == "not":
            return ~self.node(body, path, depth + 1)
        if kind == "attribute":
            return attribute_condition(body, path)
        if kind == "segment":
            raise InvalidInput(path, "segment filters are not supported; use attribute filters")
        raise InvalidInput(path, "must be one of and, or, not, attribute")

    def combine(self, kind: str, items, path: str, depth: int) -> Q:
        if not isinstance(items, list) or not items:
            raise InvalidInput(path, "must be a non-empty list of filters")
        conditions = [self.node(item, f"{path}.{index}", depth + 1) for index, item in enumerate(items)]
        combined = conditions[0]
        for condition in conditions[1:]:
            combined = combined & condition if kind == "and" else combined | condition
        return combined


def attribute_condition(body, path: str) -> Q:
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object with field, operator and value")
    name = body.get("field")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{path}.field", "must be a non-empty string")
    operator = body.get("operator")
    if operator not in OPERATORS:
        raise InvalidInput(f"{path}.operator", f"must be one of {', '.join(OPERATORS)}")
    if name in COLUMN_FIELDS:
        return _column_condition(COLUMN_FIELDS[name], operator, body.get("value"), f"{path}.value")
    if operator == "exists":
        return Q(attributes__has_key=name)
    text = _comparable_text(body.get("value"), f"{path}.value")
    # Compared as text, as Customer.io does ("5" matches 5). The has_key term makes `not` keep
    # people who lack the attribute (NOT of a NULL comparison would drop them).
    return Q(attributes__has_key=name) & Q(Exact(KeyTextTransform(name, "attributes"), text))


def _column_condition(column: str, operator: str, value, path: str) -> Q:
    if operator == "exists":
        # A boolean column is always set; "exists" means what a set Customer.io flag means: true.
        return Q(unsubscribed=True) if column == "unsubscribed" else Q(**{f"{column}__isnull": False})
    if column == "unsubscribed":
        return Q(unsubscribed=clean_bool(value, path))
    text = _comparable_text(value, path)
    return Q(**{column: text.strip().lower() if column == "email" else text})


def _comparable_text(value, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    raise InvalidInput(path, "must be a string, number or boolean")
