"""The segment condition language: validate a JSON tree, compile it to one SQL query, list what it
depends on. See docs/segments.md ("Condition language") for the full grammar and the edge cases.

    validate(tree) -> dict              normalized tree, or InvalidInput naming the bad node's path
    matching(workspace, tree, now=None) -> QuerySet[Profile]   one query, no per-person Python
    depends_on(tree) -> set[str]        "attributes", "events:<name>", "objects", "channels",
                                        "topics:<key>", "messages", "segments:<id>", "time"

Semantics in brief (profiles/segments/reference.py is the executable specification the tests
compare against):
- Every leaf is two-valued: a missing key (or JSON null) is "no value"; it satisfies only `neq`,
  `not_exists` (and the negation of anything). Nothing raises at query time: text is turned into a
  number or a time only after a regular expression has vetted it, inside a CASE.
- Numbers: JSON numbers and numeric strings ("42", "-1.5") compare numerically.
- Times: Unix seconds (numbers or numeric strings) or ISO 8601 text (`YYYY-MM-DD`, optional
  `THH:MM[:SS[.f]]`, optional `Z`/`±HH[:MM]`; naive means UTC). Relative dates use UTC.
- `not_performed` with a window matches people with no such event in the window, however young
  they are (nothing is assumed about the time before they were created).
- Event counts: over the whole workspace, "at least N" (N >= 2) is `pk IN (events grouped by
  person HAVING count >= N)`, one pass over the matching events. For a few people (live upkeep:
  `matching(..., profile_ids=...)`) it is EXISTS over the person's N-th matching event
  (OFFSET N-1 LIMIT 1): at most N index entries of (workspace, profile, -timestamp) per person.
  N = 1 is a plain EXISTS either way.
- Topics: `{"channel": {"subscribed_to_topic": key}}` is the person's topic-wide preference
  (channel '') or else the topic's default, and never true for a globally unsubscribed person or
  a topic that does not exist (any more). Channel-specific preferences do not count here.
- Messages: `{"message": {"action", selector, "channel", "within"}}` is EXISTS over the person's
  deliveries whose timestamp for the action (sent_at, opened_at...) is set (in the window).
"""

import re
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db.models import BooleanField, Count, DecimalField, Exists, F, Func, OuterRef, Q, TextField, Value
from django.utils import timezone

from channels.models import ChannelType, Delivery, SubscriptionPreference, SubscriptionTopic
from core.context import current_workspace_or_none
from core.errors import InvalidInput
from profiles.models import Device, Event, Profile, Relationship, SegmentMembership

ATTRIBUTE_OPERATORS = {
    "eq", "neq", "exists", "not_exists", "contains", "starts_with", "gt", "gte", "lt", "lte", "in",
    "within_last_days", "within_next_days", "anniversary",
}
ORDER_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
RELATIVE_OPERATORS = {"within_last_days", "within_next_days", "anniversary"}
VALUELESS_OPERATORS = {"exists", "not_exists", "anniversary"}
TEXT_COLUMNS = {"email": "email", "phone": "phone", "id": "external_id", "cio_id": "cio_id"}
CREATED_AT_OPERATORS = {"exists", "not_exists", "gt", "gte", "lt", "lte"} | RELATIVE_OPERATORS
COUNT_OPERATORS = {"at_least": ">=", "at_most": "<=", "exactly": "="}
WINDOW_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
CHANNELS = {"email", "phone", "push_device"}
# Old spellings of message conditions: each is answered with the `message` form to use.
MESSAGE_KINDS = {"campaign", "sent", "opened", "clicked", "delivery", "delivered"}
# A message action → the delivery column that records when it happened (and, for failures, the
# statuses that tell them apart: failed_at is set by bounces, failures and undeliverable alike).
MESSAGE_ACTIONS = {"sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at",
                   "clicked": "clicked_at", "converted": "converted_at", "bounced": "failed_at",
                   "failed": "failed_at"}
MESSAGE_ACTION_STATUSES = {"bounced": ("bounced",), "failed": ("failed", "undeliverable")}
# Which messages: at most one selector; none means any message.
MESSAGE_SELECTORS = {"transactional_message_id": None, "campaign_id": Delivery.Source.CAMPAIGN,
                     "broadcast_id": Delivery.Source.BROADCAST}
