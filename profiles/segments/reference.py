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
status and the action times (sent_at, delivered_at, opened_at, clicked_at, converted_at,
failed_at; None when it did not happen);
topics: the workspace's subscription topics, {key: default_subscribed}.

Each leaf is evaluated by its registered kind's `reference` (profiles/segments/registry.py).
"""

from profiles.segments.base import ReferenceContext
from profiles.segments.conditions import validate
from profiles.segments.registry import condition_kind


def evaluate(tree, person, events, objects, memberships, now, deliveries=(), topics=None) -> bool:
    context = ReferenceContext(person=person, events=list(events), objects=list(objects), memberships=memberships,
                               now=now, deliveries=list(deliveries), topics=topics or {})
    return _node(validate(tree), context)


def _node(node, context):
    (name, body), = node.items()
    if name == "and":
        return all(_node(child, context) for child in body)
    if name == "or":
        return any(_node(child, context) for child in body)
    if name == "not":
        return not _node(body, context)
    return condition_kind(name).reference(body, context)
