"""A source row → the identify operation a Track API call would stage (or the row's error), and
database values → JSON.

The identifier column names the person (`id` or `email`). Mapped columns become attributes, except
those named like Track's reserved fields: `email`, `phone`, `unsubscribed`, `created_at` (and `id`
when people are named by email), which set those fields as an identify call's body would. A NULL
removes the attribute (as `null` in an identify call does).

Values: numbers and text as they are, booleans as booleans, dates and times as Unix seconds,
decimals as numbers, JSON columns as JSON, UUIDs and intervals as text; binary values are refused.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from core.errors import InvalidInput
from profiles.ingest.operations import MAX_ID_LENGTH, clean_attributes, clean_email, clean_str, identify_op

RESERVED = ("email", "phone", "unsubscribed", "created_at")


class Unsupported(ValueError):
    """A value that cannot become an attribute."""


def _unix(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # a timestamp without a time zone is read as UTC
    return int(value.timestamp())


def json_value(value):
    """A database value as JSON (see the module's docstring); Unsupported for binary values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unsupported("is not a finite number")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Unsupported("is not a finite number")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return _unix(value)
    if isinstance(value, date):
        return _unix(datetime(value.year, value.month, value.day))
    if isinstance(value, (time, timedelta, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise Unsupported("is binary: it cannot become an attribute")
    if isinstance(value, (dict, list)):
        return value
    return str(value)


def shown_value(value):
    """A value for the preview: as the sync would store it, or a description of why not."""
    try:
        return json_value(value)
    except Unsupported as exc:
        return f"({exc})"


def value_size(values) -> int:
    """About how many bytes a row's values take (counted against the run's byte limit)."""
    size = 0
    for value in values:
        if value is None:
            continue
        if isinstance(value, (bytes, bytearray, memoryview)):
            size += len(value)
        elif isinstance(value, (dict, list)):
            size += len(json.dumps(value, default=str))
        else:
            size += len(str(value))
    return size


def attribute_columns(source, columns: list[str]) -> list[str]:
    """The columns that become attributes (or reserved fields) for this source."""
    if source.attribute_columns:
        return list(source.attribute_columns)
    skip = {source.identifier_column, source.cursor_column}
    return [column for column in columns if column not in skip]


def check_columns(source, columns: list[str]) -> None:
    """InvalidInput naming the setting whose column the query does not return."""
    if source.identifier_column not in columns:
        raise InvalidInput("identifier_column", f"{source.identifier_column!r} is not a column of the query "
                                                f"(it returns {', '.join(columns)})")
    if source.cursor_column and source.cursor_column not in columns:
        raise InvalidInput("cursor_column", f"{source.cursor_column!r} is not a column of the query")
    for index, column in enumerate(source.attribute_columns or ()):
        if column not in columns:
            raise InvalidInput(f"attribute_columns.{index}", f"{column!r} is not a column of the query")


def _identifier(source, value) -> dict:
    column = source.identifier_column
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(column, f"is empty: the row's {source.identifier_kind} is needed")
    if source.identifier_kind == "email":
        if not isinstance(value, str):
            raise InvalidInput(column, "is not a valid email address")
        return {"email": clean_email(value, column)}
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        value = str(int(value)) if Decimal(value) == Decimal(value).to_integral_value() else str(value)
    elif isinstance(value, uuid.UUID):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(column, "must be text or a whole number")
    return {"id": clean_str(value.strip(), column, max_length=MAX_ID_LENGTH)}


def row_operation(source, mapped: list[tuple[str, int]], identifier_index: int, row: tuple, *, now: float) -> dict:
    """The identify operation of one row, or InvalidInput naming the column. `mapped` is
    (column, index in the row) of each attribute column."""
    person = _identifier(source, row[identifier_index])
    reserved, attributes = {}, {}
    reserved_names = RESERVED + (("id",) if source.identifier_kind == "email" else ())
    for column, index in mapped:
        try:
            value = json_value(row[index])
        except Unsupported as exc:
            raise InvalidInput(column, str(exc)) from None
        name = column.lower()
        if name in reserved_names:
            if value is None or value == "":
                continue
            if name == "unsubscribed" and isinstance(value, int) and value in (0, 1):
                value = bool(value)
            if name in ("email", "phone", "id") and not isinstance(value, str):
                value = str(value)
            reserved[name] = value
        else:
            attributes[column] = value
    try:
        clean_attributes(attributes)
        return identify_op(person=person, ts=now, attributes=attributes, reserved=reserved)
    except InvalidInput as exc:
        field = (exc.field or "").removeprefix("attributes.")
        raise InvalidInput(_column_of(field, mapped), exc.message) from None


def _column_of(field: str, mapped) -> str:
    by_name = {column.lower(): column for column, _ in mapped}
    return by_name.get(field.lower(), field) or "attributes"


# --- the cursor value, stored as JSON with its type ------------------------------------------------

def dump_cursor(value) -> dict | None:
    """{"type", "value"} for storage; None for NULL. ValueError for a type a cursor cannot be."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean column cannot be a cursor")
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, uuid.UUID):
        return {"type": "str", "value": str(value)}
    raise ValueError("cursor values must be dates, times, numbers or text")


def load_cursor(stored: dict | None):
    """The Python value to compare the cursor column with."""
    if not stored:
        return None
    kind, value = stored["type"], stored["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "float":
        return float(value)
    return str(value)


def shown_cursor(stored: dict | None):
    """The cursor as the API and console show it."""
    return None if not stored else stored["value"]
