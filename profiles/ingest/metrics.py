"""Delivery metrics reported through the Track API → `delivery_metric` operations.

Customer.io lets clients report what happened to a message Ulak sent when only the client can
see it (push opened on the device, a conversion on the website):
  v1  POST /api/v1/metrics      {"delivery_id", "metric", "timestamp", "href", "reason", "recipient"}
  v1  POST /push/events         {"delivery_id", "event", "device_id", "timestamp"} (legacy push SDKs)
  v2  {"type": "delivery", "action": "event", "identifiers": {"id": <delivery_id>}, "name", "timestamp"}
The processor applies them with channels.feedback.apply_metric.
"""

from core.errors import InvalidInput
from profiles.ingest.operations import clean_str, clean_timestamp, require_dict

# Customer.io metric names → Ulak delivery event kinds.
METRIC_KINDS = {
    "opened": "opened", "clicked": "clicked", "converted": "converted", "delivered": "delivered",
    "bounced": "bounced", "dropped": "failed", "spammed": "complained", "deferred": "deferred",
}
PUSH_EVENTS = ("opened", "converted", "delivered")


def _metric_op(delivery_id, metric, allowed, timestamp, now: float, *, field: str, href=None, reason=None) -> dict:
    if not isinstance(metric, str) or metric not in allowed:
        raise InvalidInput(field, f"must be one of {', '.join(allowed)}")
    op = {"op": "delivery_metric", "delivery_id": clean_str(delivery_id, "delivery_id", max_length=64),
          "kind": METRIC_KINDS[metric], "ts": clean_timestamp(timestamp, "timestamp", default=now)}
    if href is not None:
        op["href"] = clean_str(href, "href", max_length=2000)
    if reason is not None:
        op["reason"] = clean_str(reason, "reason", max_length=1000)
    return op


def v1_metric(body, now: float) -> dict:
    body = require_dict(body, None)
    return _metric_op(body.get("delivery_id"), body.get("metric"), tuple(METRIC_KINDS), body.get("timestamp"), now,
                      field="metric", href=body.get("href"), reason=body.get("reason"))


def v1_push_event(body, now: float) -> dict:
    body = require_dict(body, None)
    return _metric_op(body.get("delivery_id"), body.get("event"), PUSH_EVENTS, body.get("timestamp"), now,
                      field="event")


def v2_delivery(body, now: float) -> dict:
    if body.get("action") != "event":
        raise InvalidInput("action", "must be event for type delivery")
    identifiers = require_dict(body.get("identifiers"), "identifiers")
    attributes = require_dict(body.get("attributes") or {}, "attributes")
    return _metric_op(identifiers.get("id"), body.get("name"), PUSH_EVENTS, body.get("timestamp"), now,
                      field="name", href=attributes.get("href"))
