"""What condition kinds are made of: `ConditionKind`, the contexts its functions receive, and the
value, time and SQL helpers shared by the kinds of every layer (profiles, channels, campaigns).

A kind is registered with `profiles.segments.registry.register_condition_kind`; the tree walks in
conditions.py (validate, compile, depends_on) and reference.py (evaluate) call it for its leaves.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

from django.db.models import BooleanField, Func, Q

from core.errors import InvalidInput

WINDOW_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
NUMBER_RE = r"^-?[0-9]+(\.[0-9]+)?$"
ISO_RE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"
)


@dataclass(frozen=True)
class ValidationContext:
    """What validation may check a leaf against: `workspace` is the workspace whose topics,
    messages... a tree may name; None means only their form is checked."""

    workspace: Any = None


@dataclass(frozen=True)
class ReferenceContext:
    """One person's data, as the plain-Python reference evaluator sees it (see reference.py)."""

    person: dict
    events: list
    objects: list
    memberships: set
    now: datetime
    deliveries: list = field(default_factory=list)
    topics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ConditionKind:
    """A leaf of the condition language, `{name: body}` with `body` a JSON object.

    validate(body, path, context) -> the body normalized, or InvalidInput naming a path under `path`
    compile(workspace, body, now) -> Q over Profile, true or false for every person (never NULL)
    depends_on(body) -> change tags that can alter the result ("time" for windows and relative dates)
    reference(body, context) -> bool, the same semantics in plain Python (tests only)
    renamed_from: old leaf names that are answered with `renamed_hint` instead of "unknown condition".
    describe(workspace) -> what the console's segment builder shows for the body: {"label", "help",
      "body": a field spec, "default": a body} (profiles/segments/builder.py lists the specs;
      workspace None: no choices read from data). A kind without it is edited as raw JSON.
    """

    name: str
    validate: Callable[[dict, str, ValidationContext], dict]
    compile: Callable[[Any, dict, datetime], Q]
    depends_on: Callable[[dict], set[str]]
    reference: Callable[[dict, ReferenceContext], bool]
    renamed_from: frozenset[str] = frozenset()
    renamed_hint: str = ""
    describe: Callable[[Any], dict] | None = None


# --- validation helpers --------------------------------------------------------------------------

def require(body, key, path):
    if key not in body:
        raise InvalidInput(f"{path}.{key}", "this field is required")
    return body[key]


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def within(value, path) -> dict:
    """A window `{value: N, unit: minutes|hours|days}`, normalized."""
    if not isinstance(value, dict):
        raise InvalidInput(path, "must be an object {value, unit}")
    if value.get("unit") not in WINDOW_UNITS:
        raise InvalidInput(f"{path}.unit", "must be minutes, hours or days")
    amount = value.get("value")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 1_000_000:
        raise InvalidInput(f"{path}.value", "must be a whole number, 1 or more")
    return {"value": amount, "unit": value["unit"]}


def window_spec() -> dict:
    """The builder's field spec of a window (see `within`)."""
    return {"type": "object", "fields": [
        {"key": "value", "label": "", "spec": {"type": "integer", "min": 1, "max": 1_000_000}},
        {"key": "unit", "label": "", "spec": choice_spec(list(WINDOW_UNITS))},
    ]}


def choice_spec(choices, labels: dict | None = None) -> dict:
    """The builder's field spec of a choice among `choices` (values), labelled by `labels`."""
    labels = labels or {}
    return {"type": "choice", "choices": [{"value": value, "label": labels.get(value, str(value).replace("_", " "))}
                                          for value in choices]}


def window_start(window: dict, now: datetime) -> datetime:
    """The start of a (validated) window ending at `now`."""
    return now - timedelta(seconds=window["value"] * WINDOW_UNITS[window["unit"]])


# --- times ---------------------------------------------------------------------------------------

def parse_time(value):
    """Unix seconds or ISO 8601 text -> aware UTC datetime; None when it is neither."""
    if is_number(value):
        try:
            return datetime.fromtimestamp(value, dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and re.match(ISO_RE, value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)
    return None


def anniversary_days(now):
    """Month-days ("MM-DD") that count as today's anniversary, in UTC: today, plus Feb 29 on Feb 28
    of a common year (so leap-day birthdays still come round)."""
    today = now.astimezone(dt_timezone.utc).date()
    days = [today.strftime("%m-%d")]
    if today.month == 2 and today.day == 28 and (today + timedelta(days=1)).month == 3:
        days.append("02-29")
    return days


# --- SQL -----------------------------------------------------------------------------------------

class Sql(Func):
    """A SQL fragment over expressions: `@0`, `@1`... may each appear several times; each
    occurrence repeats that expression's SQL and parameters. Literal text must contain no `%`."""

    def __init__(self, template, *expressions, output_field=None):
        self.sql_template = template
        super().__init__(*expressions, output_field=output_field or BooleanField())

    def as_sql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expr) for expr in self.get_source_expressions()]
        params = []
        for match in re.finditer(r"@(\d)", self.sql_template):
            params.extend(compiled[int(match.group(1))][1])
        sql = re.sub(r"@(\d)", lambda m: compiled[int(m.group(1))][0], self.sql_template)
        return sql, params