TOPIC_KEY_RE = r"^[-a-zA-Z0-9_]{1,100}$"
MAX_NODES = 200
MAX_DEPTH = 12

NUMBER_RE = r"^-?[0-9]+(\.[0-9]+)?$"
ISO_RE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"
)


# --- validation ---------------------------------------------------------------------------------

# The workspace whose topics and transactional messages a tree may name (see `validate`).
_CHECKED_WORKSPACE: ContextVar = ContextVar("segment_checked_workspace", default=None)


def validate(tree, *, workspace=None) -> dict:
    """Check a condition tree and return it normalized (defaults filled in). Raises InvalidInput
    whose field is the path of the bad node, e.g. `conditions.and.1.event.within.unit`.

    Topic keys and transactional message ids must exist in `workspace` (default: the workspace in
    scope). With no workspace at all only their form is checked; compiling never checks (a topic
    deleted after the segment was saved makes its leaf false, not the recompute fail)."""
    token = _CHECKED_WORKSPACE.set(workspace if workspace is not None else current_workspace_or_none())
    try:
        return _normalized(tree)
    finally:
        _CHECKED_WORKSPACE.reset(token)


def _normalized(tree) -> dict:
    if not isinstance(tree, dict) or not tree:
        raise InvalidInput("conditions", "a data segment needs a condition tree, e.g. {\"and\": [...]}")
    counter = [0]
    return _node(tree, "conditions", 0, counter)


def _node(node, path, depth, counter):
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise InvalidInput(path, f"too many conditions (at most {MAX_NODES})")
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"conditions nest too deeply (at most {MAX_DEPTH} levels)")
    if not isinstance(node, dict) or len(node) != 1:
        raise InvalidInput(path, "each condition is an object with exactly one key: and, or, not, attribute, "
                                 "event, object, segment, channel or message")
    (kind, body), = node.items()
    sub = f"{path}.{kind}"
    if kind in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise InvalidInput(sub, f"`{kind}` takes a non-empty list of conditions")
        return {kind: [_node(child, f"{sub}.{i}", depth + 1, counter) for i, child in enumerate(body)]}
    if kind == "not":
        return {"not": _node(body, sub, depth + 1, counter)}
    if kind in MESSAGE_KINDS:
        raise InvalidInput(sub, "unknown condition; message conditions are written "
                                "{\"message\": {\"action\": \"sent\"|\"opened\"|\"clicked\"|..., ...}}")
    validator = LEAF_VALIDATORS.get(kind)
    if validator is None:
        raise InvalidInput(sub, f"unknown condition `{kind}`")
    if not isinstance(body, dict):
        raise InvalidInput(sub, "must be an object")
    return {kind: validator(body, sub)}


def _require(body, key, path):
    if key not in body:
        raise InvalidInput(f"{path}.{key}", "this field is required")
    return body[key]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_time(value):
    """Unix seconds or ISO 8601 text -> aware UTC datetime; None when it is neither."""
    if _is_number(value):
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


def _filter(body, path, *, field_kind=None):
    """An attribute-style filter {field, operator, value}, also used on event data and objects."""
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object")
    field = _require(body, "field", path)
    if not isinstance(field, str) or not field or len(field) > 150:
        raise InvalidInput(f"{path}.field", "must be a non-empty string of at most 150 characters")
    operator = _require(body, "operator", path)
    if operator not in ATTRIBUTE_OPERATORS:
        raise InvalidInput(f"{path}.operator", f"unknown operator; use one of {', '.join(sorted(ATTRIBUTE_OPERATORS))}")
    if field_kind == "profile" and field == "created_at" and operator not in CREATED_AT_OPERATORS:
        raise InvalidInput(f"{path}.operator", "created_at takes exists, gt/gte/lt/lte or relative dates")
    if field_kind == "profile" and field == "unsubscribed" and operator not in {"eq", "neq", "exists", "not_exists"}:
        raise InvalidInput(f"{path}.operator", "unsubscribed takes eq or neq with true or false")
    out = {"field": field, "operator": operator}
    if operator in VALUELESS_OPERATORS:
        return out
    value = _require(body, "value", path)
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
        if not _is_number(value) and parse_time(value) is None:
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


def _filters(body, key, path):
    items = body.get(key, [])
    if not isinstance(items, list) or len(items) > 50:
        raise InvalidInput(f"{path}.{key}", "must be a list (at most 50 filters)")
    return [_filter(item, f"{path}.{key}.{i}") for i, item in enumerate(items)]


