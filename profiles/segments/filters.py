"""Attribute-style filters `{field, operator, value}`: the profile's attributes (the `attribute`
leaf), event data and object / relationship attributes (the `event` and `object` leaves).

    validate_filter(body, path, field_kind=None) / validate_filters(body, key, path)
    filter_sql(target, spec, now)       a boolean SQL expression, never NULL (Target: where it looks)
    filter_matches(value, spec, now)    the same in plain Python (Value: what the SQL sees), for the
                                        reference evaluator

See docs/segments.md ("Values and types") for what matches.
"""

import json
import re
from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db.models import DecimalField, F, Q, TextField, Value

from core.errors import InvalidInput
from profiles.segments.base import ISO_RE, NUMBER_RE, Sql, anniversary_days, is_number, parse_time, require

ATTRIBUTE_OPERATORS = {
    "eq", "neq", "exists", "not_exists", "contains", "starts_with", "gt", "gte", "lt", "lte", "in",
    "within_last_days", "within_next_days", "anniversary",
}
ORDER_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
RELATIVE_OPERATORS = {"within_last_days", "within_next_days", "anniversary"}
VALUELESS_OPERATORS = {"exists", "not_exists", "anniversary"}
CREATED_AT_OPERATORS = {"exists", "not_exists", "gt", "gte", "lt", "lte"} | RELATIVE_OPERATORS


# --- validation ----------------------------------------------------------------------------------

def validate_filter(body, path, *, field_kind=None):
    """One filter, normalized; `field_kind="profile"` adds the rules of the profile's columns."""
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object")
    field = require(body, "field", path)
    if not isinstance(field, str) or not field or len(field) > 150:
        raise InvalidInput(f"{path}.field", "must be a non-empty string of at most 150 characters")
    operator = require(body, "operator", path)
    if operator not in ATTRIBUTE_OPERATORS:
        raise InvalidInput(f"{path}.operator", f"unknown operator; use one of {', '.join(sorted(ATTRIBUTE_OPERATORS))}")
    if field_kind == "profile" and field == "created_at" and operator not in CREATED_AT_OPERATORS:
        raise InvalidInput(f"{path}.operator", "created_at takes exists, gt/gte/lt/lte or relative dates")
    if field_kind == "profile" and field == "unsubscribed" and operator not in {"eq", "neq", "exists", "not_exists"}:
        raise InvalidInput(f"{path}.operator", "unsubscribed takes eq or neq with true or false")
    out = {"field": field, "operator": operator}
    if operator in VALUELESS_OPERATORS:
        return out
    value = require(body, "value", path)
    vpath = f"{path}.value"
    if operator in ("eq", "neq"):
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInput(vpath, "must be a string, number or boolean")
    elif operator == "in":
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise InvalidInput(vpath, "must be a non-empty list (at most 1000 values)")
        for i, item in enumerate(value):
            if not isinstance(item, (str, int, float, bool)):
                raise InvalidInput(f"{vpath}.{i}", "must be a string, number or boolean")
    elif operator in ("contains", "starts_with"):
        if not isinstance(value, str):
            raise InvalidInput(vpath, "must be a string")
    elif operator in ORDER_OPERATORS:
        if isinstance(value, str) and re.match(NUMBER_RE, value):
            value = float(value) if "." in value else int(value)
        if not is_number(value) and parse_time(value) is None:
            raise InvalidInput(vpath, "must be a number or a date (ISO 8601, e.g. 2024-05-01T00:00:00Z)")
        if field == "created_at" and field_kind == "profile" and parse_time(value) is None:
            raise InvalidInput(vpath, "must be a date (ISO 8601 or Unix seconds)")
    elif operator in ("within_last_days", "within_next_days"):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 36500:
            raise InvalidInput(vpath, "must be a whole number of days between 0 and 36500")
    if field == "unsubscribed" and field_kind == "profile" and not isinstance(value, bool):
        raise InvalidInput(vpath, "must be true or false")
    out["value"] = value
    return out


def validate_filters(body, key, path):
    items = body.get(key, [])
    if not isinstance(items, list) or len(items) > 50:
        raise InvalidInput(f"{path}.{key}", "must be a list (at most 50 filters)")
    return [validate_filter(item, f"{path}.{key}.{i}") for i, item in enumerate(items)]


def uses_relative_dates(specs) -> bool:
    """Whether any of the filters depends on the time of evaluation."""
    return any(spec["operator"] in RELATIVE_OPERATORS for spec in specs)


# --- SQL -----------------------------------------------------------------------------------------

def _num(text):
    """The value as a number when its text is a plain decimal (JSON numbers, "42", "-1.5")."""
    return Sql(f"(CASE WHEN @0 ~ '{NUMBER_RE}' THEN (@0)::numeric END)", text, output_field=DecimalField())


