"""OpenAPI components of the content and transactional-send App API (documentation only).

Each one describes what a view answers or accepts today: the answers are built by
`campaigns/api/serializers.py` (`transactional_json`, `snippet_json`, `layout_json`,
`rendered_json`) and `send_views.py`; the input is what their cleaners accept. Times are Unix
seconds. Create and update bodies may also come wrapped in their envelope
(`{"message": {...}}`, `{"layout": {...}}`, `{"snippet": {...}}`, `{"preview": {...}}`).
"""

from rest_framework import serializers

from campaigns.models import TransactionalMessage
from channels.models import ChannelType
from core.api.schema import BOOLEAN_INPUT, SchemaField, document, json_object, one_of, unix_time

TRANSACTIONAL_CHANNELS = TransactionalMessage.Channel  # named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]
TEXT_FIELDS = ("subject", "body", "body_plain", "from", "reply_to", "preheader")


def relation(what: str, *, by_key: bool = False) -> SchemaField:
    """`channel_config`, `topic`, `layout` as a request names them: an id (a number or its digits),
    `{"id": ...}`, for a topic also its key or `{"key": ...}`; null or "" for none."""
    choices = [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+$"},
               {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}, "required": ["id"]}]
    if by_key:
        choices[1] = {"type": "string"}
        choices.append({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]})
    return SchemaField({"oneOf": choices}, allow_null=True, required=False,
                       help_text=f"The {what} of this workspace by id" + (" or key" if by_key else "")
                       + "; null or \"\" for none.")


def text(**kwargs) -> serializers.CharField:
    return serializers.CharField(allow_blank=True, allow_null=True, required=False, **kwargs)


# --- transactional messages ----------------------------------------------------------------------------

TopicRef = document("TopicRefSerializer", {"id": serializers.IntegerField(), "key": serializers.CharField()},
                    "The subscription topic a message belongs to.")

TransactionalMessageDoc = document("TransactionalMessageSerializer", {
    "id": serializers.IntegerField(),
    "name": serializers.CharField(),
    "description": serializers.CharField(allow_blank=True),
    "channel": serializers.ChoiceField(choices=TransactionalMessage.Channel.choices),
    "channel_config": serializers.IntegerField(allow_null=True, help_text="Null: the channel's default "
                                                                          "configuration."),
    "topic": TopicRef(allow_null=True),
    "layout": serializers.IntegerField(allow_null=True),
    **{name: serializers.CharField(allow_blank=True) for name in TEXT_FIELDS},
    "payload": json_object(help_text="Channel-specific content (push, in-app, WhatsApp template...)."),
    "send_to_unsubscribed": serializers.BooleanField(),
    "tracked": serializers.BooleanField(),
    "version": serializers.IntegerField(help_text="Goes up by one with each change of the content."),
    "created_at": unix_time(),
    "updated_at": unix_time(),
}, "A transactional message with its content's fields (Customer.io's shape).")

TransactionalMessageResponse = document("TransactionalMessageResponseSerializer",
                                        {"message": TransactionalMessageDoc()})
TransactionalMessageList = document("TransactionalMessageListSerializer",
                                    {"messages": TransactionalMessageDoc(many=True)})


def _transactional_input(name: str, *, create: bool):
    fields = {
        "name": serializers.CharField(max_length=150, required=create, allow_null=not create),
        "description": text(),
        "channel": serializers.ChoiceField(choices=TransactionalMessage.Channel.choices, required=create),
        "channel_config": relation("channel configuration"),
        "topic": relation("subscription topic", by_key=True),
        "layout": relation("layout (email only)"),
        **{field: text() for field in TEXT_FIELDS},
        "payload": json_object(allow_null=True, required=False),
        "send_to_unsubscribed": serializers.BooleanField(required=False),
        "tracked": serializers.BooleanField(required=False),
    }
    doc = ("`name` and `channel` are required." if create else "Only the fields given change.") + (
        " `id`, `version`, `created_at` and `updated_at` are accepted and ignored; any other field is a 400.")
    body = document(f"{name}Serializer", fields, doc, closed=True)
    envelope = document(f"{name}EnvelopeSerializer", {"message": body()}, closed=True)
    return one_of(f"{name}Body", body, envelope)


TransactionalMessageCreateBody = _transactional_input("TransactionalMessageCreate", create=True)
TransactionalMessageUpdateBody = _transactional_input("TransactionalMessageUpdate", create=False)


# --- previews ------------------------------------------------------------------------------------------

