"""The campaign definition format as a published JSON Schema (draft 2020-12), served at
`GET /v1/campaigns/schema` for the API's clients, the admin and the visual editor.

It is built from the same vocabularies `definition.py` validates with (trigger and step types,
duration units, weekdays, channels, failure policies, filter operators, the condition kinds
registered in the segment language), so a word added there appears here. The schema checks the
shape of a definition; `clean_definition` checks more (that the steps named exist, that templates
parse, that segments, messages and channel configurations are the workspace's own, that a time
window's start differs from its end...), so a document the schema accepts may still be a 400; it
is meant never to refuse what the API accepts. tests/campaigns/journeys/test_api.py keeps the two
in agreement: every example in it (`examples`) passes both, and a set of bad documents fails both.
"""

from __future__ import annotations

import copy
from functools import lru_cache

from campaigns.journeys import definition as d
from profiles.segments.filters import ATTRIBUTE_OPERATORS, VALUELESS_OPERATORS
from profiles.segments.registry import condition_kinds

SCHEMA_ID = "urn:ulak:campaign-definition:1"
MAX_ID = 2**63 - 1

NULL = {"type": "null"}
EMPTY_OBJECT = {"type": "object", "maxProperties": 0}
STEP_KEY = {"type": "string", "pattern": d.STEP_KEY.pattern}
NEXT = {"anyOf": [{"$ref": "#/$defs/step_key"}, NULL], "description": "The key of the step that follows; "
                                                                       "null or absent: the run ends here."}
ROW_ID = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    {"type": "string", "pattern": "^0*[1-9][0-9]*$"}]}
CLOCK = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "A time of day, HH:MM."}
TRUTHY = {"not": {"enum": [None, False, 0, "", [], {}]}}
TEMPLATE = {"type": "string", "maxLength": d.MAX_TEXT, "description": "A Liquid template."}
# The webhook step's method in any case (JSON Schema patterns have no case-insensitive flag).
METHOD = "^(?:" + "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in m)
                           for m in ("GET", "POST", "PUT", "PATCH", "DELETE")) + ")$"
# Step types that name their outcomes (yes/no, branches, cohorts, matched/timeout...) instead of `next`.


def text(max_length: int = 255, **extra) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_length, **extra}


def optional(schema: dict) -> dict:
    return {"anyOf": [schema, NULL]}


