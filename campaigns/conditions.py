"""The `message` segment condition, registered by CampaignsConfig.ready():

    {"message": {"action": "sent"|"delivered"|"opened"|"clicked"|"converted"|"bounced"|"failed",
                 "transactional_message_id": N | "campaign_id": "…" | "broadcast_id": "…",
                 "channel": "email"|"sms"|…, "within": {"value": N, "unit": "minutes"|"hours"|"days"}}}

EXISTS over the person's deliveries whose time for the action (sent_at, opened_at...) is set (in
the window). The message is the delivery's source and `source_id`: a transactional message N is
source "transactional", source_id "N". See docs/segments.md ("Messages").
"""

from django.db.models import Exists, OuterRef, Q

from campaigns.models import Campaign, CampaignType, TransactionalMessage
from channels.models import ChannelType, Delivery
from core.errors import InvalidInput
from profiles.segments.base import ConditionKind, choice_spec, require, window_spec, within, window_start

# A message action → the delivery column that records when it happened (and, for failures, the
# statuses that tell them apart: failed_at is set by bounces, failures and undeliverable alike).
MESSAGE_ACTIONS = {"sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at",
                   "clicked": "clicked_at", "converted": "converted_at", "bounced": "failed_at",
                   "failed": "failed_at"}
MESSAGE_ACTION_STATUSES = {"bounced": ("bounced",), "failed": ("failed", "undeliverable")}
# Which messages: at most one selector (the delivery's source; its id is `source_id`); none means
# any message.
MESSAGE_SELECTORS = {"transactional_message_id": Delivery.Source.TRANSACTIONAL,
                     "campaign_id": Delivery.Source.CAMPAIGN, "broadcast_id": Delivery.Source.BROADCAST}
# Old spellings of message conditions: each is answered with the `message` form to use.
OLD_NAMES = frozenset({"campaign", "sent", "opened", "clicked", "delivery", "delivered"})


def _validate(body, path, context):
    action = require(body, "action", path)
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
        out["transactional_message_id"] = _transactional_message_id(
            body["transactional_message_id"], f"{path}.transactional_message_id", context)
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
        out["within"] = within(body["within"], f"{path}.within")
    return out


def _transactional_message_id(value, path, context):
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(path, "must be a transactional message id")
    workspace = context.workspace
    if workspace is not None and not TransactionalMessage.objects.for_workspace(workspace).filter(pk=value).exists():
        raise InvalidInput(path, "no transactional message of this workspace has this id")
    return value


def _compile(workspace, spec, now):
    """The person has a delivery of the message whose action happened (within the window)."""
    action = spec["action"]
    column = MESSAGE_ACTIONS[action]
    deliveries = Delivery.objects.for_workspace(workspace).filter(profile=OuterRef("pk"),
                                          **{f"{column}__isnull": False})
    if action in MESSAGE_ACTION_STATUSES:
        deliveries = deliveries.filter(status__in=MESSAGE_ACTION_STATUSES[action])
    for key, source in MESSAGE_SELECTORS.items():
        if key in spec:
            deliveries = deliveries.filter(source=source, source_id=str(spec[key]))
    if "channel" in spec:
        deliveries = deliveries.filter(channel=spec["channel"])
    if "within" in spec:
        deliveries = deliveries.filter(**{f"{column}__gte": window_start(spec["within"], now),
                                          f"{column}__lte": now})
    return Q(Exists(deliveries))


def _depends_on(spec):
    return {"messages", "time"} if "within" in spec else {"messages"}


def _reference(spec, context):
    return any(_delivery_matches(spec, delivery, context.now) for delivery in context.deliveries)


def _delivery_matches(spec, delivery, now):
    action = spec["action"]
    at = delivery[MESSAGE_ACTIONS[action]]
    if at is None:
        return False
    if action in MESSAGE_ACTION_STATUSES and delivery["status"] not in MESSAGE_ACTION_STATUSES[action]:
        return False
    for key, source in MESSAGE_SELECTORS.items():
        if key in spec and (delivery["source"], delivery["source_id"]) != (source, str(spec[key])):
            return False
    if "channel" in spec and delivery["channel"] != spec["channel"]:
        return False
    if "within" in spec:
        return window_start(spec["within"], now) <= at <= now
    return True


MESSAGES_SHOWN = 500  # transactional messages, campaigns or broadcasts offered by the segment builder


def _describe(workspace):
    """What the console's segment builder shows (profiles/segments/builder.py): the action, at most one
    message (its choices read in two queries), the channel and a window."""
    transactional = {"type": "integer", "min": 1}
    campaign = broadcast = {"type": "text", "max_length": 64}
    if workspace is not None:
        messages = TransactionalMessage.objects.for_workspace(workspace).order_by("name", "pk")[:MESSAGES_SHOWN]
        transactional = {"type": "choice", "choices": [{"value": m.pk, "label": m.name} for m in messages]}
        campaigns = list(Campaign.objects.for_workspace(workspace).order_by("type", "name", "pk")
                         .values_list("pk", "name", "type")[:2 * MESSAGES_SHOWN])
        campaign, broadcast = ({"type": "choice", "choices": [{"value": str(pk), "label": name}
                                                             for pk, name, kind in campaigns if kind == wanted]}
                               for wanted in (CampaignType.TRIGGERED, CampaignType.BROADCAST))
    return {
        "label": "Message activity",
        "help": "Was sent, opened, clicked... a message (a transactional message, a campaign's or a broadcast's, "
                "or any), on a channel, in a window.",
        "body": {"type": "object", "fields": [
            {"key": "action", "label": "was", "spec": choice_spec(list(MESSAGE_ACTIONS))},
            {"key": "transactional_message_id", "label": "the transactional message", "optional": True,
             "group": "message", "default": None, "spec": transactional},
            {"key": "campaign_id", "label": "a message of the campaign", "optional": True, "group": "message",
             "default": "", "spec": campaign},
            {"key": "broadcast_id", "label": "a message of the broadcast", "optional": True, "group": "message",
             "default": "", "spec": broadcast},
            {"key": "channel", "label": "on the channel", "optional": True, "default": "email",
             "spec": choice_spec(ChannelType.values)},
            {"key": "within", "label": "in the last", "optional": True, "default": {"value": 30, "unit": "days"},
             "spec": window_spec()},
        ]},
        "default": {"action": "opened"},
    }


MESSAGE = ConditionKind(
    "message", validate=_validate, compile=_compile, depends_on=_depends_on, reference=_reference,
    describe=_describe,
    renamed_from=OLD_NAMES,
    renamed_hint="unknown condition; message conditions are written "
                 "{\"message\": {\"action\": \"sent\"|\"opened\"|\"clicked\"|..., ...}}",
)