_ISO_EPOCH = (
    "(extract(epoch from (make_date(greatest(substr(@0, 1, 4)::int, 1), substr(@0, 6, 2)::int, 1)"
    " + (substr(@0, 9, 2)::int - 1))::timestamp)"
    " + coalesce(substring(@0 from '^.{10}[T ]([0-9]{2})')::numeric, 0) * 3600"
    " + coalesce(substring(@0 from '^.{10}[T ][0-9]{2}:([0-9]{2})')::numeric, 0) * 60"
    " + coalesce(substring(@0 from '^.{10}[T ][0-9]{2}:[0-9]{2}:([0-9.]+)')::numeric, 0)"
    " - coalesce((substring(@0 from '^.{10}[T ][0-9:.]+([+-])') || '1')::numeric"
    " * (substring(@0 from '^.{10}[T ][0-9:.]+[+-]([0-9]{2})')::numeric * 3600"
    " + coalesce(substring(@0 from '^.{10}[T ][0-9:.]+[+-][0-9]{2}:?([0-9]{2})$')::numeric, 0) * 60), 0))"
)


def _epoch(text):
    """Seconds since 1970 from Unix seconds or ISO 8601 text; NULL otherwise. Never raises: the
    date is built arithmetically (an impossible day such as Feb 30 rolls into the next month)."""
    return Sql(f"(CASE WHEN @0 ~ '{NUMBER_RE}' THEN (@0)::numeric WHEN @0 ~ '{ISO_RE}' THEN {_ISO_EPOCH} END)",
               text, output_field=DecimalField())


class Target:
    """Where a filter looks: the value's text (NULL when missing or JSON null), its JSON (for
    arrays; None for columns), its number and its time in epoch seconds."""

    def __init__(self, text, json=None, epoch=None):
        self.text, self.json = text, json
        self.number = _num(text) if epoch is None else epoch
        self.epoch = _epoch(text) if epoch is None else epoch


def json_target(column, key):
    return Target(Sql("(@0 ->> (@1)::text)", F(column), Value(key), output_field=TextField()),
                  Sql("(@0 -> (@1)::text)", F(column), Value(key), output_field=TextField()))


def _scalar(value):
    """(SQL cast, parameter) for a condition value compared with the attribute's text or number."""
    if isinstance(value, bool):
        return "text", Value("true" if value else "false")
    if is_number(value):
        return "numeric", Value(Decimal(str(value)))
    return "text", Value(value)


def _sql_eq(target, value):
    cast, param = _scalar(value)
    left = target.number if cast == "numeric" else target.text
    return Sql(f"(@0 = (@1)::{cast})", left, param)


def _false_if_null(expr):
    return Sql("COALESCE(@0, false)", expr)


def filter_sql(target, spec, now):
    """One filter as a boolean expression that is never NULL."""
    operator, value = spec["operator"], spec.get("value")
    if operator == "exists":
        return Sql("(@0 IS NOT NULL)", target.text)
    if operator == "not_exists":
        return Sql("(@0 IS NULL)", target.text)
    if operator == "eq":
        return _false_if_null(_sql_eq(target, value))
    if operator == "neq":
        return Sql("(NOT COALESCE(@0, false))", _sql_eq(target, value))
    if operator == "in":
        if len(value) > 10:  # placeholders are single digits; long lists use = ANY(array)
            return _false_if_null(_in_many(target, value))
        parts = [_sql_eq(target, item) for item in value]
        return Sql("COALESCE(" + " OR ".join(f"@{i}" for i in range(len(parts))) + ", false)", *parts)
    if operator == "contains":
        if target.json is None:
            return _false_if_null(Sql("(strpos(@0, (@1)::text) > 0)", target.text, Value(value)))
        return _false_if_null(Sql(
            "(CASE WHEN jsonb_typeof(@0) = 'array' THEN @0 @> jsonb_build_array((@2)::text)"
            " ELSE strpos(@1, (@2)::text) > 0 END)", target.json, target.text, Value(value)))
    if operator == "starts_with":
        return _false_if_null(Sql("(left(@0, char_length((@1)::text)) = (@1)::text)", target.text, Value(value)))
    if operator in ORDER_OPERATORS:
        sign = ORDER_OPERATORS[operator]
        if is_number(value):
            return _false_if_null(Sql(f"(@0 {sign} (@1)::numeric)", target.number, Value(Decimal(str(value)))))
        return _false_if_null(Sql(f"(@0 {sign} (@1)::numeric)", target.epoch, Value(_seconds(parse_time(value)))))
    now_s = _seconds(now)
    if operator == "within_last_days":
        low, high = now_s - value * 86400, now_s
    elif operator == "within_next_days":
        low, high = now_s, now_s + value * 86400
    else:  # anniversary
        days = anniversary_days(now)
        placeholders = ", ".join(f"(@{i + 1})::text" for i in range(len(days)))
        return _false_if_null(Sql(
            "(CASE WHEN @0 BETWEEN -62135596800 AND 253402300799"
            f" THEN to_char(to_timestamp(@0) AT TIME ZONE 'UTC', 'MM-DD') IN ({placeholders}) END)",
            target.epoch, *[Value(day) for day in days]))
    return _false_if_null(Sql("(@0 BETWEEN (@1)::numeric AND (@2)::numeric)", target.epoch,
                              Value(Decimal(low)), Value(Decimal(high))))