PERSON_REF = {
    "customer_id": SchemaField({"oneOf": [{"type": "string"}, {"type": "integer"}]}, allow_null=True,
                               required=False, help_text="The person's id (or use `identifiers`)."),
    "identifiers": SchemaField({
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "properties": {name: {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
                       for name in ("id", "email", "cio_id")},
    }, required=False, allow_null=True, help_text="Exactly one of id, email, cio_id."),
}
SAMPLE_DATA = {
    "event": json_object(allow_null=True, required=False, help_text="Seen by templates as `event`."),
    "trigger": json_object(allow_null=True, required=False, help_text="Seen by templates as `trigger`."),
    "message_data": json_object(allow_null=True, required=False,
                                help_text="Another name for `trigger` (give one of them)."),
}

TransactionalPreview = document("TransactionalPreviewSerializer", {**PERSON_REF, **SAMPLE_DATA},
                                "Render for this person (optional) with sample data.")
TransactionalPreviewBody = one_of(
    "TransactionalPreviewBody", TransactionalPreview,
    document("TransactionalPreviewEnvelopeSerializer", {"preview": TransactionalPreview()}, closed=True))

TemplatePreview = document("TemplatePreviewSerializer", {
    "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_null=True, allow_blank=True, required=False,
                                       help_text="Default email."),
    **{field: text() for field in TEXT_FIELDS},
    "payload": json_object(allow_null=True, required=False),
    "layout": relation("layout (email only)"),
    **PERSON_REF, **SAMPLE_DATA,
}, "Inline content to render, for a person (optional) with sample data.")
TemplatePreviewBody = one_of(
    "TemplatePreviewBody", TemplatePreview,
    document("TemplatePreviewEnvelopeSerializer", {"preview": TemplatePreview()}, closed=True))

Rendered = document("RenderedSerializer", {
    "subject": serializers.CharField(allow_blank=True),
    "body": serializers.CharField(allow_blank=True),
    "body_plain": serializers.CharField(allow_blank=True),
    "from": serializers.CharField(allow_blank=True),
    "reply_to": serializers.CharField(allow_blank=True),
    "headers": serializers.DictField(child=serializers.CharField(allow_blank=True)),
    "payload": json_object(),
}, "The content as a send would render it (links print `#preview`).")


# --- snippets and layouts ------------------------------------------------------------------------------

SLUG = r"^[-a-zA-Z0-9_]+$"

Snippet = document("SnippetSerializer", {
    "name": serializers.CharField(), "value": serializers.CharField(allow_blank=True),
    "version": serializers.IntegerField(), "created_at": unix_time(), "updated_at": unix_time(),
}, "Used in templates as `{{ snippets.<name> }}`.")
SnippetResponse = document("SnippetResponseSerializer", {"snippet": Snippet()})
SnippetList = document("SnippetListSerializer", {"snippets": Snippet(many=True)})
SnippetInput = document("SnippetUpsertSerializer", {
    "name": serializers.RegexField(SLUG, max_length=100),
    "value": serializers.CharField(allow_blank=True, allow_null=True),
}, "Creates the snippet `name`, or replaces its value. `version`, `created_at`, `updated_at` and `id` are "
   "accepted and ignored.", closed=True)
SnippetBody = one_of("SnippetUpsertBody", SnippetInput,
                     document("SnippetUpsertEnvelopeSerializer", {"snippet": SnippetInput()}, closed=True))

Layout = document("LayoutSerializer", {
    "id": serializers.IntegerField(), "name": serializers.CharField(), "body": serializers.CharField(),
    "version": serializers.IntegerField(), "created_at": unix_time(), "updated_at": unix_time(),
}, "An email layout: HTML with `{{ content }}` where the message goes.")
LayoutResponse = document("LayoutResponseSerializer", {"layout": Layout()})
LayoutList = document("LayoutListSerializer", {"layouts": Layout(many=True)})


def _layout_input(name: str, *, create: bool):
    body = document(f"{name}Serializer", {
        "name": serializers.CharField(max_length=150, required=create, allow_null=not create),
        "body": serializers.CharField(required=create, allow_null=not create,
                                      help_text="Must contain {{ content }}."),
    }, "`id`, `version`, `created_at` and `updated_at` are accepted and ignored.", closed=True)
    return one_of(f"{name}Body", body, document(f"{name}EnvelopeSerializer", {"layout": body()}, closed=True))


LayoutCreateBody = _layout_input("LayoutCreate", create=True)
LayoutUpdateBody = _layout_input("LayoutUpdate", create=False)


# --- transactional sends -------------------------------------------------------------------------------

FLAG = {**BOOLEAN_INPUT, "nullable": True}
STRING_OR_NUMBER = {"oneOf": [{"type": "string"}, {"type": "number"}], "nullable": True}


def _flag(help_text: str = "") -> SchemaField:
    return SchemaField(FLAG, required=False, allow_null=True, help_text=help_text or None)


