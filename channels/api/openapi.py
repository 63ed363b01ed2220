"""OpenAPI components of the messaging App API (documentation only).

Each one describes what a view answers or accepts today: answers are built by
`channels/api/serializers.py` (`channel_json`, `topic_json`, `preferences_json`,
`suppression_json`, `delivery_json`, `message_json`, `ledger_row`) and
`reporting_serializers.webhook_json`; input is what their cleaners accept (`clean_channel`,
`clean_topic`, `clean_preferences`...). Times are Unix seconds, except the consent ledger's and
the reporting webhooks' `created_at` (ISO 8601).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from channels import inbox_tokens
from channels.api.reporting_serializers import EVENT_NAMES
from channels.api.serializers import MAX_RATE_LIMIT, SUPPRESSIBLE_CHANNELS
from channels.models import (
    ChannelType, ConsentRecord, ConsentSource, Delivery, DeliveryStatus, ProviderKind, Suppression,
)
from core.api.schema import BOOLEAN_INPUT, SchemaField, document, iso_time, json_object, unix_time
from core.exporting import FORMATS
from profiles.api.app_serializers import PersonIdentifiersSerializer

FLAG = {**BOOLEAN_INPUT}
# Choice sets named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].
DELIVERY_SOURCES = Delivery.Source
WEBHOOK_TYPES = ["webhook"]
CURSOR = "Cursor of the next page; empty on the last page."


def flag(**kwargs) -> SchemaField:
    return SchemaField(FLAG, required=False, **kwargs)


def query(name: str, description: str, **kwargs) -> OpenApiParameter:
    return OpenApiParameter(name, kwargs.pop("type", OpenApiTypes.STR), OpenApiParameter.QUERY,
                            description=description, **kwargs)


PAGING = [query("limit", "Page size: default 50, at most 1000.", type=OpenApiTypes.INT),
          query("start", "The `next` of the previous page.")]
PERSON_PATH = [
    OpenApiParameter("identifier", OpenApiTypes.STR, OpenApiParameter.PATH,
                     description="The person's id, email or cio_id (see id_type), URL-encoded."),
    query("id_type", "What `identifier` is; default id.", enum=["id", "email", "cio_id"]),
]
SINCE_UNTIL = [query("since", "ISO 8601 or Unix seconds, inclusive (a date alone: from that day's start, UTC)."),
               query("until", "ISO 8601 or Unix seconds, inclusive (a date alone: to that day's end, UTC).")]
EXPORT_FORMAT = query("format", "json (default: an array) or csv.", enum=list(FORMATS))


# --- queued deliveries (test sends here, transactional sends in campaigns) --------------------------

QueuedDelivery = document("QueuedDeliverySerializer", {
    "delivery_id": serializers.CharField(help_text="Follow it at GET /v1/deliveries/{delivery_id}."),
    "queued_at": unix_time(),
}, "The delivery queued for the request.")


# --- channel configurations ------------------------------------------------------------------------

Channel = document("ChannelSerializer", {
    "id": serializers.IntegerField(),
    "public_id": serializers.CharField(help_text="Names the configuration in its webhook URLs."),
    "name": serializers.CharField(),
    "type": serializers.ChoiceField(choices=ChannelType.choices),
    "provider": serializers.ChoiceField(choices=ProviderKind.choices),
    "sender": serializers.CharField(allow_blank=True),
    "settings": json_object(help_text="The provider's settings."),
    "secrets_set": serializers.ListField(child=serializers.CharField(),
                                         help_text="Names of the secrets stored (secrets are write-only)."),
    "rate_limit_per_second": serializers.IntegerField(allow_null=True, help_text="Null: no limit."),
    "tracking_enabled": serializers.BooleanField(),
    "is_default": serializers.BooleanField(),
    "active": serializers.BooleanField(),
    "webhook_urls": serializers.DictField(child=serializers.CharField(),
                                          help_text="URLs to configure at the provider (by provider: "
                                                    "status_callback and inbound, webhook, tracking)."),
    "created_at": unix_time(),
    "updated_at": unix_time(),
}, "A channel configuration: one way of reaching people.")
ChannelResponse = document("ChannelResponseSerializer", {"channel": Channel()})
ChannelList = document("ChannelListSerializer", {"channels": Channel(many=True)})


def _channel_input(name: str, *, create: bool):
    return document(name, {
        "type": serializers.ChoiceField(choices=ChannelType.choices, required=create,
                                        help_text="Fixed once created."),
        "provider": serializers.ChoiceField(choices=ProviderKind.choices, required=create,
                                            help_text="One that fits the type; fixed once created."),
        "name": serializers.CharField(max_length=150, required=create, help_text="Unique in the workspace."),
        "sender": serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True),
        "settings": json_object(required=False, allow_null=True,
                                help_text="The provider's settings" + ("" if create else "; merged into what is "
                                                                       "stored, a key with null is removed") + "."),
        "secrets": json_object(required=False, allow_null=True,
                               help_text="The provider's credentials (write-only)" + ("" if create else
                                                                                      "; merged as settings are") + "."),
        "rate_limit_per_second": serializers.IntegerField(min_value=1, max_value=MAX_RATE_LIMIT, allow_null=True,
                                                          required=False, help_text="Null: no limit."),
        "tracking_enabled": flag(),
        "is_default": flag(help_text="true: the channel's default configuration (the previous one stops being it)."),
        "active": flag(),
    }, "Any other field is a 400.", closed=True)


ChannelCreate = _channel_input("ChannelCreateSerializer", create=True)
ChannelUpdate = _channel_input("ChannelUpdateSerializer", create=False)

ChannelTest = document("ChannelTestSerializer", {
    "to": serializers.CharField(help_text="What the channel sends to: an email address, an E.164 phone number, a "
                                          "device token, a webhook URL, or for in_app a person's cio_id."),
    "subject": serializers.CharField(max_length=998, required=False, allow_null=True, allow_blank=True),
    "body": serializers.CharField(max_length=100_000, required=False, allow_null=True, allow_blank=True),
}, "A test message through this configuration (active or not).", closed=True)


# --- topics ------------------------------------------------------------------------------------------

TOPIC_KEY = r"^[-a-zA-Z0-9_]+$"

Topic = document("TopicSerializer", {
    "id": serializers.IntegerField(), "key": serializers.CharField(), "name": serializers.CharField(),
    "description": serializers.CharField(allow_blank=True), "default_subscribed": serializers.BooleanField(),
    "created_at": unix_time(),
}, "A subscription topic: a kind of message people opt in to or out of.")
TopicResponse = document("TopicResponseSerializer", {"topic": Topic()})
TopicList = document("TopicListSerializer", {"topics": Topic(many=True)})


def _topic_input(name: str, *, create: bool):
    return document(name, {
        "key": serializers.RegexField(TOPIC_KEY, max_length=100, required=create,
                                      help_text="Fixed once created (another key is a 400)."),
        "name": serializers.CharField(max_length=150, required=create),
        "description": serializers.CharField(max_length=2000, required=False, allow_null=True, allow_blank=True),
        "default_subscribed": flag(help_text="false: an opt-in topic."),
    }, "Any other field is a 400.", closed=True)


TopicCreate = _topic_input("TopicCreateSerializer", create=True)
TopicUpdate = _topic_input("TopicUpdateSerializer", create=False)

CustomerioTopic = document("SubscriptionTopicSerializer", {
    "id": serializers.IntegerField(), "identifier": serializers.CharField(help_text="The topic's key."),
    "name": serializers.CharField(), "description": serializers.CharField(allow_blank=True),
    "subscribed_by_default": serializers.BooleanField(),
}, "A topic in Customer.io's shape.")
CustomerioTopicList = document("SubscriptionTopicListSerializer", {"topics": CustomerioTopic(many=True)})


# --- subscription preferences ------------------------------------------------------------------------

TopicChoice = document("TopicPreferenceSerializer", {
    "key": serializers.CharField(), "name": serializers.CharField(),
    "subscribed": serializers.BooleanField(help_text="The person's choice, else the topic's default."),
    "chosen": serializers.BooleanField(help_text="Whether the person made a choice."),
    "default_subscribed": serializers.BooleanField(),
})
Preferences = document("SubscriptionPreferencesSerializer", {
    "customer": PersonIdentifiersSerializer(),
    "unsubscribed": serializers.BooleanField(help_text="The global choice."),
    "channels": serializers.DictField(child=serializers.BooleanField(), help_text="Per-channel choices made."),
    "topics": TopicChoice(many=True),
    "channel_topics": serializers.DictField(child=serializers.DictField(child=serializers.BooleanField()),
                                            help_text="{channel: {topic key: subscribed}}."),
})
PreferencesResponse = document("SubscriptionPreferencesResponseSerializer",
                               {"subscription_preferences": Preferences()})
BOOL_MAP = {"type": "object", "additionalProperties": FLAG}
PreferencesUpdate = document("SubscriptionPreferencesUpdateSerializer", {
    "unsubscribed": flag(),
    "channels": SchemaField({"type": "object", "additionalProperties": False,
                             "properties": {channel: FLAG for channel in ChannelType.values}}, required=False,
                            help_text="{channel: subscribed}."),
    "topics": SchemaField(BOOL_MAP, required=False, help_text="{topic key: subscribed}; an unknown key is a 400."),
    "channel_topics": SchemaField({"type": "object", "additionalProperties": False,
                                   "properties": {channel: BOOL_MAP for channel in ChannelType.values}},
                                  required=False, help_text="{channel: {topic key: subscribed}}."),
}, "At least one of the fields. Each change is appended to the consent ledger.", closed=True)

InboxTokenRequest = document("InboxTokenRequestSerializer", {
    "ttl_seconds": serializers.IntegerField(min_value=60, max_value=inbox_tokens.MAX_TTL_SECONDS, required=False,
                                            help_text=f"Default {inbox_tokens.DEFAULT_TTL_SECONDS}."),
})
InboxToken = document("InboxTokenSerializer", {
    "token": serializers.CharField(help_text="For `Authorization: Bearer` on /inbox/v1/."),
    "expires_at": unix_time(),
})


# --- suppressions ------------------------------------------------------------------------------------

SuppressionDoc = document("SuppressionSerializer", {
    "id": serializers.IntegerField(), "channel": serializers.ChoiceField(choices=SUPPRESSIBLE_CHANNELS),
    "address": serializers.CharField(help_text="Normalised: lower-case email, E.164 phone."),
    "reason": serializers.ChoiceField(choices=Suppression.Reason.choices),
    "note": serializers.CharField(allow_blank=True), "created_at": unix_time(),
}, "An address no message may reach on a channel.")
SuppressionResponse = document("SuppressionResponseSerializer", {"suppression": SuppressionDoc()})
SuppressionList = document("SuppressionListSerializer", {
    "suppressions": SuppressionDoc(many=True), "next": serializers.CharField(allow_blank=True, help_text=CURSOR)})
SuppressionCreate = document("SuppressionCreateSerializer", {
    "channel": serializers.ChoiceField(choices=SUPPRESSIBLE_CHANNELS),
    "address": serializers.CharField(help_text="An email address, or a phone number (normalised to E.164)."),
    "note": serializers.CharField(max_length=2000, required=False, allow_null=True, allow_blank=True),
}, "Any other field is a 400.", closed=True)
SUPPRESSION_PATH = [
    OpenApiParameter("channel", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(SUPPRESSIBLE_CHANNELS),
                     description="Another channel is a 400."),
    OpenApiParameter("address", OpenApiTypes.STR, OpenApiParameter.PATH, description="The address, URL-encoded."),
]


# --- deliveries and messages -------------------------------------------------------------------------

DeliveryEvent = document("DeliveryEventSerializer", {
    "kind": serializers.CharField(help_text="queued, sent, delivered, opened, clicked, failed..."),
    "at": unix_time(), "data": json_object(),
})
DeliveryContent = document("DeliveryContentSerializer", {
    "subject": serializers.CharField(allow_blank=True), "body": serializers.CharField(allow_blank=True),
    "body_plain": serializers.CharField(allow_blank=True), "payload": json_object(),
}, "The content as rendered for the send.")
DELIVERY_FIELDS = {
    "id": serializers.CharField(), "channel": serializers.ChoiceField(choices=ChannelType.choices),
    "status": serializers.ChoiceField(choices=DeliveryStatus.choices),
    "source": serializers.ChoiceField(choices=Delivery.Source.choices),
    "source_id": serializers.CharField(allow_null=True, help_text="What it was sent for (a message id...)."),
    "transactional_message_id": serializers.IntegerField(allow_null=True),
    "channel_config_id": serializers.IntegerField(allow_null=True),
    "topic_id": serializers.IntegerField(allow_null=True),
    "customer": PersonIdentifiersSerializer(allow_null=True),
    "recipient": serializers.CharField(allow_blank=True),
    "failure_reason": serializers.CharField(allow_null=True),
    "attempts": serializers.IntegerField(),
    "send_at": unix_time(allow_null=True, help_text="Unix seconds: not sent before then."),
    **{name: unix_time(allow_null=(name != "created_at"))
       for name in ("created_at", "sent_at", "delivered_at", "opened_at", "clicked_at", "converted_at", "failed_at")},
}
DeliveryDoc = document("DeliverySerializer", DELIVERY_FIELDS, "One message to one person on one channel.")
DeliveryDetail = document("DeliveryDetailSerializer", {
    **DELIVERY_FIELDS,
    "content": DeliveryContent(allow_null=True, help_text="Null when retention was disabled or the content purged."),
    "events": DeliveryEvent(many=True),
}, "A delivery with its content and events.")
DeliveryResponse = document("DeliveryResponseSerializer", {"delivery": DeliveryDetail()})
DeliveryList = document("DeliveryListSerializer", {
    "deliveries": DeliveryDoc(many=True), "next": serializers.CharField(allow_blank=True, help_text=CURSOR)})

MessageMetrics = document("MessageMetricsSerializer", {
    name: unix_time(required=False) for name in ("sent", "delivered", "opened", "clicked", "converted", "bounced",
                                                 "failed", "suppressed", "undeliverable")
}, "When each thing happened (Unix seconds); only those that did.")
MessageDoc = document("MessageSerializer", {
    "id": serializers.CharField(), "deduplicate_id": serializers.CharField(),
    "message_template_id": serializers.IntegerField(allow_null=True),
    "parent_action_id": serializers.IntegerField(allow_null=True, help_text="Always null (no campaigns yet)."),
    "campaign_id": serializers.IntegerField(allow_null=True),
    "broadcast_id": serializers.IntegerField(allow_null=True),
    "newsletter_id": serializers.IntegerField(allow_null=True, help_text="Always null."),
    "transactional_message_id": serializers.IntegerField(allow_null=True),
    "customer_id": serializers.CharField(allow_null=True),
    "customer_identifiers": PersonIdentifiersSerializer(allow_null=True),
    "recipient": serializers.CharField(allow_blank=True),
    "subject": serializers.CharField(allow_blank=True, help_text="Empty when retention was disabled."),
    "metrics": MessageMetrics(),
    "created": unix_time(),
    "failure_message": serializers.CharField(allow_null=True),
    "type": serializers.ChoiceField(choices=ChannelType.choices),
    "forgotten": serializers.BooleanField(help_text="Its content was not kept or was purged."),
}, "A delivery in Customer.io's message shape.")
MessageResponse = document("MessageResponseSerializer", {"message": MessageDoc()})
MessageList = document("MessageListSerializer", {
    "messages": MessageDoc(many=True), "next": serializers.CharField(allow_blank=True, help_text=CURSOR)})

DELIVERY_FILTERS = [
    query("status", "Only deliveries in this status.", enum=DeliveryStatus.values),
    query("channel", "Only this channel.", enum=ChannelType.values),
    query("source", "Only this source.", enum=Delivery.Source.values),
    query("transactional_message_id", "Only those sent for this transactional message (its numeric id)."),
    query("customer_id", "Only this person's, by id (name the person by one of customer_id, email, cio_id)."),
    query("email", "Only this person's, by email."),
    query("cio_id", "Only this person's, by cio_id."),
    query("created_after", "ISO 8601 or Unix seconds, inclusive (a date alone: from that day's start, UTC)."),
    query("created_before", "ISO 8601 or Unix seconds, inclusive (a date alone: to that day's end, UTC)."),
    *PAGING,
]
MESSAGE_FILTERS = [query("type", "The channel (Customer.io's name for it).", enum=ChannelType.values),
                   *DELIVERY_FILTERS]


# --- the consent ledger ------------------------------------------------------------------------------

LedgerRow = document("ConsentLedgerRowSerializer", {
    "id": serializers.IntegerField(), "created_at": iso_time(),
    "cio_id": serializers.CharField(allow_null=True, help_text="Null once the person is deleted."),
    "customer_id": serializers.CharField(allow_null=True),
    "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_null=True),
    "topic": serializers.CharField(allow_null=True, help_text="The topic's key."),
    "action": serializers.ChoiceField(choices=ConsentRecord.Action.choices),
    "source": serializers.ChoiceField(choices=ConsentSource.choices),
    "evidence": json_object(help_text="How it was given: API key id and IP, keyword, message id..."),
}, "One consent change (CSV: the same columns, `evidence` as JSON).")
LEDGER_FILTERS = [
    EXPORT_FORMAT, *SINCE_UNTIL,
    query("channel", "Only this channel's changes.", enum=ChannelType.values),
    query("topic", "Only this topic's changes (its key)."),
    query("cio_id", "Only this person's changes."),
]


# --- reporting webhooks ------------------------------------------------------------------------------

WEBHOOK_FIELDS = {
    "id": serializers.IntegerField(), "type": serializers.ChoiceField(choices=WEBHOOK_TYPES),
    "name": serializers.CharField(), "url": serializers.CharField(),
    "endpoint": serializers.CharField(help_text="The url again (Customer.io's name)."),
    "events": serializers.ListField(child=serializers.CharField(), help_text="Empty: every event."),
    "disabled": serializers.BooleanField(),
    "full_resolution": serializers.BooleanField(help_text="Always true: every event is sent."),
    "with_content": serializers.BooleanField(help_text="Always false: message content is not sent."),
    "created_at": iso_time(allow_null=True),
}
Webhook = document("ReportingWebhookSerializer", WEBHOOK_FIELDS, "A reporting webhook (Customer.io's shape).")
WebhookCreated = document("ReportingWebhookCreatedSerializer", {
    **WEBHOOK_FIELDS, "secret": serializers.CharField(help_text="The signing secret, shown this once.")})
WebhookList = document("ReportingWebhookListSerializer", {"reporting_webhooks": Webhook(many=True)})


def _webhook_input(name: str, *, create: bool):
    return document(name, {
        "name": serializers.CharField(max_length=150, required=create),
        "url": serializers.URLField(max_length=1000, required=False,
                                    help_text="http(s); a blocked destination is a 400." + (
                                        " Required (or `endpoint`)." if create else "")),
        "endpoint": serializers.URLField(max_length=1000, required=False,
                                         help_text="Customer.io's name for url (used when url is not given)."),
        "events": serializers.ListField(child=serializers.ChoiceField(choices=EVENT_NAMES), max_length=50,
                                        required=False, help_text="Metrics, bare or prefixed with a channel "
                                                                  "(email_opened); empty: every event."),
        "disabled": serializers.BooleanField(required=False),
        "secret": serializers.CharField(min_length=16, max_length=200, required=False,
                                        help_text="Write-only signing secret; generated when not given on create, "
                                                  "replaced when given on update."),
        "full_resolution": serializers.BooleanField(required=False, help_text="Only true is supported."),
        "with_content": serializers.BooleanField(required=False, help_text="Only false is supported."),
    }, "" if create else "Only the fields given change (PUT too: Customer.io clients send them all).")


WebhookCreate = _webhook_input("ReportingWebhookCreateSerializer", create=True)
WebhookUpdate = _webhook_input("ReportingWebhookUpdateSerializer", create=False)