def _in_many(target, values):
    """`in` with many values: one IN list per value kind."""
    texts = [("true" if v else "false") if isinstance(v, bool) else v for v in values if not is_number(v)]
    numbers = [Decimal(str(v)) for v in values if is_number(v)]
    parts, exprs = [], []
    if texts:
        exprs.append(target.text)
        parts.append(f"@{len(exprs) - 1} = ANY((@{len(exprs)})::text[])")
        exprs.append(Value(texts))
    if numbers:
        exprs.append(target.number)
        parts.append(f"@{len(exprs) - 1} = ANY((@{len(exprs)})::numeric[])")
        exprs.append(Value(numbers))
    return Sql("(" + " OR ".join(parts) + ")", *exprs)


def _seconds(moment):
    return Decimal(str(moment.timestamp()))


def filters_q(specs, column, now):
    """All the filters on the JSON `column`, as one Q."""
    q = Q()
    for spec in specs:
        q &= Q(filter_sql(json_target(column, spec["field"]), spec, now))
    return q


# --- plain Python (the reference evaluator) -------------------------------------------------------

class Valued:
    """An attribute's value seen as text, number and time, as the SQL sees it."""

    def __init__(self, raw, epoch=None):
        self.text = _text(raw)
        self.json = raw
        self.number = _number(self.text) if epoch is None else epoch
        self.epoch = _text_epoch(self.text) if epoch is None else epoch

    @classmethod
    def of_time(cls, moment):
        """A datetime column (created_at)."""
        return cls(moment.isoformat(), epoch=_seconds(moment))


def _text(raw):
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (int, float)):
        return str(raw)
    return json.dumps(raw)


def _number(text):
    return Decimal(text) if text is not None and re.match(NUMBER_RE, text) else None


def _text_epoch(text):
    if text is None:
        return None
    if re.match(NUMBER_RE, text):
        return Decimal(text)
    if not re.match(ISO_RE, text):
        return None
    day = date(max(int(text[:4]), 1), int(text[5:7]), 1) + timedelta(days=int(text[8:10]) - 1)
    seconds = Decimal((day - date(1970, 1, 1)).days * 86400)
    clock = re.match(r"^.{10}[T ]([0-9]{2}):([0-9]{2})(?::([0-9.]+))?(?:Z|([+-])([0-9]{2}):?([0-9]{2})?)?$", text)
    if clock:
        hours, minutes, secs, sign, off_h, off_m = clock.groups()
        seconds += int(hours) * 3600 + int(minutes) * 60 + Decimal(secs or 0)
        if sign:
            offset = int(off_h) * 3600 + int(off_m or 0) * 60
            seconds -= offset if sign == "+" else -offset
    return seconds


def _value_eq(value, expected):
    if isinstance(expected, bool):
        return value.text == ("true" if expected else "false")
    if isinstance(expected, (int, float)):
        return value.number is not None and value.number == Decimal(str(expected))
    return value.text == expected


def filter_matches(value, spec, now):
    """Whether `value` (a Valued) passes the filter."""
    operator, expected = spec["operator"], spec.get("value")
    if operator == "exists":
        return value.text is not None
    if operator == "not_exists":
        return value.text is None
    if operator == "eq":
        return _value_eq(value, expected)
    if operator == "neq":
        return not _value_eq(value, expected)
    if operator == "in":
        return any(_value_eq(value, item) for item in expected)
    if value.text is None:
        return False
    if operator == "contains":
        if isinstance(value.json, list):
            return expected in value.json
        return expected in value.text
    if operator == "starts_with":
        return value.text.startswith(expected)
    if operator in ("gt", "gte", "lt", "lte"):
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            left, right = value.number, Decimal(str(expected))
        else:
            left, right = value.epoch, _seconds(parse_time(expected))
        if left is None:
            return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[operator]
    if value.epoch is None:
        return False
    now_s = _seconds(now)
    if operator == "within_last_days":
        return now_s - expected * 86400 <= value.epoch <= now_s
    if operator == "within_next_days":
        return now_s <= value.epoch <= now_s + expected * 86400
    if not -62135596800 <= value.epoch <= 253402300799:
        return False
    moment = datetime(1970, 1, 1, tzinfo=dt_timezone.utc) + timedelta(seconds=float(value.epoch))
    return moment.strftime("%m-%d") in anniversary_days(now)


def all_match(specs, attributes, now) -> bool:
    """Whether the JSON object `attributes` (None: empty) passes every filter, in plain Python."""
    return all(filter_matches(Valued((attributes or {}).get(spec["field"])), spec, now) for spec in specs)