def _attribute(body, path):
    return _filter(body, path, field_kind="profile")


def _event(body, path):
    name = _require(body, "name", path)
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"{path}.name", "must be an event name (1-255 characters)")
    operator = body.get("operator", "performed")
    if operator not in ("performed", "not_performed"):
        raise InvalidInput(f"{path}.operator", "must be performed or not_performed")
    count = body.get("count", {"operator": "at_least", "value": 1})
    if not isinstance(count, dict):
        raise InvalidInput(f"{path}.count", "must be an object {operator, value}")
    if count.get("operator") not in COUNT_OPERATORS:
        raise InvalidInput(f"{path}.count.operator", "must be at_least, at_most or exactly")
    n = count.get("value")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidInput(f"{path}.count.value", "must be a whole number, 0 or more")
    out = {"name": name, "operator": operator, "count": {"operator": count["operator"], "value": n}}
    if "within" in body and "between" in body:
        raise InvalidInput(f"{path}.between", "give either within or between, not both")
    if "within" in body:
        out["within"] = _within(body["within"], f"{path}.within")
    if "between" in body:
        between = body["between"]
        if not isinstance(between, list) or len(between) != 2:
            raise InvalidInput(f"{path}.between", "must be [start, end]")
        times = [parse_time(item) for item in between]
        for i, parsed in enumerate(times):
            if parsed is None:
                raise InvalidInput(f"{path}.between.{i}", "must be a date (ISO 8601 or Unix seconds)")
        if times[0] > times[1]:
            raise InvalidInput(f"{path}.between", "start must not be after end")
        out["between"] = list(between)
    out["filters"] = _filters(body, "filters", path)
    return out


def _within(within, path):
    if not isinstance(within, dict):
        raise InvalidInput(path, "must be an object {value, unit}")
    if within.get("unit") not in WINDOW_UNITS:
        raise InvalidInput(f"{path}.unit", "must be minutes, hours or days")
    value = within.get("value")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
        raise InvalidInput(f"{path}.value", "must be a whole number, 1 or more")
    return {"value": value, "unit": within["unit"]}


def _message(body, path):
    action = _require(body, "action", path)
    if action not in MESSAGE_ACTIONS:
        raise InvalidInput(f"{path}.action", f"must be one of {', '.join(MESSAGE_ACTIONS)}")
    out = {"action": action}
    for key in body:
        if key not in ("action", "channel", "within", *MESSAGE_SELECTORS):
            raise InvalidInput(f"{path}.{key}", "unknown key; use action, transactional_message_id, campaign_id, "
                                                "broadcast_id, channel and within")
    selectors = [key for key in MESSAGE_SELECTORS if key in body]
    if len(selectors) > 1:
        raise InvalidInput(f"{path}.{selectors[1]}", f"give at most one of {', '.join(MESSAGE_SELECTORS)}")
    if selectors == ["transactional_message_id"]:
        out["transactional_message_id"] = _transactional_message_id(body["transactional_message_id"],
                                                                    f"{path}.transactional_message_id")
    elif selectors:
        key = selectors[0]
        value = body[key]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value or len(value) > 64:
            raise InvalidInput(f"{path}.{key}", "must be an id (a string of at most 64 characters or a number)")
        out[key] = value
    if "channel" in body:
        if body["channel"] not in ChannelType.values:
            raise InvalidInput(f"{path}.channel", f"must be one of {', '.join(ChannelType.values)}")
        out["channel"] = body["channel"]
    if "within" in body:
        out["within"] = _within(body["within"], f"{path}.within")
    return out


def _transactional_message_id(value, path):
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(path, "must be a transactional message id")
    workspace = _CHECKED_WORKSPACE.get()
    if workspace is not None:
        from campaigns.models import TransactionalMessage

        if not TransactionalMessage.unscoped.filter(workspace=workspace, pk=value).exists():
            raise InvalidInput(path, "no transactional message of this workspace has this id")
    return value


def _topic_key(value, path):
    if not isinstance(value, str) or not re.match(TOPIC_KEY_RE, value):
        raise InvalidInput(path, "must be a subscription topic key")
    workspace = _CHECKED_WORKSPACE.get()
    if workspace is not None and not SubscriptionTopic.unscoped.filter(workspace=workspace, key=value).exists():
        raise InvalidInput(path, "no subscription topic of this workspace has this key")
    return value


