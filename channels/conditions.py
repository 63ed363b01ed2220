"""The `channel` segment condition, registered by ChannelsConfig.ready():

    {"channel": {"has": "email"|"phone"|"push_device"}}   {"channel": {"subscribed": true}}
    {"channel": {"not_suppressed": true}}                 {"channel": {"subscribed_to_topic": key}}

`subscribed_to_topic` is the person's topic-wide preference (channel '') or else the topic's
default, and never true for a globally unsubscribed person or a topic that does not exist (any
more). Channel-specific preferences do not count here (the send path checks them per message).
See docs/segments.md ("Subscribed to a topic").
"""

import re

from django.db.models import Exists, F, OuterRef, Q

from channels.models import SubscriptionPreference, SubscriptionTopic
from core.errors import InvalidInput
from profiles.models import Device
from profiles.segments.base import ConditionKind, Sql, choice_spec

CHANNELS = {"email", "phone", "push_device"}
TOPIC_KEY_RE = r"^[-a-zA-Z0-9_]{1,100}$"


def _validate(body, path, context):
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
        value = _topic_key(value, f"{path}.{key}", context)
    else:
        raise InvalidInput(f"{path}.{key}", "unknown channel condition; use has, subscribed, not_suppressed "
                                            "or subscribed_to_topic")
    return {key: value}


def _topic_key(value, path, context):
    if not isinstance(value, str) or not re.match(TOPIC_KEY_RE, value):
        raise InvalidInput(path, "must be a subscription topic key")
    workspace = context.workspace
    if workspace is not None and not SubscriptionTopic.objects.for_workspace(workspace).filter(key=value).exists():
        raise InvalidInput(path, "no subscription topic of this workspace has this key")
    return value


def _compile(workspace, spec, now):
    (key, value), = spec.items()
    if key == "has" and value == "push_device":
        return Q(Exists(Device.objects.for_workspace(workspace).filter(profile=OuterRef("pk"))))
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
    topic = SubscriptionTopic.objects.for_workspace(workspace).filter(key=key)
    preference = SubscriptionPreference.objects.for_workspace(workspace).filter(
        profile=OuterRef("pk"), channel="", topic__workspace=workspace, topic__key=key)
    opted_in = Q(Exists(preference.filter(subscribed=True)))
    opted_out = Q(Exists(preference.filter(subscribed=False)))
    default_in = Q(Exists(topic.filter(default_subscribed=True)))
    return Q(unsubscribed=False) & (opted_in | (~opted_out & default_in))


def _depends_on(spec):
    if "subscribed_to_topic" in spec:  # the topic itself (its default, its existence)
        return {"channels", f"topics:{spec['subscribed_to_topic']}"}
    return {"channels"}


def _reference(spec, context):
    person = context.person
    (key, value), = spec.items()
    if key == "has":
        return person["devices"] > 0 if value == "push_device" else bool(person[value])
    if key == "subscribed":
        return person["unsubscribed"] != value
    if key == "subscribed_to_topic":
        if person["unsubscribed"] or value not in context.topics:
            return False
        return person.get("topic_preferences", {}).get(value, context.topics[value])
    return person["suppressed"] != value


TOPICS_SHOWN = 500  # topics offered by the console's segment builder


def _describe(workspace):
    """What the console's segment builder shows (profiles/segments/builder.py): one of four keys."""
    topic = {"type": "text", "max_length": 100}
    if workspace is not None:
        topics = SubscriptionTopic.objects.for_workspace(workspace).order_by("name", "pk")[:TOPICS_SHOWN]
        topic = {"type": "choice", "choices": [{"value": t.key, "label": f"{t.name} ({t.key})"} for t in topics]}
    return {
        "label": "Channel",
        "help": "Reachable on a channel: has an address or device, is subscribed, is not suppressed, or is "
                "subscribed to a topic.",
        "body": {"type": "one_of", "options": [
            {"key": "has", "label": "has", "default": "email",
             "spec": choice_spec(["email", "phone", "push_device"], {"push_device": "a push device"})},
            {"key": "subscribed", "label": "is subscribed", "default": True, "spec": {"type": "boolean"}},
            {"key": "not_suppressed", "label": "is not suppressed", "default": True, "spec": {"type": "boolean"}},
            {"key": "subscribed_to_topic", "label": "is subscribed to the topic", "default": "", "spec": topic},
        ]},
        "default": {"has": "email"},
    }


CHANNEL = ConditionKind("channel", validate=_validate, compile=_compile, depends_on=_depends_on,
                        reference=_reference, describe=_describe)
