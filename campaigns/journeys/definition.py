"""A campaign's definition checked and normalized: trigger, audience, re-entry, exit, goal and the
workflow (docs/journeys.md has the format; `schema.py` publishes it as JSON Schema).

`clean_definition` collects every error it finds, each naming its field path (`workflow.steps.
welcome.content.subject`), and raises them together as InvalidFields: activation shows them all at
once. `check_activation` adds what only matters for a live campaign (a configured channel for every
send step, every step reachable).
"""

from __future__ import annotations

import re
from datetime import time as dt_time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.journeys import rules
from channels.configs import NoChannelConfig, config_for
from channels.content import templating
from channels.models import ChannelType
from channels.providers.whatsapp import buttons_problem
from core.errors import InvalidFields, InvalidInput
from profiles.segments import conditions
from profiles.segments.filters import validate_filters

STEP_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_STEPS = 200
DURATION_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
MAX_DURATION = 366 * 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEND_CHANNELS = tuple(ChannelType.values)
REPLY_CHANNELS = (ChannelType.SMS, ChannelType.WHATSAPP)
MAX_TEXT = 100_000

TRIGGER_TYPES = ("event", "segment_entered", "segment_exited", "attribute_changed", "date", "inbound_message",
                 "object_changed", "relationship_changed", "webhook", "api")
BROADCAST_TRIGGERS = ("api",)
STEP_TYPES = ("send", "delay", "time_window", "wait_until", "branch", "split", "random_split", "wait_for_reply",
              "update_attributes", "update_object", "webhook", "exit")
# Outcome fields of each step type that name another step (besides `next`).
OUTCOMES = {"branch": ("yes", "no"), "wait_until": ("matched", "timeout"), "split": ("else",),
            "wait_for_reply": ("else", "timeout")}
ON_FAILURE = ("exit", "continue", "retry")
COMMON_KEYS = {"type", "name", "next", "only_if", "on_failure"}
# Steps that choose the next step themselves (no `next`, no `only_if`).
BRANCHING_STEPS = ("branch", "split", "random_split", "wait_until", "wait_for_reply")