def _object(body, path):
    type_id = _require(body, "object_type_id", path)
    if isinstance(type_id, int) and not isinstance(type_id, bool):
        type_id = str(type_id)
    if not isinstance(type_id, str) or not type_id:
        raise InvalidInput(f"{path}.object_type_id", "must be an object type id, e.g. \"1\"")
    return {"object_type_id": type_id, "filters": _filters(body, "filters", path),
            "relationship_filters": _filters(body, "relationship_filters", path)}


def _segment(body, path):
    segment_id = _require(body, "id", path)
    if isinstance(segment_id, str) and segment_id.isdigit():
        segment_id = int(segment_id)
    if not isinstance(segment_id, int) or isinstance(segment_id, bool) or segment_id <= 0:
        raise InvalidInput(f"{path}.id", "must be a segment id")
    operator = body.get("operator", "member")
    if operator not in ("member", "not_member"):
        raise InvalidInput(f"{path}.operator", "must be member or not_member")
    return {"id": segment_id, "operator": operator}


def _channel(body, path):
    if len(body) != 1:
        raise InvalidInput(path, "give one of has, subscribed, not_suppressed, subscribed_to_topic")
    (key, value), = body.items()
    if key == "has":
        if value not in CHANNELS:
            raise InvalidInput(f"{path}.has", "must be email, phone or push_device")
    elif key in ("subscribed", "not_suppressed"):
        if not isinstance(value, bool):
            raise InvalidInput(f"{path}.{key}", "must be true or false")
    elif key == "subscribed_to_topic":
        value = _topic_key(value, f"{path}.{key}")
    else:
        raise InvalidInput(f"{path}.{key}", "unknown channel condition; use has, subscribed, not_suppressed "
                                            "or subscribed_to_topic")
    return {key: value}


LEAF_VALIDATORS = {"attribute": _attribute, "event": _event, "object": _object, "segment": _segment,
                   "channel": _channel, "message": _message}


# --- dependencies --------------------------------------------------------------------------------

def depends_on(tree) -> set[str]:
    """What can change the result: attributes, events:<name>, objects, channels, topics:<key>,
    messages, segments:<id>, time."""
    out = set()
    _collect(tree, out)
    return out


def _collect(node, out):
    (kind, body), = node.items()
    if kind in ("and", "or"):
        for child in body:
            _collect(child, out)
    elif kind == "not":
        _collect(body, out)
    elif kind == "attribute":
        out.add("attributes")
        if body["operator"] in RELATIVE_OPERATORS:
            out.add("time")
    elif kind == "event":
        out.add(f"events:{body['name']}")
        if "within" in body or any(f["operator"] in RELATIVE_OPERATORS for f in body["filters"]):
            out.add("time")
    elif kind == "object":
        out.add("objects")
        if any(f["operator"] in RELATIVE_OPERATORS for f in body["filters"] + body["relationship_filters"]):
            out.add("time")
    elif kind == "segment":
        out.add(f"segments:{body['id']}")
    elif kind == "channel":
        out.add("channels")
        if "subscribed_to_topic" in body:  # the topic itself (its default, its existence)
            out.add(f"topics:{body['subscribed_to_topic']}")
    elif kind == "message":
        out.add("messages")
        if "within" in body:
            out.add("time")


# --- compilation ---------------------------------------------------------------------------------

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


class _Target:
    """Where a filter looks: the value's text (NULL when missing or JSON null), its JSON (for
    arrays; None for columns), its number and its time in epoch seconds."""

    def __init__(self, text, json=None, epoch=None):
        self.text, self.json = text, json
        self.number = _num(text) if epoch is None else epoch
        self.epoch = _epoch(text) if epoch is None else epoch


def _json_target(column, key):
    return _Target(Sql("(@0 ->> (@1)::text)", F(column), Value(key), output_field=TextField()),
                   Sql("(@0 -> (@1)::text)", F(column), Value(key), output_field=TextField()))


