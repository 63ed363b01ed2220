"""A plain-Python evaluation of a (validated) condition tree for one person: the executable
specification that tests compare `conditions.matching` against. Not used in production.

    evaluate(tree, person, events, objects, memberships, now, deliveries=(), topics=None) -> bool

person: dict with email, phone, external_id, cio_id, attributes, unsubscribed, suppressed,
created_at (aware datetime), devices (how many push devices) and, optionally, topic_preferences
({topic key: subscribed} of their topic-wide preferences, channel '');
events: that person's events in the workspace, dicts with name, data, timestamp;
objects: (object_type_id, object attributes, relationship attributes) for each relationship;
memberships: the ids of the segments the person is currently a member of;
deliveries: that person's deliveries in the workspace, dicts with channel, source, source_id,
transactional_message_id, status and the action times (sent_at, delivered_at, opened_at,
clicked_at, converted_at, failed_at; None when it did not happen);
topics: the workspace's subscription topics, {key: default_subscribed}.
"""

import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from profiles.segments.conditions import (
    ISO_RE, MESSAGE_ACTION_STATUSES, MESSAGE_ACTIONS, NUMBER_RE, TEXT_COLUMNS, WINDOW_UNITS, anniversary_days,
    parse_time, validate,
)

SOURCE_OF_SELECTOR = {"campaign_id": "campaign", "broadcast_id": "broadcast"}


def evaluate(tree, person, events, objects, memberships, now, deliveries=(), topics=None) -> bool:
    world = {"deliveries": list(deliveries), "topics": topics or {}}
    return _node(validate(tree), person, events, objects, memberships, now, world)


def _node(node, person, events, objects, memberships, now, world):
    (kind, body), = node.items()
    recurse = lambda child: _node(child, person, events, objects, memberships, now, world)  # noqa: E731
    if kind == "and":
        return all(recurse(child) for child in body)
    if kind == "or":
        return any(recurse(child) for child in body)
    if kind == "not":
        return not recurse(body)
    if kind == "attribute":
        return _profile_filter(person, body, now)
    if kind == "event":
        return _event(body, events, now)
    if kind == "object":
        return any(
            type_id == body["object_type_id"]
            and all(_filter(_Value(attrs.get(f["field"])), f, now) for f in body["filters"])
            and all(_filter(_Value(rel.get(f["field"])), f, now) for f in body["relationship_filters"])
            for type_id, attrs, rel in objects
        )
    if kind == "segment":
        return (body["id"] in memberships) == (body["operator"] == "member")
    if kind == "message":
        return any(_delivery_matches(body, delivery, now) for delivery in world["deliveries"])
    (key, value), = body.items()
    if key == "has":
        return person["devices"] > 0 if value == "push_device" else bool(person[value])
    if key == "subscribed":
        return person["unsubscribed"] != value
    if key == "subscribed_to_topic":
        if person["unsubscribed"] or value not in world["topics"]:
            return False
        return person.get("topic_preferences", {}).get(value, world["topics"][value])
    return person["suppressed"] != value


def _delivery_matches(spec, delivery, now):
    action = spec["action"]
    at = delivery[MESSAGE_ACTIONS[action]]
    if at is None:
        return False
    if action in MESSAGE_ACTION_STATUSES and delivery["status"] not in MESSAGE_ACTION_STATUSES[action]:
        return False
    if "transactional_message_id" in spec and delivery["transactional_message_id"] != spec["transactional_message_id"]:
        return False
    for key, source in SOURCE_OF_SELECTOR.items():
        if key in spec and (delivery["source"], delivery["source_id"]) != (source, spec[key]):
            return False
    if "channel" in spec and delivery["channel"] != spec["channel"]:
        return False
    if "within" in spec:
        seconds = spec["within"]["value"] * WINDOW_UNITS[spec["within"]["unit"]]
        return now - timedelta(seconds=seconds) <= at <= now
    return True


def _event(spec, events, now):
    def counts(event):
        if event["name"] != spec["name"]:
            return False
        if "within" in spec:
            seconds = spec["within"]["value"] * WINDOW_UNITS[spec["within"]["unit"]]
            if not now - timedelta(seconds=seconds) <= event["timestamp"] <= now:
                return False
        if "between" in spec:
            start, end = (parse_time(item) for item in spec["between"])
            if not start <= event["timestamp"] <= end:
                return False
        return all(_filter(_Value((event["data"] or {}).get(f["field"])), f, now) for f in spec["filters"])

    n = sum(1 for event in events if counts(event))
    wanted = spec["count"]["value"]
    result = {"at_least": n >= wanted, "at_most": n <= wanted, "exactly": n == wanted}[spec["count"]["operator"]]
    return result if spec["operator"] == "performed" else not result


class _Value:
    """An attribute's value seen as text, number and time, as the SQL sees it."""

    def __init__(self, raw, epoch=None):
        self.text = _text(raw)
        self.json = raw
        self.number = _number(self.text) if epoch is None else epoch
        self.epoch = _epoch(self.text) if epoch is None else epoch


def _profile_filter(person, spec, now):
    field = spec["field"]
    if field in TEXT_COLUMNS:
        return _filter(_Value(person[TEXT_COLUMNS[field]]), spec, now)
    if field == "unsubscribed":
        return _filter(_Value(person["unsubscribed"]), spec, now)
    if field == "created_at":
        return _filter(_Value(person["created_at"].isoformat(), epoch=_seconds(person["created_at"])), spec, now)
    return _filter(_Value(person["attributes"].get(field)), spec, now)


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


def _epoch(text):
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


def _seconds(moment):
    return Decimal(str(moment.timestamp()))


def _eq(value, expected):
    if isinstance(expected, bool):
        return value.text == ("true" if expected else "false")
    if isinstance(expected, (int, float)):
        return value.number is not None and value.number == Decimal(str(expected))
    return value.text == expected


def _filter(value, spec, now):
    operator, expected = spec["operator"], spec.get("value")
    if operator == "exists":
        return value.text is not None
    if operator == "not_exists":
        return value.text is None
    if operator == "eq":
        return _eq(value, expected)
    if operator == "neq":
        return not _eq(value, expected)
    if operator == "in":
        return any(_eq(value, item) for item in expected)
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
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(value.epoch))
    return moment.strftime("%m-%d") in anniversary_days(now)