class Errors:
    """Collects InvalidInput errors by field path; `check` runs a validator and keeps its error."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def check(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            self.items.append({"field": exc.field, "message": exc.message})
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidFields(self.items)


# --- small values -------------------------------------------------------------------------------------

def duration(value, path: str) -> int:
    """{"minutes": 30} → seconds (one unit, a whole positive number, at most a year)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise InvalidInput(path, "must be one of {\"seconds\"|\"minutes\"|\"hours\"|\"days\"|\"weeks\": N}")
    unit, amount = next(iter(value.items()))
    if unit not in DURATION_UNITS:
        raise InvalidInput(f"{path}.{unit}", f"unknown unit; use {', '.join(DURATION_UNITS)}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidInput(f"{path}.{unit}", "must be a whole number above 0")
    seconds = amount * DURATION_UNITS[unit]
    if seconds > MAX_DURATION:
        raise InvalidInput(f"{path}.{unit}", "must be at most 366 days")
    return seconds


def seconds(value: dict) -> int:
    """The seconds of a duration already checked by `duration`."""
    unit, amount = next(iter(value.items()))
    return amount * DURATION_UNITS[unit]


def clock(value, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise InvalidInput(path, "must be a time of day, HH:MM")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 23 or minutes > 59:
        raise InvalidInput(path, "must be a time of day, 00:00 to 23:59")
    return value


def parse_clock(value: str) -> dt_time:
    return dt_time(int(value[:2]), int(value[3:]))


def time_zone(value, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput(path, "must be an IANA time zone, e.g. Europe/Istanbul")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(path, "is not a known IANA time zone") from None
    return value


def text(body: dict, key: str, path: str, *, required: bool = True, max_length: int = 255) -> str | None:
    value = body.get(key)
    field = f"{path}.{key}" if path else key
    if value is None or value == "":
        if required:
            raise InvalidInput(field, "is required")
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidInput(field, f"must be a string of at most {max_length} characters")
    return value


def condition(tree, path: str, workspace) -> dict:
    """A condition tree of the segment condition language (profiles/segments)."""
    try:
        return conditions.validate(tree, workspace=workspace)
    except InvalidInput as exc:
        field = exc.field or "conditions"
        suffix = field[len("conditions"):] if field.startswith("conditions") else f".{field}"
        raise InvalidInput(f"{path}{suffix}", exc.message) from None


def event_filters(body: dict, path: str) -> list:
    return validate_filters(body, "filters", path)


def template(value, path: str) -> None:
    try:
        templating.validate(value, field=path)
    except templating.TemplateError as exc:
        raise InvalidInput(path, exc.describe(with_field=False)) from None


def templates_in(value, path: str, depth: int = 0) -> None:
    """Every string in `value` (a JSON value) must be a valid Liquid template."""
    if depth > 8:
        raise InvalidInput(path, "is nested too deep")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise InvalidInput(path, f"must be at most {MAX_TEXT} characters")
        template(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            templates_in(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            templates_in(item, f"{path}.{i}", depth + 1)


def unknown_keys(body: dict, allowed, path: str) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"{path}.{key}", f"unknown field; use {', '.join(sorted(allowed))}")


def positive_id(value, path: str, what: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise InvalidInput(path, f"must be {what} id")
    return value


# --- trigger, audience, re-entry, exit, goal ----------------------------------------------------------

def clean_trigger(body, path: str, *, campaign_type: str, workspace) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object with a type")
    kind = body.get("type")
    allowed = BROADCAST_TRIGGERS if campaign_type == "broadcast" else tuple(t for t in TRIGGER_TYPES if t != "api")
    if kind not in allowed:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(allowed)}")
    out: dict = {"type": kind}
    if kind == "event":
        unknown_keys(body, {"type", "name", "filters", "max_age_hours"}, path)
        out["name"] = text(body, "name", path)
        out["filters"] = event_filters(body, path)
    elif kind in ("segment_entered", "segment_exited"):
        unknown_keys(body, {"type", "segment_id"}, path)
        out["segment_id"] = _segment(body.get("segment_id"), f"{path}.segment_id", workspace)
    elif kind == "attribute_changed":
        unknown_keys(body, {"type", "field", "from", "to"}, path)
        out["field"] = text(body, "field", path, max_length=150)
        for key in ("from", "to"):
            if key in body:
                if not isinstance(body[key], (str, int, float, bool)) and body[key] is not None:
                    raise InvalidInput(f"{path}.{key}", "must be a string, number, boolean or null")
                out[key] = body[key]
    elif kind == "date":
        unknown_keys(body, {"type", "attribute", "offset", "at", "yearly"}, path)
        out["attribute"] = text(body, "attribute", path, max_length=150)
        offset = body.get("offset") or {"days": 0}
        _offset_days(offset, f"{path}.offset")
        out["offset"] = offset
        out["at"] = clock(body.get("at", "09:00"), f"{path}.at")
        if not isinstance(body.get("yearly", False), bool):
            raise InvalidInput(f"{path}.yearly", "must be true or false")
        out["yearly"] = body.get("yearly", False)
    elif kind == "inbound_message":
        unknown_keys(body, {"type", "channel", "keywords"}, path)
        if body.get("channel") is not None:
            if body["channel"] not in REPLY_CHANNELS:
                raise InvalidInput(f"{path}.channel", "must be sms or whatsapp")
            out["channel"] = body["channel"]
        out["keywords"] = _keywords(body.get("keywords", []), f"{path}.keywords")
    elif kind in ("object_changed", "relationship_changed"):
        unknown_keys(body, {"type", "object_type_id", "actions"}, path)
        out["object_type_id"] = str(text(body, "object_type_id", path, max_length=64) if not isinstance(
            body.get("object_type_id"), int) else body["object_type_id"])
        actions = ("created", "updated", "deleted") if kind == "object_changed" else ("added", "updated", "removed")
        chosen = body.get("actions", list(actions))
        if not isinstance(chosen, list) or not chosen or any(a not in actions for a in chosen):
            raise InvalidInput(f"{path}.actions", f"must be a non-empty list of {', '.join(actions)}")
        out["actions"] = sorted(set(chosen))
    elif kind in ("webhook", "api"):
        unknown_keys(body, {"type"}, path)
    if kind == "event" and "max_age_hours" in body:
        hours = body["max_age_hours"]
        if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 72:
            raise InvalidInput(f"{path}.max_age_hours", "must be a whole number of hours from 1 to 72")
        out["max_age_hours"] = hours
    return out


def _segment(value, path: str, workspace) -> int:
    from profiles.models import Segment

    segment_id = positive_id(value, path, "a segment")
    if workspace is not None and not Segment.objects.for_workspace(workspace).filter(pk=segment_id).exists():
        raise InvalidInput(path, "no segment of this workspace has this id")
    return segment_id


def _offset_days(value, path: str) -> int:
    if not isinstance(value, dict) or set(value) != {"days"} or not isinstance(value["days"], int) \
            or isinstance(value["days"], bool) or not -366 <= value["days"] <= 366:
        raise InvalidInput(path, "must be {\"days\": N}, N from -366 to 366 (negative: before the date)")
    return value["days"]


def _keywords(value, path: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 50:
        raise InvalidInput(path, "must be a list of at most 50 keywords")
    out = []
    for i, word in enumerate(value):
        if not isinstance(word, str) or not word.strip() or len(word) > 100:
            raise InvalidInput(f"{path}.{i}", "must be a non-empty word of at most 100 characters")
        out.append(word.strip().casefold())
    return out


def clean_audience(body, path: str, workspace) -> dict | None:
    """null (everybody), {"segment_id": N} or a condition tree."""
    if body is None or body == {}:
        return None
    if isinstance(body, dict) and set(body) == {"segment_id"}:
        return {"segment": {"id": _segment(body["segment_id"], f"{path}.segment_id", workspace)}}
    return condition(body, path, workspace)


def clean_re_entry(body, path: str) -> dict:
    """{"mode": "once" | "always" | "after", "after": duration, "concurrent": bool}."""
    if body is None or body == {}:
        return {"mode": "once", "concurrent": False}
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object")
    unknown_keys(body, {"mode", "after", "concurrent"}, path)
    mode = body.get("mode", "once")
    if mode not in ("once", "always", "after"):
        raise InvalidInput(f"{path}.mode", "must be once, always or after")
    out = {"mode": mode, "concurrent": body.get("concurrent", False)}
    if not isinstance(out["concurrent"], bool):
        raise InvalidInput(f"{path}.concurrent", "must be true or false")
    if out["concurrent"] and mode == "once":
        raise InvalidInput(f"{path}.concurrent", "needs mode always or after")
    if mode == "after":
        duration(body.get("after"), f"{path}.after")
        out["after"] = body["after"]
    elif "after" in body:
        raise InvalidInput(f"{path}.after", "is only for mode after")
    return out


def clean_exit(body, path: str) -> dict:
    """{"when_unmatched": bool, "events": [names], "on_goal": bool}."""
    if body is None or body == {}:
        return {"when_unmatched": False, "events": [], "on_goal": False}
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object")
    unknown_keys(body, {"when_unmatched", "events", "on_goal"}, path)
    out = {"when_unmatched": body.get("when_unmatched", False), "on_goal": body.get("on_goal", False)}
    for key in ("when_unmatched", "on_goal"):
        if not isinstance(out[key], bool):
            raise InvalidInput(f"{path}.{key}", "must be true or false")
    events = body.get("events", [])
    if not isinstance(events, list) or len(events) > 20:
        raise InvalidInput(f"{path}.events", "must be a list of at most 20 event names")
    for i, name in enumerate(events):
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidInput(f"{path}.events.{i}", "must be an event name")
    out["events"] = list(dict.fromkeys(events))
    return out


def clean_goal(body, path: str, workspace) -> dict | None:
    """{"event": {"name", "filters"}} or {"segment_entered": id} or {"segment_exited": id}, with
    "within": duration after a message (default 7 days)."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object")
    unknown_keys(body, {"event", "segment_entered", "segment_exited", "within"}, path)
    kinds = [k for k in ("event", "segment_entered", "segment_exited") if k in body]
    if len(kinds) != 1:
        raise InvalidInput(path, "give exactly one of event, segment_entered, segment_exited")
    out: dict = {"within": body.get("within", {"days": 7})}
    duration(out["within"], f"{path}.within")
    if kinds[0] == "event":
        event = body["event"]
        if not isinstance(event, dict):
            raise InvalidInput(f"{path}.event", "must be {\"name\": ..., \"filters\": [...]}")
        unknown_keys(event, {"name", "filters"}, f"{path}.event")
        out["event"] = {"name": text(event, "name", f"{path}.event"),
                        "filters": event_filters(event, f"{path}.event")}
    else:
        out[kinds[0]] = _segment(body[kinds[0]], f"{path}.{kinds[0]}", workspace)
    return out


# --- the workflow ----------------------------------------------------------------------------------------

def clean_workflow(body, errors: Errors, workspace, path: str = "workflow") -> dict:
    if not isinstance(body, dict):
        errors.add(path, "must be {\"start\": \"<step key>\", \"steps\": {...}}")
        return {"start": None, "steps": {}}
    for key in body:
        if key not in ("start", "steps"):
            errors.add(f"{path}.{key}", "unknown field; use start and steps")
    steps = body.get("steps", {})
    if not isinstance(steps, dict):
        errors.add(f"{path}.steps", "must be an object of steps by key")
        steps = {}
    if len(steps) > MAX_STEPS:
        errors.add(f"{path}.steps", f"at most {MAX_STEPS} steps")
    out_steps = {}
    for key, step in steps.items():
        if not STEP_KEY.match(key):
            errors.add(f"{path}.steps.{key}", "a step key is 1 to 64 letters, digits, _ or -")
            continue
        cleaned = errors.check(clean_step, step, f"{path}.steps.{key}", workspace)
        if cleaned is not None:
            out_steps[key] = cleaned
    start = body.get("start")
    if steps and start is None:
        errors.add(f"{path}.start", "is required: the key of the first step")
    elif start is not None and start not in steps:
        errors.add(f"{path}.start", "names no step of this workflow")
    for key, step in out_steps.items():
        for field, target in next_keys(step):
            if target is not None and target not in steps:
                errors.add(f"{path}.steps.{key}.{field}", f"names no step of this workflow: {target!r}")
            if target == key:
                errors.add(f"{path}.steps.{key}.{field}", "a step cannot lead to itself")
    return {"start": start, "steps": out_steps}


def next_keys(step: dict) -> list[tuple[str, str | None]]:
    """(field path within the step, step key) of every step this one can lead to."""
    out = [("next", step.get("next"))] if "next" in step else []
    for field in OUTCOMES.get(step["type"], ()):
        out.append((field, step.get(field)))
    for i, branch in enumerate(step.get("branches", ())):
        out.append((f"branches.{i}.next", branch.get("next")))
    for i, cohort in enumerate(step.get("cohorts", ())):
        out.append((f"cohorts.{i}.next", cohort.get("next")))
    return out


def _next(body: dict, key: str, path: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not STEP_KEY.match(value):
        raise InvalidInput(f"{path}.{key}", "must be a step key")
    return value


def clean_step(body, path: str, workspace) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object with a type")
    kind = body.get("type")
    if kind not in STEP_TYPES:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(STEP_TYPES)}")
    out: dict = {"type": kind}
    if body.get("name") is not None:
        out["name"] = text(body, "name", path, max_length=150)
    if body.get("only_if") is not None:
        if kind in BRANCHING_STEPS:
            raise InvalidInput(f"{path}.only_if", f"a {kind} step chooses its own way; put a branch before it")
        out["only_if"] = condition(body["only_if"], f"{path}.only_if", workspace)
    policy = body.get("on_failure", "exit")
    if policy not in ON_FAILURE:
        raise InvalidInput(f"{path}.on_failure", f"must be one of {', '.join(ON_FAILURE)}")
    out["on_failure"] = policy
    specific = STEP_CLEANERS[kind](body, path, workspace)
    unknown_keys(body, COMMON_KEYS | set(specific.pop("_allowed", ())), path)
    out.update(specific)
    if kind not in BRANCHING_STEPS and (kind != "exit" or "only_if" in out):
        # An exit step has a `next` only for the people its `only_if` skips.
        out["next"] = _next(body, "next", path)
    elif "next" in body and body["next"] is not None:
        raise InvalidInput(f"{path}.next", f"a {kind} step names its outcomes instead" if kind != "exit"
                           else "an exit step ends the journey (a `next` is for the people its only_if skips)")
    return out


def channel_content(content, path: str, channel: str) -> dict:
    """A whole message's content for `channel` (a send step's, or a channel variant's, which stands
    alone): the channel's required fields, WhatsApp buttons, every string a valid template."""
    if not isinstance(content, dict) or not content:
        raise InvalidInput(path, "must be an object of the message's fields")
    required = {"email": ("subject", "body"), "sms": ("body",), "whatsapp": (), "push": ("body",),
                "in_app": (), "webhook": ("url",)}[channel]
    for key in required:
        if not content.get(key):
            article = "an" if channel[0] in "aeiou" else "a"
            raise InvalidInput(f"{path}.{key}", f"is required for {article} {channel} message")
    if channel == "whatsapp" and not (content.get("body") or content.get("template")):
        raise InvalidInput(f"{path}.body", "a WhatsApp message needs a body or a template")
    if "buttons" in content:
        problem = buttons_problem(content["buttons"], templates=True) if channel == "whatsapp" else \
            "reply buttons are for WhatsApp messages"
        if problem:
            raise InvalidInput(f"{path}.buttons", problem)
    templates_in(content, path)
    return content


def _send(body, path, workspace):
    channel = body.get("channel")
    if channel not in SEND_CHANNELS:
        raise InvalidInput(f"{path}.channel", f"must be one of {', '.join(SEND_CHANNELS)}")
    out: dict = {"_allowed": ("channel", "content", "message_id", "channel_config_id", "topic", "tracked",
                              "variants", "holdout", "winner", "sample"),
                 "channel": channel}
    if ("content" in body) == ("message_id" in body):
        raise InvalidInput(path, "give content or message_id (one of them)")
    if "content" in body:
        out["content"] = channel_content(body["content"], f"{path}.content", channel)
    else:
        from campaigns.models import TransactionalMessage

        message_id = positive_id(body["message_id"], f"{path}.message_id", "a message")
        message = TransactionalMessage.objects.for_workspace(workspace).filter(pk=message_id).first() \
            if workspace is not None else None
        if workspace is not None and message is None:
            raise InvalidInput(f"{path}.message_id", "no message of this workspace has this id")
        if message is not None and message.channel != channel:
            raise InvalidInput(f"{path}.message_id", f"is a {message.channel} message, not {channel}")
        out["message_id"] = message_id
    if any(body.get(key) is not None for key in ("variants", "holdout", "winner", "sample")):
        out.update(_variants(body, path, channel, workspace))
    if body.get("channel_config_id") is not None:
        out["channel_config_id"] = _config(body["channel_config_id"], f"{path}.channel_config_id", channel, workspace)
    if body.get("topic") is not None:
        from channels.models import SubscriptionTopic

        topic = text(body, "topic", path, max_length=100)
        if workspace is not None and not SubscriptionTopic.objects.for_workspace(workspace).filter(key=topic).exists():
            raise InvalidInput(f"{path}.topic", "no subscription topic of this workspace has this key")
        out["topic"] = topic
    if "tracked" in body:
        if not isinstance(body["tracked"], bool):
            raise InvalidInput(f"{path}.tracked", "must be true or false")
        out["tracked"] = body["tracked"]
    return out


VARIANT_KEY = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


def _variants(body, path: str, channel: str, workspace=None) -> dict:
    """A/B variants of a send step: 2 to 8 of {"key", "weight", "content"} (a variant's content
    overrides the step's content field by field; the first variant is the control), and an optional
    holdout ({"weight": N}: people who get nothing, tracked for conversion). A variant may name its
    own `channel` (and `channel_config_id`): on another channel than the step's its content is the
    whole message, checked as that channel's. A broadcast's step may test on a `sample` first."""
    out, keys = [], set()
    base = body.get("content") or {}
    for variant, vpath in _objects(body, "variants", path, 2, 8, VARIANT_FIELDS):
        key = variant.get("key")
        if not isinstance(key, str) or not VARIANT_KEY.match(key) or key == "holdout":
            raise InvalidInput(f"{vpath}.key", "must be 1 to 20 letters, digits, _ or - (not holdout)")
        if key in keys:
            raise InvalidInput(f"{vpath}.key", "another variant has this key")
        keys.add(key)
        share = weight(variant.get("weight", 1), f"{vpath}.weight")
        own = variant.get("channel")
        if own is not None and own not in SEND_CHANNELS:
            raise InvalidInput(f"{vpath}.channel", f"must be one of {', '.join(SEND_CHANNELS)}")
        item: dict = {"key": key, "weight": share}
        if own is not None and own != channel:
            # Another channel: the variant's content is the whole message (nothing of the step's fits it).
            content = channel_content(variant.get("content"), f"{vpath}.content", own)
        else:
            content = variant.get("content") or {}
            if not isinstance(content, dict):
                raise InvalidInput(f"{vpath}.content", "must be an object of the fields this variant changes")
            templates_in(content, f"{vpath}.content")
            if body.get("content") is not None and channel == "email":
                for field in ("subject", "body"):
                    if not {**base, **content}.get(field):
                        raise InvalidInput(f"{vpath}.content.{field}", "is required for an email message")
        item["content"] = content
        if own is not None:
            item["channel"] = own
        if variant.get("channel_config_id") is not None:
            item["channel_config_id"] = _config(variant["channel_config_id"], f"{vpath}.channel_config_id",
                                                own or channel, workspace)
        out.append(item)
    result: dict = {"variants": out}
    holdout = body.get("holdout")
    if holdout is not None:
        if not isinstance(holdout, dict) or set(holdout) != {"weight"}:
            raise InvalidInput(f"{path}.holdout", "must be {\"weight\": N}, N from 1 to 10000")
        result["holdout"] = {"weight": weight(holdout["weight"], f"{path}.holdout.weight")}
    if body.get("winner") is not None:
        result["winner"] = _winner(body["winner"], f"{path}.winner")
    if body.get("sample") is not None:
        result["sample"] = _sample(body["sample"], f"{path}.sample", has_winner="winner" in result)
    return result


VARIANT_FIELDS = ("key", "weight", "content", "channel", "channel_config_id")


def _config(value, path: str, channel: str, workspace) -> int:
    from channels.models import ChannelConfig

    config_id = positive_id(value, path, "a channel configuration")
    if workspace is not None and not ChannelConfig.objects.for_workspace(workspace).filter(
            pk=config_id, type=channel).exists():
        raise InvalidInput(path, f"no {channel} configuration of this workspace has this id")
    return config_id


SAMPLE_SHAPE = "must be {\"percent\": 1 to 99, \"wait\": {\"hours\": N}}"


def _sample(body, path: str, *, has_winner: bool) -> dict:
    """A broadcast A/B test on a sample ({"percent", "wait"}): that share of each trigger's
    recipients gets the variants at once, the others wait `wait` (from when the recipients were
    fixed) and then get the variant that did best on the winner's metric in that sample
    (campaigns/journeys/broadcast_ab.py). Broadcasts only (clean_definition checks the type)."""
    if not isinstance(body, dict):
        raise InvalidInput(path, SAMPLE_SHAPE)
    unknown_keys(body, ("percent", "wait"), path)
    percent = body.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
        raise InvalidInput(f"{path}.percent", "must be a whole number from 1 to 99")
    duration(body.get("wait"), f"{path}.wait")
    if not has_winner:
        raise InvalidInput(path, "needs a winner naming the metric the sample is judged on: "
                                 "\"winner\": {\"metric\": \"opened\" | \"clicked\" | \"converted\"}")
    return {"percent": percent, "wait": body["wait"]}


WINNER_METRICS = ("opened", "clicked", "converted")


def _winner(body, path: str) -> dict:
    """The automatic winner of an A/B test ({"metric", "confidence", "min_per_variant", "auto"}):
    campaigns/journeys/experiments.py picks it with an always-valid sequential test (docs/experiments.md)."""
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be an object: {\"metric\", \"confidence\", \"min_per_variant\", \"auto\"}")
    unknown_keys(body, ("metric", "confidence", "min_per_variant", "auto"), path)
    metric = body.get("metric")
    if metric not in WINNER_METRICS:
        raise InvalidInput(f"{path}.metric", f"must be one of {', '.join(WINNER_METRICS)}")
    confidence = body.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.8 <= confidence <= 0.999:
        raise InvalidInput(f"{path}.confidence", "must be a number from 0.8 to 0.999")
    minimum = body.get("min_per_variant", 100)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 10 <= minimum <= 10_000_000:
        raise InvalidInput(f"{path}.min_per_variant", "must be a whole number from 10 to 10000000")
    auto = body.get("auto", True)
    if not isinstance(auto, bool):
        raise InvalidInput(f"{path}.auto", "must be true or false")
    return {"metric": metric, "confidence": float(confidence), "min_per_variant": minimum, "auto": auto}


def _delay(body, path, workspace):
    duration(body.get("duration"), f"{path}.duration")
    return {"_allowed": ("duration",), "duration": body["duration"]}


def _time_window(body, path, workspace):
    days = body.get("days", list(WEEKDAYS))
    if not isinstance(days, list) or not days or any(d not in WEEKDAYS for d in days):
        raise InvalidInput(f"{path}.days", f"must be a non-empty list of {', '.join(WEEKDAYS)}")
    start, end = clock(body.get("start"), f"{path}.start"), clock(body.get("end"), f"{path}.end")
    if start == end:
        raise InvalidInput(f"{path}.end", "must differ from start (a window from 22:00 to 06:00 spans midnight)")
    out = {"_allowed": ("days", "start", "end", "time_zone"), "days": [d for d in WEEKDAYS if d in days],
           "start": start, "end": end}
    if body.get("time_zone") is not None:
        out["time_zone"] = time_zone(body["time_zone"], f"{path}.time_zone")
    return out


def _event_spec(body, path) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput(path, "must be {\"name\": ..., \"filters\": [...]}")
    unknown_keys(body, {"name", "filters"}, path)
    return {"name": text(body, "name", path), "filters": event_filters(body, path)}


def _wait_until(body, path, workspace):
    out: dict = {"_allowed": ("condition", "event", "within", "matched", "timeout")}
    if ("condition" in body) == ("event" in body):
        raise InvalidInput(path, "give condition or event (one of them)")
    if "condition" in body:
        out["condition"] = condition(body["condition"], f"{path}.condition", workspace)
    else:
        out["event"] = _event_spec(body["event"], f"{path}.event")
    duration(body.get("within"), f"{path}.within")
    out["within"] = body["within"]
    out["matched"], out["timeout"] = _next(body, "matched", path), _next(body, "timeout", path)
    return out


def _branch(body, path, workspace):
    if "condition" not in body:
        raise InvalidInput(f"{path}.condition", "is required")
    return {"_allowed": ("condition", "yes", "no"), "condition": condition(body["condition"], f"{path}.condition",
                                                                          workspace),
            "yes": _next(body, "yes", path), "no": _next(body, "no", path)}


def _objects(body: dict, key: str, path: str, low: int, high: int, fields: tuple[str, ...]):
    """(item, its path) of the list `body[key]`: low to high objects with only `fields`."""
    items = body.get(key)
    shape = "{" + ", ".join(f'"{field}"' for field in fields) + "}"
    if not isinstance(items, list) or not low <= len(items) <= high:
        raise InvalidInput(f"{path}.{key}", f"must be a list of {low} to {high} {shape}")
    for i, item in enumerate(items):
        ipath = f"{path}.{key}.{i}"
        if not isinstance(item, dict):
            raise InvalidInput(ipath, f"must be {shape}")
        unknown_keys(item, set(fields), ipath)
        yield item, ipath


def weight(value, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 10000:
        raise InvalidInput(path, "must be a whole number from 1 to 10000")
    return value


def _split(body, path, workspace):
    branches = [{"condition": condition(branch.get("condition"), f"{bpath}.condition", workspace),
                 "next": _next(branch, "next", bpath)}
                for branch, bpath in _objects(body, "branches", path, 1, 20, ("condition", "next"))]
    return {"_allowed": ("branches", "else"), "branches": branches, "else": _next(body, "else", path)}


def _random_split(body, path, workspace):
    cohorts = [{"weight": weight(cohort.get("weight"), f"{cpath}.weight"), "next": _next(cohort, "next", cpath)}
               for cohort, cpath in _objects(body, "cohorts", path, 2, 20, ("weight", "next"))]
    return {"_allowed": ("cohorts",), "cohorts": cohorts}


def _wait_for_reply(body, path, workspace):
    channel = body.get("channel")
    if channel not in REPLY_CHANNELS:
        raise InvalidInput(f"{path}.channel", "must be sms or whatsapp")
    branches = body.get("branches", [])
    if not isinstance(branches, list) or len(branches) > 20:
        raise InvalidInput(f"{path}.branches", "must be a list of at most 20 {\"keywords\" | \"pattern\", \"next\"}")
    duration(body.get("within"), f"{path}.within")
    out_branches = []
    for i, branch in enumerate(branches):
        bpath = f"{path}.branches.{i}"
        if not isinstance(branch, dict):
            raise InvalidInput(bpath, "must be an object")
        unknown_keys(branch, {"keywords", "pattern", "next"}, bpath)
        if ("keywords" in branch) == ("pattern" in branch):
            raise InvalidInput(bpath, "give keywords or pattern (one of them)")
        item: dict = {"next": _next(branch, "next", bpath)}
        if "keywords" in branch:
            item["keywords"] = _keywords(branch["keywords"], f"{bpath}.keywords")
            if not item["keywords"]:
                raise InvalidInput(f"{bpath}.keywords", "must name at least one keyword")
        else:
            pattern = text(branch, "pattern", bpath, max_length=500)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInput(f"{bpath}.pattern", f"is not a valid regular expression: {exc}") from None
            item["pattern"] = pattern
        out_branches.append(item)
    out = {"_allowed": ("channel", "within", "branches", "else", "timeout", "store_as", "event"),
           "channel": channel, "within": body.get("within"),
           "branches": out_branches, "else": _next(body, "else", path), "timeout": _next(body, "timeout", path)}
    if body.get("store_as") is not None:
        out["store_as"] = text(body, "store_as", path, max_length=150)
    out["event"] = text(body, "event", path, required=False) or "journey_reply"
    return out


def _attributes(value, path: str) -> dict:
    if not isinstance(value, dict) or not value or len(value) > 100:
        raise InvalidInput(path, "must be an object of 1 to 100 attributes")
    for key in value:
        if not key or len(key) > 150:
            raise InvalidInput(f"{path}.{key}", "an attribute name is 1 to 150 characters")
    templates_in(value, path)
    return value


def _update_attributes(body, path, workspace):
    return {"_allowed": ("attributes",), "attributes": _attributes(body.get("attributes"), f"{path}.attributes")}


def _update_object(body, path, workspace):
    type_id = body.get("object_type_id")
    if isinstance(type_id, int) and not isinstance(type_id, bool):
        type_id = str(type_id)
    if not isinstance(type_id, str) or not type_id:
        raise InvalidInput(f"{path}.object_type_id", "is required")
    object_id = text(body, "object_id", path, max_length=1000)
    template(object_id, f"{path}.object_id")
    relate = body.get("relate", True)
    if not isinstance(relate, bool):
        raise InvalidInput(f"{path}.relate", "must be true or false")
    return {"_allowed": ("object_type_id", "object_id", "attributes", "relate"), "object_type_id": type_id,
            "object_id": object_id, "attributes": _attributes(body.get("attributes"), f"{path}.attributes"),
            "relate": relate}


def _webhook(body, path, workspace):
    from channels.safe_http import obvious_problem

    url = text(body, "url", path, max_length=2000)
    template(url, f"{path}.url")
    if "{" not in url:
        problem = obvious_problem(url)
        if problem:
            raise InvalidInput(f"{path}.url", problem)
    method = str(body.get("method", "POST")).upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise InvalidInput(f"{path}.method", "must be GET, POST, PUT, PATCH or DELETE")
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or any(not isinstance(v, str) for v in headers.values()):
        raise InvalidInput(f"{path}.headers", "must be an object of strings")
    templates_in(headers, f"{path}.headers")
    out = {"_allowed": ("url", "method", "headers", "body", "store_as", "store_attributes"), "url": url,
           "method": method, "headers": headers}
    if "body" in body:
        templates_in(body["body"], f"{path}.body")
        out["body"] = body["body"]
    if body.get("store_as") is not None:
        out["store_as"] = text(body, "store_as", path, max_length=100)
    stored = body.get("store_attributes", {})
    if not isinstance(stored, dict) or any(not isinstance(v, str) for v in stored.values()):
        raise InvalidInput(f"{path}.store_attributes", "must be {\"attribute\": \"field of the response\"}")
    out["store_attributes"] = stored
    return out


def _exit(body, path, workspace):
    return {"_allowed": ()}


STEP_CLEANERS = {"send": _send, "delay": _delay, "time_window": _time_window, "wait_until": _wait_until,
                 "branch": _branch, "split": _split, "random_split": _random_split,
                 "wait_for_reply": _wait_for_reply, "update_attributes": _update_attributes,
                 "update_object": _update_object, "webhook": _webhook, "exit": _exit}


# --- the whole definition ----------------------------------------------------------------------------------

DEFINITION_FIELDS = ("key", "name", "description", "type", "trigger", "audience", "re_entry", "exit", "goal",
                     "journey_key", "workflow", "priority", "exempt_from_caps", "when_capped", "when_quiet")


def clean_definition(body, *, workspace, partial: bool = False, current: dict | None = None) -> dict:
    """The campaign fields of `body` (the App API / file shape) checked and normalized, as model
    field values. `partial`: only the fields given (the others come from `current`, a dict of the
    campaign's stored definition, for cross-field checks)."""
    if not isinstance(body, dict):
        raise InvalidInput(None, "must be a JSON object")
    errors = Errors()
    for key in body:
        if key not in DEFINITION_FIELDS:
            errors.add(key, f"unknown field; use {', '.join(DEFINITION_FIELDS)}")
    # A full definition stands alone; a partial one is checked together with the stored fields.
    merged = {**(current or {}), **body} if partial else body
    out: dict = {}
    kind = merged.get("type", "triggered")
    if kind not in ("triggered", "broadcast"):
        errors.add("type", "must be triggered or broadcast")
        kind = "triggered"
    if "type" in body or not partial:
        out["type"] = kind
    if "name" in body or not partial:
        name = errors.check(text, merged, "name", "", max_length=150)
        if name is None and not any(e["field"] == "name" for e in errors.items):
            errors.add("name", "is required")
        out["name"] = name
    for key, limit in (("key", 100), ("description", 10000), ("journey_key", 150)):
        if key in body or not partial:
            value = body.get(key)
            if value is None:
                out[key] = ""
            elif not isinstance(value, str) or len(value) > limit:
                errors.add(key, f"must be a string of at most {limit} characters")
            else:
                out[key] = value
    if "trigger" in body or "type" in body or not partial:
        default = {"type": "api"} if kind == "broadcast" else None
        trigger = merged.get("trigger") or default
        if trigger is None:
            errors.add("trigger", "is required: e.g. {\"type\": \"event\", \"name\": \"signed_up\"}")
        else:
            out["trigger"] = errors.check(clean_trigger, trigger, "trigger", campaign_type=kind, workspace=workspace)
    if "audience" in body or not partial:
        out["audience"] = errors.check(clean_audience, body.get("audience"), "audience", workspace)
    if "re_entry" in body or not partial:
        out["re_entry"] = errors.check(clean_re_entry, body.get("re_entry"), "re_entry")
    if "exit" in body or not partial:
        out["exit_rules"] = errors.check(clean_exit, body.get("exit"), "exit")
    if "goal" in body or not partial:
        out["goal"] = errors.check(clean_goal, body.get("goal"), "goal", workspace)
    if "workflow" in body or not partial:
        out["workflow"] = clean_workflow(body.get("workflow", {"start": None, "steps": {}}), errors, workspace)
    if kind != "broadcast":
        _no_samples(out.get("workflow") or (merged.get("workflow") if "type" in body else None), errors)
    out.update(rules.clean_campaign_fields(body, errors, partial=partial))  # delivery rules (rules.py)
    errors.raise_if_any()
    return out


def _no_samples(workflow, errors: Errors) -> None:
    """A sample test waits for the rest of one broadcast trigger's recipients: a triggered
    campaign's people come one by one, with nobody to wait for."""
    for key, step in ((workflow or {}).get("steps") or {}).items():
        if isinstance(step, dict) and step.get("sample") is not None:
            errors.add(f"workflow.steps.{key}.sample", "is for broadcasts (a triggered campaign has no sample to "
                                                       "wait for); use winner for an automatic winner")


def check_activation(campaign) -> None:
    """What a live campaign needs beyond a valid definition: a workflow with steps, every step
    reachable from the start, a channel configuration for every send step. Raises InvalidFields."""
    errors = Errors()
    workflow = campaign.workflow or {}
    steps = workflow.get("steps") or {}
    if not steps:
        errors.add("workflow.steps", "a campaign needs at least one step to be activated")
    if not campaign.trigger:
        errors.add("trigger", "is required")
    reachable: set[str] = set()
    pending = [workflow.get("start")] if workflow.get("start") else []
    while pending:
        key = pending.pop()
        if key in reachable or key not in steps:
            continue
        reachable.add(key)
        pending.extend(target for _, target in next_keys(steps[key]) if target)
    for key in steps:
        if key not in reachable:
            errors.add(f"workflow.steps.{key}", "is unreachable from the start step")
    for key, step in steps.items():
        if step["type"] == "send" and not step.get("channel_config_id"):
            try:
                config_for(campaign.workspace, step["channel"])
            except NoChannelConfig:
                errors.add(f"workflow.steps.{key}.channel", f"no active {step['channel']} configuration: add one "
                                                             "or name channel_config_id")
        for i, variant in enumerate(step.get("variants") or ()):
            # A channel variant sends through its own channel's configuration.
            own = variant.get("channel") or step["channel"]
            if own == step["channel"] or variant.get("channel_config_id"):
                continue
            try:
                config_for(campaign.workspace, own)
            except NoChannelConfig:
                errors.add(f"workflow.steps.{key}.variants.{i}.channel",
                           f"no active {own} configuration: add one or name channel_config_id")
    errors.raise_if_any()