def closed(properties: dict, *, required: tuple = (), **extra) -> dict:
    out = {"type": "object", "additionalProperties": False, "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


# --- shared parts ---------------------------------------------------------------------------------------

def _duration() -> dict:
    return {
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "description": "One unit and a whole number above 0, at most 366 days in all: {\"minutes\": 30}.",
        "properties": {unit: {"type": "integer", "minimum": 1, "maximum": d.MAX_DURATION // size}
                       for unit, size in d.DURATION_UNITS.items()},
    }


def _condition() -> dict:
    kinds = {kind.name: {"type": "object", "description": f"A `{kind.name}` condition (docs/segments.md)."}
             for kind in condition_kinds()}
    return {
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "description": "A condition tree of the segment condition language: exactly one of and, or, not or a "
                       "condition kind.",
        "properties": {
            "and": {"type": "array", "minItems": 1, "items": ref("condition")},
            "or": {"type": "array", "minItems": 1, "items": ref("condition")},
            "not": ref("condition"),
            **kinds,
        },
    }


def _filter() -> dict:
    return {
        "type": "object", "required": ["field", "operator"],
        "description": "A filter on the event's data (or the object's attributes): {field, operator, value}.",
        "properties": {"field": text(150), "operator": {"enum": sorted(ATTRIBUTE_OPERATORS)}},
        "if": {"properties": {"operator": {"enum": sorted(VALUELESS_OPERATORS)}}},
        "then": {},
        "else": {"required": ["value"]},
    }


def _event_spec() -> dict:
    return closed({"name": text(), "filters": ref("filters")}, required=("name",),
                  description="An event by name, with filters on its data.")


# --- trigger and rules ----------------------------------------------------------------------------------

def _triggers() -> dict[str, dict]:
    kind = {t: {"const": t} for t in d.TRIGGER_TYPES}
    object_type = {"anyOf": [{"type": "integer"}, text(64)]}
    return {
        "event": closed({"type": kind["event"], "name": text(), "filters": ref("filters"),
                         "max_age_hours": {"type": "integer", "minimum": 1, "maximum": 72}},
                        required=("type", "name"),
                        description="The person performs the event (at most 72 hours old; `max_age_hours` lowers "
                                    "that)."),
        "segment_entered": closed({"type": kind["segment_entered"], "segment_id": ROW_ID},
                                  required=("type", "segment_id")),
        "segment_exited": closed({"type": kind["segment_exited"], "segment_id": ROW_ID},
                                 required=("type", "segment_id")),
        "attribute_changed": closed(
            {"type": kind["attribute_changed"], "field": text(150),
             "from": {"type": ["string", "number", "boolean", "null"]},
             "to": {"type": ["string", "number", "boolean", "null"]}},
            required=("type", "field"), description="`from`/`to`: only changes from or to these values."),
        "date": closed(
            {"type": kind["date"], "attribute": text(150),
             "offset": {"anyOf": [NULL, EMPTY_OBJECT, closed(
                 {"days": {"type": "integer", "minimum": -366, "maximum": 366}}, required=("days",))]},
             "at": CLOCK, "yearly": {"type": "boolean"}},
            required=("type", "attribute"),
            description="A date attribute: `offset` days from it (negative: before) at `at` in the person's time "
                        "zone; `yearly` for birthdays and anniversaries."),
        "inbound_message": closed(
            {"type": kind["inbound_message"], "channel": optional({"enum": list(d.REPLY_CHANNELS)}),
             "keywords": ref("keywords")},
            required=("type",), description="An inbound SMS/WhatsApp message (one of `keywords`, or any)."),
        "object_changed": closed(
            {"type": kind["object_changed"], "object_type_id": object_type,
             "actions": {"type": "array", "minItems": 1, "items": {"enum": ["created", "updated", "deleted"]}}},
            required=("type", "object_type_id")),
        "relationship_changed": closed(
            {"type": kind["relationship_changed"], "object_type_id": object_type,
             "actions": {"type": "array", "minItems": 1, "items": {"enum": ["added", "updated", "removed"]}}},
            required=("type", "object_type_id")),
        "webhook": closed({"type": kind["webhook"]}, required=("type",),
                          description="A signed inbound webhook: its JSON body is the trigger data."),
        "api": closed({"type": kind["api"]}, required=("type",),
                      description="Broadcasts: triggered through the API."),
    }


def _audience() -> dict:
    return {"anyOf": [NULL, EMPTY_OBJECT, closed({"segment_id": ROW_ID}, required=("segment_id",)), ref("condition")],
            "description": "Checked at entry: null (everybody), {\"segment_id\": N} or a condition tree."}


def _re_entry() -> dict:
    rules = closed(
        {"mode": {"enum": ["once", "always", "after"]}, "after": ref("duration"), "concurrent": {"type": "boolean"}},
        allOf=[
            {"if": {"properties": {"mode": {"const": "after"}}, "required": ["mode"]},
             "then": {"required": ["after"]}, "else": {"not": {"required": ["after"]}}},
            {"if": {"properties": {"concurrent": {"const": True}}, "required": ["concurrent"]},
             "then": {"required": ["mode"], "properties": {"mode": {"enum": ["always", "after"]}}}},
        ])
    return {"anyOf": [NULL, rules],
            "description": "once (default), always, or again `after` a duration; `concurrent`: several live runs "
                           "per person."}


def _exit() -> dict:
    return {"anyOf": [NULL, closed({
        "when_unmatched": {"type": "boolean"},
        "events": {"type": "array", "maxItems": 20, "items": text()},
        "on_goal": {"type": "boolean"},
    })], "description": "When a run exits early (checked before every send and on every wake-up)."}


def _goal() -> dict:
    goal = closed(
        {"event": ref("event_spec"), "segment_entered": ROW_ID, "segment_exited": ROW_ID, "within": ref("duration")},
        oneOf=[{"required": ["event"]}, {"required": ["segment_entered"]}, {"required": ["segment_exited"]}])
    return {"anyOf": [NULL, EMPTY_OBJECT, goal],
            "description": "A conversion: the event or segment change within `within` (default 7 days) after a "
                           "message, credited to the last message the person received."}


# --- steps ----------------------------------------------------------------------------------------------

def _step(kind: str, properties: dict, *, required: tuple = (), description: str = "", **extra) -> dict:
    common = {
        "type": {"const": kind},
        "name": optional(text(150)),
        "on_failure": {"enum": list(d.ON_FAILURE), "default": "exit"},
        "next": NULL if kind in d.BRANCHING_STEPS else NEXT,
    }
    if kind not in d.BRANCHING_STEPS:
        common["only_if"] = optional({**ref("condition"), "description": "People who do not match skip the step "
                                                                         "(an exit step: to its `next`, if any)."})
    if description:
        extra["description"] = description
    return closed({**common, **properties}, required=("type", *required), **extra)


def _send() -> dict:
    required = {"email": ("subject", "body"), "sms": ("body",), "push": ("body",), "webhook": ("url",)}
    per_channel = [
        {"if": {"properties": {"channel": {"const": channel}}, "required": ["channel"]},
         "then": {"properties": {"content": {"required": list(keys), "properties": {key: TRUTHY for key in keys}}}}}
        for channel, keys in required.items()
    ]
    per_channel.append({
        "if": {"properties": {"channel": {"const": "whatsapp"}}, "required": ["channel"]},
        "then": {"properties": {"content": {"anyOf": [
            {"required": ["body"], "properties": {"body": TRUTHY}},
            {"required": ["template"], "properties": {"template": TRUTHY}}]}}},
    })
    return _step("send", {
        "channel": {"enum": list(d.SEND_CHANNELS)},
        "content": {"type": "object", "minProperties": 1,
                    "description": "The message's fields (subject, body, ... as the channel's content has them); "
                                   "every string is a Liquid template."},
        "message_id": ROW_ID,
        "channel_config_id": optional(ROW_ID),
        "topic": optional(text(100)),
        "tracked": {"type": "boolean"},
        "variants": {"type": "array", "minItems": 2, "maxItems": 8, "items": closed({
            "key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,20}$", "not": {"const": "holdout"}},
            "weight": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
            "content": {"type": "object", "description": "The fields this variant changes; for a variant on "
                                                         "another channel, the whole message of that channel."},
            "channel": optional({"enum": list(d.SEND_CHANNELS),
                                 "description": "A channel variant: sends on this channel instead of the step's."}),
            "channel_config_id": optional(ROW_ID),
        }, required=("key",)), "description": "A/B variants (the first is the control)."},
        "holdout": optional(closed({"weight": {"type": "integer", "minimum": 1, "maximum": 10000}},
                                   required=("weight",))),
        "winner": optional({**closed({
            "metric": {"enum": list(d.WINNER_METRICS)},
            "confidence": {"type": "number", "minimum": 0.8, "maximum": 0.999, "default": 0.95},
            "min_per_variant": {"type": "integer", "minimum": 10, "maximum": 10_000_000, "default": 100},
            "auto": {"type": "boolean", "default": True},
        }, required=("metric",)), "description": "Pick the winning variant automatically (needs `variants`)."}),
        "sample": optional(closed({
            "percent": {"type": "integer", "minimum": 1, "maximum": 99},
            "wait": ref("duration"),
        }, required=("percent", "wait"), description=(
            "Broadcasts: send the variants to this share of each trigger's recipients, wait, then send the "
            "variant with the best rate on winner.metric to the rest (needs `variants` and `winner`)."))),
    }, required=("channel",), oneOf=[{"required": ["content"]}, {"required": ["message_id"]}], allOf=[
        *per_channel,
        {"if": {"required": ["sample"], "properties": {"sample": {"type": "object"}}},
         "then": {"required": ["variants", "winner"], "properties": {"winner": {"type": "object"}}}}],
        description="Send a message: inline `content`, or a transactional message by `message_id`.")


def _steps() -> dict[str, dict]:
    reply_branch = {"anyOf": [
        closed({"keywords": {**ref("keywords"), "minItems": 1}, "next": NEXT}, required=("keywords",)),
        closed({"pattern": text(500, description="A regular expression searched in the reply."), "next": NEXT},
               required=("pattern",)),
    ]}
    return {
        "send": _send(),
        "delay": _step("delay", {"duration": ref("duration")}, required=("duration",)),
        "time_window": _step("time_window", {
            "days": {"type": "array", "minItems": 1, "items": {"enum": list(d.WEEKDAYS)}},
            "start": CLOCK, "end": CLOCK, "time_zone": optional(text(64, description="IANA time zone")),
        }, required=("start", "end"),
            description="Wait until inside the window (days and hours in the person's time zone, else the "
                        "workspace's; `time_zone` fixes one). An end before the start spans midnight."),
        "wait_until": _step("wait_until", {
            "condition": ref("condition"), "event": ref("event_spec"), "within": ref("duration"),
            "matched": NEXT, "timeout": NEXT,
        }, required=("within",), oneOf=[{"required": ["condition"]}, {"required": ["event"]}],
            description="Wait until the condition is true or the event arrives (→ `matched`), at most `within` "
                        "(→ `timeout`)."),
        "branch": _step("branch", {"condition": ref("condition"), "yes": NEXT, "no": NEXT},
                        required=("condition",)),
        "split": _step("split", {
            "branches": {"type": "array", "minItems": 1, "maxItems": 20,
                         "items": closed({"condition": ref("condition"), "next": NEXT}, required=("condition",))},
            "else": NEXT,
        }, required=("branches",), description="The first branch whose condition is true; else `else`."),
        "random_split": _step("random_split", {
            "cohorts": {"type": "array", "minItems": 2, "maxItems": 20,
                        "items": closed({"weight": {"type": "integer", "minimum": 1, "maximum": 10000},
                                         "next": NEXT}, required=("weight",))},
        }, required=("cohorts",), description="A stable random cohort per run, in proportion to the weights."),
        "wait_for_reply": _step("wait_for_reply", {
            "channel": {"enum": list(d.REPLY_CHANNELS)}, "within": ref("duration"),
            "branches": {"type": "array", "maxItems": 20, "items": reply_branch},
            "else": NEXT, "timeout": NEXT,
            "store_as": optional(text(150, description="Also store the answer as this attribute.")),
            "event": optional({"type": "string", "maxLength": 255,
                               "description": "The event recorded with the answer (default journey_reply)."}),
        }, required=("channel", "within"),
            description="Wait for the person's next SMS/WhatsApp message or button reply; branch on keywords or "
                        "patterns."),
        "update_attributes": _step("update_attributes", {"attributes": ref("attributes")},
                                   required=("attributes",)),
        "update_object": _step("update_object", {
            "object_type_id": {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]},
            "object_id": text(1000, description="A Liquid template."),
            "attributes": ref("attributes"), "relate": {"type": "boolean"},
        }, required=("object_type_id", "object_id", "attributes"),
            description="Create or update an object (and relate the person to it, unless `relate` is false)."),
        "webhook": _step("webhook", {
            "url": text(2000, description="A Liquid template."),
            "method": {"type": "string", "pattern": METHOD, "description": "GET, POST (default), PUT, PATCH or DELETE, "
                                                                             "in any case."},
            "headers": {"type": "object", "additionalProperties": TEMPLATE},
            "body": {"description": "Any JSON value; its strings are Liquid templates."},
            "store_as": optional(text(100, description="Store the response JSON as journey.<store_as>.")),
            "store_attributes": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "{\"attribute\": \"field of the response\"}"},
        }, required=("url",), description="Call a URL (SSRF-guarded)."),
        "exit": _step("exit", {}, description="End the run here (exit reason exit_step)."),
    }