def _profile_target(field):
    if field in TEXT_COLUMNS:
        return _Target(F(TEXT_COLUMNS[field]))
    if field == "unsubscribed":
        return _Target(Sql("(@0)::text", F("unsubscribed"), output_field=TextField()))
    if field == "created_at":
        created = F("created_at")
        return _Target(Sql("(@0)::text", created, output_field=TextField()),
                       epoch=Sql("extract(epoch from @0)", created, output_field=DecimalField()))
    return _json_target("attributes", field)


def _scalar(value):
    """(SQL cast, parameter) for a condition value compared with the attribute's text or number."""
    if isinstance(value, bool):
        return "text", Value("true" if value else "false")
    if _is_number(value):
        return "numeric", Value(Decimal(str(value)))
    return "text", Value(value)


def _eq(target, value):
    cast, param = _scalar(value)
    left = target.number if cast == "numeric" else target.text
    return Sql(f"(@0 = (@1)::{cast})", left, param)


def _false_if_null(expr):
    return Sql("COALESCE(@0, false)", expr)


def _leaf(target, spec, now):
    """One filter as a boolean expression that is never NULL."""
    operator, value = spec["operator"], spec.get("value")
    if operator == "exists":
        return Sql("(@0 IS NOT NULL)", target.text)
    if operator == "not_exists":
        return Sql("(@0 IS NULL)", target.text)
    if operator == "eq":
        return _false_if_null(_eq(target, value))
    if operator == "neq":
        return Sql("(NOT COALESCE(@0, false))", _eq(target, value))
    if operator == "in":
        if len(value) > 10:  # placeholders are single digits; long lists use = ANY(array)
            return _false_if_null(_in_many(target, value))
        parts = [_eq(target, item) for item in value]
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
        if _is_number(value):
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
    texts = [("true" if v else "false") if isinstance(v, bool) else v for v in values if not _is_number(v)]
    numbers = [Decimal(str(v)) for v in values if _is_number(v)]
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


def anniversary_days(now):
    """Month-days ("MM-DD") that count as today's anniversary, in UTC: today, plus Feb 29 on Feb 28
    of a common year (so leap-day birthdays still come round)."""
    today = now.astimezone(dt_timezone.utc).date()
    days = [today.strftime("%m-%d")]
    if today.month == 2 and today.day == 28 and (today + timedelta(days=1)).month == 3:
        days.append("02-29")
    return days


def _filters_q(specs, column, now):
    q = Q()
    for spec in specs:
        q &= Q(_leaf(_json_target(column, spec["field"]), spec, now))
    return q


# Set by `matching(..., profile_ids=...)`: the tree is evaluated for a handful of people, so
# per-person index probes beat one pass over all of the workspace's matching events.
_FEW_PEOPLE: ContextVar[bool] = ContextVar("segment_few_people", default=False)


def _at_least(events, n):
    """People with at least `n` of `events` (an Event queryset not yet tied to a person)."""
    if n == 1:
        return Q(Exists(events.filter(profile=OuterRef("pk"))))
    if _FEW_PEOPLE.get():
        return Q(Exists(events.filter(profile=OuterRef("pk")).order_by()[n - 1:n]))
    grouped = events.order_by().values("profile_id").annotate(matched=Count("pk")).filter(matched__gte=n)
    return Q(pk__in=grouped.values("profile_id"))


def _event_q(workspace, spec, now):
    events = Event.unscoped.filter(workspace=workspace, name=spec["name"])
    if "within" in spec:
        seconds = spec["within"]["value"] * WINDOW_UNITS[spec["within"]["unit"]]
        events = events.filter(timestamp__gte=now - timedelta(seconds=seconds), timestamp__lte=now)
    if "between" in spec:
        start, end = (parse_time(item) for item in spec["between"])
        events = events.filter(timestamp__gte=start, timestamp__lte=end)
    events = events.filter(_filters_q(spec["filters"], "data", now))
    operator, n = spec["count"]["operator"], spec["count"]["value"]
    at_least_n = _at_least(events, n) if n else Q(pk__isnull=False)
    if operator == "at_least":
        q = at_least_n
    elif operator == "at_most":
        q = ~_at_least(events, n + 1)
    else:
        q = at_least_n & ~_at_least(events, n + 1)
    return ~q if spec["operator"] == "not_performed" else q


def _object_q(workspace, spec, now):
    relationships = Relationship.unscoped.filter(
        workspace=workspace, profile=OuterRef("pk"), object__object_type__type_id=spec["object_type_id"],
        object__object_type__workspace=workspace,
    ).filter(_filters_q(spec["filters"], "object__attributes", now)).filter(
        _filters_q(spec["relationship_filters"], "attributes", now))
    return Q(Exists(relationships))