COMMON = {
    "transactional_message_id": SchemaField(
        {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 150}], "nullable": True},
        required=False, allow_null=True,
        help_text="The transactional message, by numeric id or name; without it the content is inline."),
    "identifiers": SchemaField({
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "properties": {"id": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "integer"}]},
                       "email": {"type": "string", "format": "email", "maxLength": 254},
                       "cio_id": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 200},
                                            {"type": "integer"}]}},
    }, help_text="Exactly one of id, email, cio_id. A person named by id or email is created when missing."),
    "disable_message_retention": _flag("true: the rendered content is not kept on the delivery."),
    "queue_draft": _flag("Drafts are not kept: true is a 400."),
    "message_data": json_object(required=False, allow_null=True, help_text="Seen by templates as `trigger`."),
    "send_at": SchemaField(STRING_OR_NUMBER, required=False, allow_null=True,
                           help_text="Unix seconds or ISO 8601, at most 90 days ahead."),
    "language": serializers.CharField(max_length=20, required=False, allow_null=True, allow_blank=True,
                                      help_text="Accepted and ignored."),
    "send_to_unsubscribed": _flag(),
}
TO = serializers.CharField(required=False, allow_null=True, allow_blank=True)
INLINE = {"allow_null": True, "allow_blank": True, "required": False}

SEND_FIELDS = {
    ChannelType.EMAIL: {
        **COMMON, "to": TO,
        "from": serializers.CharField(max_length=255, **INLINE), "reply_to": serializers.CharField(max_length=255, **INLINE),
        "headers": serializers.DictField(child=serializers.CharField(max_length=998), required=False, allow_null=True,
                                         help_text="One-line strings; From, To, Subject... are refused."),
        "cc": SchemaField({"nullable": True}, required=False, allow_null=True,
                          help_text="Refused unless empty: one visible recipient per message."),
        "bcc": SchemaField({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                            "nullable": True}, required=False, allow_null=True,
                           help_text="One address, several separated by commas, or a list (at most 14)."),
        "subject": serializers.CharField(max_length=998, **INLINE), "preheader": serializers.CharField(max_length=255, **INLINE),
        "body": serializers.CharField(**INLINE), "body_plain": serializers.CharField(**INLINE),
        "plaintext_body": serializers.CharField(**INLINE),
        "body_amp": SchemaField({}, required=False, allow_null=True,
                                help_text="Accepted and ignored."),
        "fake_bcc": _flag("Accepted and ignored."), "tracked": _flag(),
        "attachments": serializers.DictField(child=serializers.CharField(), required=False, allow_null=True,
                                             help_text="{\"<file name>\": \"<base64 content>\"}, at most 2 MB "
                                                       "decoded in all."),
        "disable_css_preprocessing": _flag("Accepted and ignored."),
    },
    ChannelType.SMS: {**COMMON, "to": TO, "body": serializers.CharField(max_length=1600, **INLINE)},
    ChannelType.WHATSAPP: {
        **COMMON, "to": TO, "tracked": _flag(), "body": serializers.CharField(max_length=4096, **INLINE),
        "template": SchemaField({
            "type": "object", "additionalProperties": False, "required": ["name"], "nullable": True,
            "properties": {"name": {"type": "string", "maxLength": 512},
                           "language": {"type": "string", "maxLength": 20, "nullable": True},
                           "components": {"type": "array", "items": {}, "nullable": True}},
        }, required=False, allow_null=True, help_text="A WhatsApp message template."),
    },
    ChannelType.PUSH: {
        **COMMON, "to": TO, "title": serializers.CharField(max_length=1000, **INLINE),
        "message": serializers.CharField(max_length=4000, **INLINE),
        "image_url": serializers.CharField(max_length=2000, **INLINE), "link": serializers.CharField(max_length=2000, **INLINE),
        "custom_data": json_object(required=False, allow_null=True),
        "custom_payload": SchemaField({"nullable": True}, required=False, allow_null=True,
                                      help_text="Refused unless empty; put extra data in custom_data."),
        "custom_device": SchemaField({
            "type": "object", "required": ["token"], "nullable": True,
            "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 512},
                           "platform": {"type": "string"}},
        }, required=False, allow_null=True, help_text="Send to this device token only (not with `to`)."),
        "sound": serializers.CharField(max_length=100, **INLINE),
    },
    ChannelType.IN_APP: {
        **COMMON, "title": serializers.CharField(max_length=1000, **INLINE), "body": serializers.CharField(**INLINE),
        "payload": json_object(required=False, allow_null=True,
                               help_text="The in-app message's own fields, shown to the app as they are."),
    },
}
SEND_NAMES = {ChannelType.EMAIL: "Email", ChannelType.SMS: "Sms", ChannelType.WHATSAPP: "WhatsApp",
              ChannelType.PUSH: "Push", ChannelType.IN_APP: "InApp"}
SEND_REQUESTS = {
    channel: document(f"Send{name}Serializer", SEND_FIELDS[channel],
                      f"A transactional {channel} message (Customer.io's request body). Any other field is a 400.",
                      closed=True)
    for channel, name in SEND_NAMES.items()
}