def _workflow() -> dict:
    return closed({
        "start": optional(ref("step_key")),
        "steps": {"type": "object", "maxProperties": d.MAX_STEPS, "propertyNames": ref("step_key"),
                  "additionalProperties": ref("step")},
    }, description="A graph of steps with stable keys, from `start`.",
        **{"if": {"properties": {"steps": {"minProperties": 1}}, "required": ["steps"]},
           "then": {"required": ["start"], "properties": {"start": ref("step_key")}}})


# --- examples -------------------------------------------------------------------------------------------

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
EXAMPLES = [
    {
        "key": "welcome", "name": "Welcome series", "type": "triggered",
        "trigger": {"type": "event", "name": "signed_up", "filters": [
            {"field": "source", "operator": "eq", "value": "web"}]},
        "audience": {"not": {"attribute": {"field": "email", "operator": "not_exists"}}},
        "re_entry": {"mode": "after", "after": {"days": 30}},
        "exit": {"events": ["account_closed"], "on_goal": True},
        "goal": {"event": {"name": "purchased"}, "within": {"days": 7}},
        "workflow": {"start": "welcome", "steps": {
            "welcome": {"type": "send", "channel": "email",
                        "content": {"subject": "Welcome, {{ customer.first_name }}", "body": "<p>Hi!</p>"},
                        "next": "wait"},
            "wait": {"type": "delay", "duration": {"days": 1}, "next": "window"},
            "window": {"type": "time_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                       "end": "17:00", "next": "is_pro"},
            "is_pro": {"type": "branch", "condition": PRO, "yes": "tips", "no": "upgrade"},
            "tips": {"type": "send", "channel": "push", "content": {"body": "Tips for pros"}},
            "upgrade": {"type": "send", "channel": "sms", "content": {"body": "Go pro: {{ trigger.plan }}"},
                        "on_failure": "continue", "next": "bought"},
            "bought": {"type": "wait_until", "event": {"name": "purchased"}, "within": {"days": 3},
                       "matched": "thanks", "timeout": None},
            "thanks": {"type": "send", "channel": "in_app", "content": {"title": "Thanks"}},
        }},
    },
    {
        "name": "Order follow-up", "journey_key": "order_id",
        "trigger": {"type": "event", "name": "order_placed", "max_age_hours": 24},
        "re_entry": {"mode": "always", "concurrent": True},
        "workflow": {"start": "hook", "steps": {
            "hook": {"type": "webhook", "url": "https://erp.example.com/orders/{{ trigger.order_id }}",
                     "method": "post", "headers": {"X-Source": "ulak"}, "body": {"order": "{{ trigger.order_id }}"},
                     "store_as": "erp", "store_attributes": {"last_order_status": "status"},
                     "on_failure": "retry", "next": "segment"},
            "segment": {"type": "split", "branches": [{"condition": PRO, "next": "ab"}], "else": "object"},
            "ab": {"type": "random_split", "cohorts": [{"weight": 50, "next": "object"}, {"weight": 50}]},
            "object": {"type": "update_object", "object_type_id": "1", "object_id": "{{ trigger.order_id }}",
                       "attributes": {"status": "followed_up"}, "next": "attrs"},
            "attrs": {"type": "update_attributes", "attributes": {"last_order": "{{ trigger.order_id }}"},
                      "only_if": PRO, "next": "done"},
            "done": {"type": "exit", "name": "Done"},
        }},
    },
    {
        "name": "SMS survey", "trigger": {"type": "inbound_message", "channel": "sms", "keywords": ["survey"]},
        "workflow": {"start": "ask", "steps": {
            "ask": {"type": "send", "channel": "sms", "content": {"body": "How was it? Reply 1-5"}, "next": "answer"},
            "answer": {"type": "wait_for_reply", "channel": "sms", "within": {"hours": 24}, "store_as": "rating",
                       "branches": [{"keywords": ["5", "4"], "next": "happy"}, {"pattern": "^[1-3]", "next": "sorry"}],
                       "else": None, "timeout": None},
            "happy": {"type": "wait_until", "condition": PRO, "within": {"minutes": 30}, "matched": None},
            "sorry": {"type": "send", "channel": "whatsapp",
                      "content": {"template": {"name": "apology", "language": "en"}}},
        }},
    },
    {"name": "Birthday", "trigger": {"type": "date", "attribute": "birthday", "offset": {"days": -1}, "at": "10:00",
                                     "yearly": True},
     "workflow": {"start": "card", "steps": {"card": {"type": "send", "channel": "email", "message_id": 1}}}},
    {"name": "Went pro", "trigger": {"type": "attribute_changed", "field": "plan", "from": "free", "to": "pro"},
     "workflow": {"start": "hi", "steps": {"hi": {"type": "send", "channel": "webhook",
                                                 "content": {"url": "https://hooks.example.com/pro"}}}}},
    {"name": "Joined VIP", "trigger": {"type": "segment_entered", "segment_id": 1}, "audience": {"segment_id": 2},
     "exit": {"when_unmatched": True}, "workflow": {"start": "x", "steps": {"x": {"type": "exit"}}}},
    {"name": "Left VIP", "trigger": {"type": "segment_exited", "segment_id": 1},
     "goal": {"segment_entered": 1}, "workflow": {"start": None, "steps": {}}},
    {"name": "Account changed", "trigger": {"type": "object_changed", "object_type_id": 1, "actions": ["updated"]},
     "workflow": {"start": "x", "steps": {"x": {"type": "exit"}}}},
    {"name": "Joined a team", "trigger": {"type": "relationship_changed", "object_type_id": "teams"},
     "workflow": {"start": "x", "steps": {"x": {"type": "exit"}}}},
    {"name": "Form posted", "trigger": {"type": "webhook"},
     "workflow": {"start": "x", "steps": {"x": {"type": "exit"}}}},
    {"name": "Spring sale", "type": "broadcast", "description": "Sent through the API",
     "audience": {"and": [PRO, {"not": {"attribute": {"field": "unsubscribed", "operator": "eq", "value": True}}}]},
     "workflow": {"start": "sale", "steps": {"sale": {"type": "send", "channel": "email",
                                                      "content": {"subject": "Sale", "body": "{{ trigger.code }}"}}}}},
    {"name": "Newsletter A/B", "type": "broadcast", "description": "Variants to 20 %, the best on opens to the rest",
     "workflow": {"start": "issue", "steps": {"issue": {
         "type": "send", "channel": "email", "content": {"subject": "This week", "body": "{{ trigger.issue }}"},
         "variants": [{"key": "A", "content": {}},
                      {"key": "B", "content": {"subject": "5 things this week"}},
                      {"key": "C", "channel": "sms", "content": {"body": "This week: {{ trigger.url }}"}}],
         "winner": {"metric": "clicked", "auto": False},
         "sample": {"percent": 20, "wait": {"hours": 4}}}}}},
]


# --- the document ---------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _document() -> dict:
    triggers = _triggers()
    steps = _steps()
    not_api = [ref(f"trigger_{kind}") for kind in d.TRIGGER_TYPES if kind not in d.BROADCAST_TRIGGERS]
    defs = {
        "step_key": STEP_KEY,
        "duration": _duration(),
        "condition": _condition(),
        "filters": {"type": "array", "maxItems": 50, "items": ref("filter")},
        "filter": _filter(),
        "event_spec": _event_spec(),
        "keywords": {"type": "array", "maxItems": 50, "items": text(100, pattern=r"\S")},
        "attributes": {"type": "object", "minProperties": 1, "maxProperties": 100,
                       "propertyNames": {"minLength": 1, "maxLength": 150},
                       "description": "Attribute values; every string in them is a Liquid template."},
        **{f"trigger_{kind}": schema for kind, schema in triggers.items()},
        "trigger": {"oneOf": [ref(f"trigger_{kind}") for kind in d.TRIGGER_TYPES]},
        "audience": _audience(),
        "re_entry": _re_entry(),
        "exit": _exit(),
        "goal": _goal(),
        **{f"step_{kind}": schema for kind, schema in steps.items()},
        "step": {"oneOf": [ref(f"step_{kind}") for kind in d.STEP_TYPES]},
        "workflow": _workflow(),
    }
    properties = {
        "key": optional({"type": "string", "maxLength": 100,
                         "description": "A stable key (`ulak campaigns apply` creates or updates by it)."}),
        "name": text(150),
        "description": optional({"type": "string", "maxLength": 10000}),
        "type": {"enum": ["triggered", "broadcast"], "default": "triggered"},
        "trigger": {"anyOf": [ref("trigger"), NULL, EMPTY_OBJECT],
                    "description": "What starts a run; broadcasts: {\"type\": \"api\"} (the default)."},
        "audience": ref("audience"),
        "re_entry": ref("re_entry"),
        "exit": ref("exit"),
        "goal": ref("goal"),
        "journey_key": optional({"type": "string", "maxLength": 150,
                                 "description": "A trigger-data field: each of its values gets its own run."}),
        "workflow": ref("workflow"),
        # Delivery rules (docs/journeys.md "Delivery rules"; the workspace's own are at /v1/delivery_rules).
        "priority": {"anyOf": [{"type": "integer", "minimum": -1000, "maximum": 1000}, NULL], "default": 0,
                     "description": "Under a frequency cap, a higher-priority campaign's send goes first."},
        "exempt_from_caps": {"anyOf": [{"type": "boolean"}, NULL], "default": False,
                             "description": "Its sends ignore the workspace's frequency caps."},
        "when_capped": {"anyOf": [{"enum": ["wait", "skip"]}, NULL], "default": "wait",
                        "description": "A send a cap stops: wait for the next allowed slot, or skip it."},
        "when_quiet": {"anyOf": [{"enum": ["hold", "skip"]}, NULL], "default": "hold",
                       "description": "A send in the person's quiet hours: hold it until they end, or skip it."},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Ulak campaign definition",
        "description": "A campaign as `POST /v1/campaigns` and `PUT /v1/campaigns/{id}` take it and `ulak campaigns "
                       "apply` reads it. The API checks more than this schema (steps named exist, templates parse, "
                       "referenced rows are the workspace's own) and names each problem by its field path.",
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": properties,
        "allOf": [{
            "if": {"properties": {"type": {"const": "broadcast"}}, "required": ["type"]},
            "then": {"properties": {"trigger": {"anyOf": [NULL, EMPTY_OBJECT, ref("trigger_api")]}}},
            "else": {"required": ["trigger"], "properties": {
                "trigger": {"oneOf": not_api},
                # A sample test is for broadcasts.
                "workflow": {"properties": {"steps": {"additionalProperties": {
                    "not": {"required": ["sample"], "properties": {"sample": {"type": "object"}}}}}}},
            }},
        }],
        "$defs": defs,
        "examples": EXAMPLES,
    }


def definition_schema() -> dict:
    """The JSON Schema document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


def trigger_types() -> set[str]:
    """The trigger types the schema knows (for the agreement test)."""
    return {schema["properties"]["type"]["const"] for name, schema in _document()["$defs"].items()
            if name.startswith("trigger_")}


def step_types() -> set[str]:
    return {schema["properties"]["type"]["const"] for name, schema in _document()["$defs"].items()
            if name.startswith("step_") and name != "step_key"}