def _segment_q(workspace, spec):
    members = SegmentMembership.unscoped.filter(
        workspace=workspace, segment_id=spec["id"], profile=OuterRef("pk"), exited_at__isnull=True)
    q = Q(Exists(members))
    return q if spec["operator"] == "member" else ~q


def _channel_q(workspace, spec):
    (key, value), = spec.items()
    if key == "has" and value == "push_device":
        return Q(Exists(Device.unscoped.filter(workspace=workspace, profile=OuterRef("pk"))))
    if key == "has":
        return Q(Sql("COALESCE(@0 <> '', false)", F(value)))
    if key == "subscribed":
        return Q(unsubscribed=not value)
    if key == "subscribed_to_topic":
        return _topic_q(workspace, value)
    return Q(suppressed=not value)


def _topic_q(workspace, key):
    """Not globally unsubscribed, and the topic-wide preference (channel '') or else the topic's
    default says yes. The topic's default is an uncorrelated subquery: evaluated once."""
    topic = SubscriptionTopic.unscoped.filter(workspace=workspace, key=key)
    preference = SubscriptionPreference.unscoped.filter(
        workspace=workspace, profile=OuterRef("pk"), channel="", topic__workspace=workspace, topic__key=key)
    opted_in = Q(Exists(preference.filter(subscribed=True)))
    opted_out = Q(Exists(preference.filter(subscribed=False)))
    default_in = Q(Exists(topic.filter(default_subscribed=True)))
    return Q(unsubscribed=False) & (opted_in | (~opted_out & default_in))


def _message_q(workspace, spec, now):
    """The person has a delivery of the message whose action happened (within the window)."""
    action = spec["action"]
    column = MESSAGE_ACTIONS[action]
    deliveries = Delivery.unscoped.filter(workspace=workspace, profile=OuterRef("pk"),
                                          **{f"{column}__isnull": False})
    if action in MESSAGE_ACTION_STATUSES:
        deliveries = deliveries.filter(status__in=MESSAGE_ACTION_STATUSES[action])
    if "transactional_message_id" in spec:
        deliveries = deliveries.filter(transactional_message_id=spec["transactional_message_id"])
    for key, source in MESSAGE_SELECTORS.items():
        if source is not None and key in spec:
            deliveries = deliveries.filter(source=source, source_id=spec[key])
    if "channel" in spec:
        deliveries = deliveries.filter(channel=spec["channel"])
    if "within" in spec:
        seconds = spec["within"]["value"] * WINDOW_UNITS[spec["within"]["unit"]]
        deliveries = deliveries.filter(**{f"{column}__gte": now - timedelta(seconds=seconds), f"{column}__lte": now})
    return Q(Exists(deliveries))


def _compile(workspace, node, now):
    (kind, body), = node.items()
    if kind in ("and", "or"):
        q = Q() if kind == "and" else None
        for child in body:
            part = _compile(workspace, child, now)
            q = part if q is None else (q & part if kind == "and" else q | part)
        return q
    if kind == "not":
        return ~_compile(workspace, body, now)
    if kind == "attribute":
        return Q(_leaf(_profile_target(body["field"]), body, now))
    if kind == "event":
        return _event_q(workspace, body, now)
    if kind == "object":
        return _object_q(workspace, body, now)
    if kind == "segment":
        return _segment_q(workspace, body)
    if kind == "message":
        return _message_q(workspace, body, now)
    return _channel_q(workspace, body)


def to_q(workspace, tree, *, now=None) -> Q:
    """The whole tree as one Q over Profile (the tree is validated first, in form only)."""
    return _compile(workspace, _normalized(tree), now or timezone.now())


def matching(workspace, tree, *, now=None, profile_ids=None):
    """The workspace's people the tree matches (among `profile_ids` when given): one SQL query."""
    people = Profile.unscoped.filter(workspace=workspace)
    if profile_ids is None:
        return people.filter(to_q(workspace, tree, now=now))
    token = _FEW_PEOPLE.set(True)
    try:
        return people.filter(pk__in=profile_ids).filter(to_q(workspace, tree, now=now))
    finally:
        _FEW_PEOPLE.reset(token)
