"""OpenAPI components of the content and transactional-send App API (documentation only).

Each one describes what a view answers or accepts today: the answers are built by
`campaigns/api/serializers.py` (`transactional_json`, `snippet_json`, `layout_json`,
`rendered_json`) and `send_views.py`; the input is what their cleaners accept. Times are Unix
seconds. Create and update bodies may also come wrapped in their envelope
(`{"message": {...}}`, `{"layout": {...}}`, `{"snippet": {...}}`, `{"preview": {...}}`).

Campaigns and journeys (the end of this file) are answered by `campaign_views.py`; the full
format of a campaign definition is the JSON Schema at `GET /v1/campaigns/schema`
(campaigns/journeys/schema.py), which these components summarize.
"""

from rest_framework import serializers

from campaigns.journeys.broadcasts import MAX_RECIPIENTS_LISTED
from campaigns.journeys.definition import DURATION_UNITS, STEP_KEY, STEP_TYPES, TRIGGER_TYPES
from campaigns.models import BroadcastTriggerState, CampaignState, CampaignType, JourneyState, TransactionalMessage
from channels.models import ChannelType
from core.api.schema import BOOLEAN_INPUT, SchemaField, document, json_object, one_of, unix_time

TRANSACTIONAL_CHANNELS = TransactionalMessage.Channel  # named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]
# Choice sets of campaigns and journeys used in several components, named there too.
CAMPAIGN_TYPES, CAMPAIGN_STATES, JOURNEY_STATES = CampaignType, CampaignState, JourneyState
TEXT_FIELDS = ("subject", "body", "body_plain", "from", "reply_to", "preheader")
MJML_HELP = ("An email written in MJML: when not empty, `body` is compiled from it (a `body` given beside it must "
             "be empty or that HTML). Email only, without a layout; \"\" goes back to writing `body`.")


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
    "body_mjml": serializers.CharField(allow_blank=True, help_text=MJML_HELP),
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
        "body_mjml": text(help_text=MJML_HELP),
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
        "buttons": SchemaField({
            "type": "array", "minItems": 1, "maxItems": 3, "nullable": True,
            "items": {"type": "object", "additionalProperties": False, "required": ["title"],
                      "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 20},
                                     "id": {"type": "string", "maxLength": 256}}},
        }, required=False, allow_null=True, help_text="1 to 3 reply buttons under the body (free-form, inside the "
                                                      "24-hour window); a tap comes back as the button's title."),
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


# --- campaigns -----------------------------------------------------------------------------------------

SCHEMA_NOTE = "The full format: the JSON Schema at GET /v1/campaigns/schema."
# Read-only fields of a campaign's answer a definition body may carry (a campaign read and sent back).
CAMPAIGN_READ_ONLY = ("id", "state", "active", "created", "updated", "activated", "stopped", "actions", "version",
                      "webhook_url")

ACTION = {
    "id": serializers.CharField(help_text="The step's key."),
    "type": serializers.ChoiceField(choices=STEP_TYPES),
    "name": serializers.CharField(allow_blank=True),
    "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_null=True,
                                       help_text="Send and wait-for-reply steps."),
}
Action = document("CampaignActionSerializer", ACTION,
                  "A workflow step, in the workflow's reading order (depth first from the start step).")
ActionDetail = document("CampaignActionDetailSerializer", {
    **ACTION, "step": json_object(help_text="The step's definition as stored."),
}, "A workflow step with its definition.")
ActionList = document("CampaignActionListSerializer", {"actions": ActionDetail(many=True)})

WORKFLOW = {
    "type": "object", "required": ["start", "steps"], "additionalProperties": False,
    "properties": {
        "start": {"type": "string", "nullable": True, "description": "The first step's key."},
        "steps": {"type": "object", "description": "Steps by key.", "additionalProperties": {
            "type": "object", "required": ["type"],
            "properties": {"type": {"type": "string", "enum": list(STEP_TYPES)}},
        }},
    },
}
CAMPAIGN_SUMMARY = {
    "id": serializers.IntegerField(),
    "key": serializers.CharField(allow_blank=True, help_text="The stable key of journeys as code (may be empty)."),
    "name": serializers.CharField(),
    "description": serializers.CharField(allow_blank=True),
    "type": serializers.ChoiceField(choices=CampaignType.choices),
    "state": serializers.ChoiceField(choices=CampaignState.choices),
    "active": serializers.BooleanField(help_text="state is active (admitting people)."),
    "created": unix_time(),
    "updated": unix_time(),
    "activated": unix_time(allow_null=True, help_text="Unix seconds of the last activation."),
    "stopped": unix_time(allow_null=True, help_text="Unix seconds of the last stop."),
    "trigger": json_object(help_text="What starts a run, e.g. {\"type\": \"event\", \"name\": \"signed_up\"}."),
    "webhook_url": serializers.CharField(allow_null=True, help_text=(
        "A webhook-triggered campaign's URL: POST a JSON body to it to start a run (the token in it is its "
        "credential: keep it secret). Null for other triggers.")),
    "actions": Action(many=True),
}
# A campaign's delivery-rule fields (docs/journeys.md "Delivery rules"), as answered.
CAMPAIGN_RULES = {
    "priority": lambda **kw: serializers.IntegerField(
        min_value=-1000, max_value=1000, help_text="Under a frequency cap, a higher priority sends first.", **kw),
    "exempt_from_caps": lambda **kw: serializers.BooleanField(help_text="Ignores the frequency caps.", **kw),
    "when_capped": lambda **kw: serializers.ChoiceField(
        choices=["wait", "skip"], help_text="A capped send waits for the next slot or is skipped.", **kw),
    "when_quiet": lambda **kw: serializers.ChoiceField(
        choices=["hold", "skip"], help_text="A send in quiet hours is held until they end or skipped.", **kw),
}
CampaignSummary = document("CampaignSummarySerializer", CAMPAIGN_SUMMARY,
                           "A campaign as lists show it (Customer.io's shape).")
Campaign = document("CampaignSerializer", {
    **CAMPAIGN_SUMMARY,
    "audience": json_object(allow_null=True, help_text="A condition tree checked at entry; null: everybody."),
    "re_entry": json_object(),
    "exit": json_object(),
    "goal": json_object(allow_null=True),
    "journey_key": serializers.CharField(allow_blank=True),
    "workflow": SchemaField(WORKFLOW),
    **{name: field() for name, field in CAMPAIGN_RULES.items()},
    "version": serializers.IntegerField(help_text="Goes up by one with each change of the definition."),
}, "A campaign with its whole definition (what PUT takes back). " + SCHEMA_NOTE)
CampaignResponse = document("CampaignResponseSerializer", {"campaign": Campaign()})
CampaignList = document("CampaignListSerializer", {"campaigns": CampaignSummary(many=True)})


PUBLISH = {
    "type": "object", "required": ["runs"], "additionalProperties": False, "nullable": True,
    "properties": {
        "runs": {"type": "string", "enum": ["stay", "move", "exit"]},
        "removed": {"type": "object", "nullable": True, "additionalProperties": {
            "type": "string", "nullable": True, "pattern": STEP_KEY.pattern}},
    },
}
PUBLISH_HELP = ("What happens to the runs already in a campaign that has been live (docs/journeys.md \"Versions\"): "
                "`runs` stay on their version, move to the new one (by step key; `removed` maps each removed step "
                "where runs are to a step of the new workflow, or null: they exit), or exit. Required when runs are "
                "live and the workflow changed.")


def _publish() -> SchemaField:
    return SchemaField(PUBLISH, required=False, allow_null=True, help_text=PUBLISH_HELP)


def _definition_input(name: str, *, partial: bool, publish: bool = False):
    def loose(what: str, **schema) -> SchemaField:
        return SchemaField({"type": "object", **schema}, required=False, allow_null=True, help_text=what)

    fields = {
        "key": serializers.CharField(max_length=100, allow_blank=True, allow_null=True, required=False),
        "name": serializers.CharField(max_length=150, required=not partial, allow_null=partial),
        "description": serializers.CharField(max_length=10000, allow_blank=True, allow_null=True, required=False),
        "type": serializers.ChoiceField(choices=CampaignType.choices, required=False,
                                        help_text="Default triggered; changes only while a draft."),
        "trigger": loose("{\"type\": ...} and its fields; a broadcast's is {\"type\": \"api\"} (the default).",
                         required=["type"], properties={"type": {"type": "string", "enum": list(TRIGGER_TYPES)}}),
        "audience": loose("null, {\"segment_id\": N} or a condition tree."),
        "re_entry": loose("{\"mode\": \"once\"|\"always\"|\"after\", \"after\", \"concurrent\"}."),
        "exit": loose("{\"when_unmatched\", \"events\", \"on_goal\"}."),
        "goal": loose("{\"event\"|\"segment_entered\"|\"segment_exited\", \"within\"}."),
        "journey_key": serializers.CharField(max_length=150, allow_blank=True, allow_null=True, required=False),
        "workflow": SchemaField({
            "type": "object", "additionalProperties": False,
            "properties": {
                "start": {"type": "string", "nullable": True, "pattern": STEP_KEY.pattern},
                "steps": {"type": "object", "maxProperties": 200, "additionalProperties": {
                    "type": "object", "required": ["type"],
                    "properties": {"type": {"type": "string", "enum": list(STEP_TYPES)}},
                }},
            },
        }, required=False,
            help_text="{\"start\": \"<step key>\", \"steps\": {\"<key>\": {\"type\": ..., \"next\": ...}}}."),
        **{name: field(required=False, allow_null=True) for name, field in CAMPAIGN_RULES.items()},
    }
    doc = ("Only the fields given change." if partial else "The whole definition: fields left out take their "
           "defaults.") + " The read-only fields of a campaign's answer (" + ", ".join(CAMPAIGN_READ_ONLY) + \
        ") are accepted and ignored; any other field is a 400. " + SCHEMA_NOTE
    body = document(f"{name}Serializer", fields, doc, closed=True)
    if not publish:
        return one_of(f"{name}Body", body, document(f"{name}EnvelopeSerializer", {"campaign": body()}, closed=True))
    # An update: `publish` at the top level, next to the definition's fields or to its envelope.
    flat = document(f"{name}PublishSerializer", {**fields, "publish": _publish()}, doc, closed=True)
    return one_of(f"{name}Body", flat, document(f"{name}EnvelopeSerializer", {"campaign": body(),
                                                                              "publish": _publish()}, closed=True))


CampaignDefinitionBody = _definition_input("CampaignDefinition", partial=False)
CampaignReplaceBody = _definition_input("CampaignReplace", partial=False, publish=True)
CampaignPatchBody = _definition_input("CampaignPatch", partial=True, publish=True)
StopBody = document("CampaignStopSerializer", {
    "mode": serializers.ChoiceField(choices=["exit", "drain"],
                                    help_text="exit: every live run exits now; drain: runs finish, nobody new "
                                              "enters."),
}, closed=True)

DefinitionSchema = document("CampaignDefinitionSchemaSerializer", {
    "$schema": serializers.CharField(),
    "$id": serializers.CharField(),
    "title": serializers.CharField(),
    "description": serializers.CharField(),
    "type": serializers.CharField(),
    "required": serializers.ListField(child=serializers.CharField()),
    "additionalProperties": serializers.BooleanField(),
    "properties": json_object(),
    "allOf": serializers.ListField(child=json_object()),
    "$defs": json_object(),
    "examples": serializers.ListField(child=json_object(), help_text="Valid definitions."),
}, "A JSON Schema (draft 2020-12) document.")


# --- journeys ------------------------------------------------------------------------------------------

JourneyCustomer = document("JourneyCustomerSerializer", {
    "id": serializers.CharField(allow_null=True, help_text="The person's id (external id), if they have one."),
    "cio_id": serializers.CharField(),
}, "The person of the run.")
JOURNEY = {
    "id": serializers.IntegerField(),
    "campaign_id": serializers.IntegerField(),
    "customer": JourneyCustomer(allow_null=True, help_text="Null for a run without a person (webhook-triggered)."),
    "key": serializers.CharField(allow_null=True, help_text="The journey key's value, if the campaign has one."),
    "state": serializers.ChoiceField(choices=JourneyState.choices),
    "exit_reason": serializers.CharField(allow_null=True),
    "step": serializers.CharField(allow_null=True, help_text="The step it waits at, or runs next."),
    "version": serializers.IntegerField(help_text="The campaign version whose workflow the run follows "
                                                  "(docs/journeys.md \"Versions\")."),
    "next_run_at": unix_time(allow_null=True),
    "entered_at": unix_time(),
    "ended_at": unix_time(allow_null=True),
    "converted_at": unix_time(allow_null=True),
    "trigger_data": json_object(help_text="`trigger.*` in templates."),
    "data": json_object(help_text="`journey.*` in templates."),
}
Journey = document("JourneySerializer", JOURNEY, "One run of a campaign's workflow.")
JourneyStepRow = document("JourneyStepSerializer", {
    "seq": serializers.IntegerField(help_text="Step executions of the run count up from 1."),
    "step": serializers.CharField(allow_null=True),
    "type": serializers.CharField(allow_null=True, help_text="The step's type; null for an exit from outside "
                                                             "(stop, exit event, goal)."),
    "outcome": serializers.CharField(help_text="sent, skipped, waiting, waited, yes, no, matched, timeout, "
                                               "replied, failed, exited..."),
    "detail": json_object(),
    "delivery_id": serializers.CharField(allow_null=True, help_text="The message a send step made."),
    "created_at": unix_time(),
})
JourneyDetail = document("JourneyDetailSerializer", {**JOURNEY, "steps": JourneyStepRow(many=True)},
                         "A run with its step log.")
JourneyResponse = document("JourneyResponseSerializer", {"journey": JourneyDetail()})
JourneyList = document("JourneyListSerializer", {
    "journeys": Journey(many=True),
    "next": serializers.CharField(allow_blank=True, help_text="Cursor of the next page; empty on the last page."),
})


# --- dry-run simulation (simulate_views.py, campaigns/journeys/simulate.py) -----------------------------

SimulateEvent = document("CampaignSimulateEventSerializer", {
    "name": serializers.CharField(max_length=255, help_text="The event's name (the trigger's, to enter)."),
    "data": json_object(required=False, allow_null=True, help_text="The event's data: `event.*` and `trigger.*`."),
    "timestamp": SchemaField({"type": "number", "minimum": 1, "maximum": 253402300799, "nullable": True},
                             required=False, allow_null=True,
                             help_text="Unix seconds; default now (older than the trigger admits: no entry)."),
}, "The event that would start the run.", closed=True)
SimulateBody = document("CampaignSimulateSerializer", {
    "customer_id": SchemaField({"oneOf": [{"type": "string", "minLength": 1, "maxLength": 254}, {"type": "integer"}]},
                               help_text="The person (see id_type)."),
    "id_type": serializers.ChoiceField(choices=["id", "email", "cio_id"], required=False, allow_null=True,
                                       help_text="What customer_id is; default id."),
    "event": SimulateEvent(required=False, allow_null=True,
                           help_text="For an event-triggered campaign (required there, refused elsewhere)."),
    "data": json_object(required=False, allow_null=True, help_text=(
        "For a broadcast or another trigger: `trigger.*`, over what the trigger would give (refused for an "
        "event-triggered campaign).")),
}, "Walk the workflow for this person, as if the event (or the trigger with this data) started a run now.",
    closed=True)
ConditionPart = document("SimulatedConditionPartSerializer", {
    "path": serializers.CharField(help_text="Where the leaf is in the tree, e.g. and.1.not.attribute."),
    "condition": json_object(),
    "result": serializers.BooleanField(),
    "value": SchemaField({"description": "Any JSON value; null: no value."}, required=False, allow_null=True,
                         help_text="An attribute condition's: the person's value it compared."),
}, "One leaf of a condition, answered on its own.")
SimulatedCondition = document("SimulatedConditionSerializer", {
    "condition": json_object(), "result": serializers.BooleanField(), "parts": ConditionPart(many=True),
}, "A condition tree, its answer for the person and the answer of each of its leaves (why).")
SimulatedFilter = document("SimulatedFilterSerializer", {"filter": json_object(), "result": serializers.BooleanField()})
SimulatedEntry = document("SimulatedEntrySerializer", {
    "trigger": serializers.CharField(allow_blank=True, help_text="The trigger's type; api: a broadcast."),
    "matched": serializers.BooleanField(allow_null=True, help_text="The event matched the trigger (null: not an "
                                                                   "event trigger, taken as firing)."),
    "filters": SimulatedFilter(many=True, help_text="The trigger's event filters, each answered."),
    "audience": SimulatedCondition(allow_null=True, help_text="The campaign's audience (null: it has none)."),
    "re_entry": serializers.CharField(allow_blank=True, help_text=(
        "Why the re-entry rules would refuse a new run now (empty: they admit it); reported, not applied.")),
    "assumed": serializers.ListField(child=serializers.CharField(), help_text="What the simulation takes as given."),
    "reason": serializers.CharField(allow_blank=True, help_text="Why the person would not enter (empty: they do)."),
    "trigger_data": json_object(help_text="`trigger.*` of the run."),
}, "Whether and how the person would enter.")
SimulatedStep = document("SimulatedStepSerializer", {
    "seq": serializers.IntegerField(),
    "key": serializers.CharField(allow_blank=True, help_text="The step's key."),
    "type": serializers.CharField(allow_null=True),
    "at": unix_time(help_text="Unix seconds on the virtual clock."),
    "outcome": serializers.CharField(help_text="As the step log's, plus `simulated` for a webhook not called."),
    "detail": json_object(help_text="The step log's detail; `conditions` (each asked with its answer and why) and "
                                    "`assumed` (a wait's timeout) added."),
})
SimulatedMessage = document("SimulatedMessageSerializer", {
    "seq": serializers.IntegerField(help_text="The step execution that made it."),
    "step": serializers.CharField(),
    "at": unix_time(help_text="Unix seconds on the virtual clock."),
    "variant": serializers.CharField(allow_null=True, help_text="The A/B variant, if the step has variants."),
    "channel": serializers.CharField(),
    "to": serializers.CharField(allow_blank=True),
    "from": serializers.CharField(allow_blank=True),
    "reply_to": serializers.CharField(allow_blank=True),
    "subject": serializers.CharField(allow_blank=True),
    "body": serializers.CharField(allow_blank=True, help_text="As the person would get it (HTML for email)."),
    "text": serializers.CharField(allow_blank=True, help_text="An email's plain-text part."),
    "payload": json_object(),
    "status": serializers.CharField(help_text="queued (would be sent); suppressed (consent, suppression list), failed or undeliverable (capped, no address...), with the reason."),
    "reason": serializers.CharField(allow_blank=True),
})
SimulatedEnd = document("SimulatedEndSerializer", {
    "state": serializers.ChoiceField(choices=JourneyState.choices, help_text="Live (waiting, active) if truncated."),
    "reason": serializers.CharField(allow_blank=True),
    "at": unix_time(allow_null=True),
    "next_run_at": unix_time(allow_null=True, help_text="When a truncated run would go on."),
})
SimulateResponse = document("CampaignSimulationSerializer", {
    "entered": serializers.BooleanField(),
    "entry": SimulatedEntry(),
    "steps": SimulatedStep(many=True),
    "messages": SimulatedMessage(many=True),
    "ended": SimulatedEnd(allow_null=True, help_text="Null when the person would not enter."),
    "truncated": serializers.BooleanField(help_text="Stopped after 200 step executions or 400 virtual days."),
}, "What the campaign would do for the person; nothing was written or sent.")


# --- metrics -------------------------------------------------------------------------------------------

COUNT = serializers.IntegerField
MessageCounts = document("StepMessageCountsSerializer", {
    "deliveries": COUNT(help_text="Messages the step made."),
    **{name: COUNT() for name in ("sent", "delivered", "opened", "clicked", "converted", "bounced", "unsubscribed")},
}, "What happened to the messages a send step made.")
StepMetrics = document("StepMetricsSerializer", {
    "id": serializers.CharField(help_text="The step's key."),
    "type": serializers.CharField(help_text="The step's type (as logged, for a removed step)."),
    "removed": serializers.BooleanField(help_text="No longer in the workflow; runs passed through it."),
    "entered": COUNT(help_text="Runs that executed the step."),
    "waiting": COUNT(help_text="Runs waiting at it now."),
    "completed": COUNT(help_text="Runs that got past it."),
    "exited": COUNT(help_text="Runs that exited at it."),
    "exited_by_reason": serializers.DictField(child=COUNT()),
    "failed": COUNT(help_text="Runs whose step failed here."),
    "outcomes": serializers.DictField(child=COUNT(), help_text="Step executions by outcome."),
    "messages": MessageCounts(allow_null=True, help_text="Send steps."),
    "variants": SchemaField({
        "type": "object", "additionalProperties": {"type": "object"},
        "description": "Send steps with A/B variants: per variant key (control first) its message counts as in "
                       "`messages` and, for the others, `test`: figures against the control; `holdout`: "
                       "{\"runs\", \"converted\"}.",
    }, required=False),
    "decision": SchemaField({
        "type": "object", "required": ["winner", "decided_at", "figures"],
        "properties": {"winner": {"type": "string", "description": "The winning variant's key."},
                       "decided_at": {"type": "string", "format": "date-time"},
                       "figures": {"type": "object", "description": "Each variant's sent, successes and rate; "
                                                                      "each test's always-valid p-value."}},
    }, allow_null=True, required=False,
        help_text="Send steps with A/B variants: the automatic winner once decided (docs/experiments.md), else null."),
})
MetricsTotals = document("CampaignMetricsTotalsSerializer", {
    "entered": COUNT(help_text="Runs ever started."),
    "live": COUNT(help_text="Runs active or waiting."),
    "completed": COUNT(), "exited": COUNT(), "failed": COUNT(), "converted": COUNT(),
})
LiftGroup = document("HoldoutLiftGroupSerializer", {
    "runs": COUNT(), "converted": COUNT(help_text="Runs that reached the campaign's goal."),
    "rate": serializers.FloatField(allow_null=True, help_text="converted / runs; null without runs."),
})
HoldoutLift = document("HoldoutLiftSerializer", {
    "goal": serializers.BooleanField(help_text="Whether the campaign has a goal (without one nobody converts)."),
    "held_out": LiftGroup(help_text="Runs the workspace's global holdout kept from every message."),
    "messaged": LiftGroup(help_text="Runs that were sent at least one message."),
    "lift": serializers.FloatField(allow_null=True, help_text="messaged rate − held-out rate."),
    "relative_lift": serializers.FloatField(allow_null=True, help_text="lift / held-out rate."),
    "test": SchemaField({"type": "object", "description": "The two-proportion z-test of messaged against held out "
                                                          "(p_value, z, chance_to_beat_control, ci_low and ci_high of the "
                                                          "difference; docs/experiments.md)."}),
}, "Goal conversion of runs held out by the global holdout against messaged runs (docs/journeys.md).")
CampaignMetrics = document("CampaignMetricsSerializer", {
    "campaign_id": serializers.IntegerField(), "totals": MetricsTotals(), "steps": StepMetrics(many=True),
    "versions": serializers.DictField(child=MetricsTotals(), help_text=(
        "The totals per campaign version (by number) of the runs on it; a run moved by a publish counts in "
        "its new version.")),
    "holdout_lift": HoldoutLift(),
})
CampaignMetricsResponse = document("CampaignMetricsResponseSerializer", {"metrics": CampaignMetrics()})
JourneyMetrics = document("JourneyMetricsSerializer", {
    **{name: serializers.ListField(child=COUNT(), help_text=text) for name, text in (
        ("triggered", "Runs started in each period (Ulak makes a run only for people its trigger and audience "
                      "admit, so this equals `started`)."),
        ("started", "Runs started in each period."),
        ("messaged", "Of those, runs a send step sent a message to."),
        ("never_messaged", "Of those, runs that ended without a message."),
        ("converted", "Of those, runs that reached the goal."),
        ("exited_early", "Of those, runs that exited (an exit rule, a removed step, the campaign stopped)."),
        ("periods", "Each period's start (Unix seconds, UTC)."))},
}, "Customer.io's journey metrics: one array element per period, by when the runs started.")
JourneyMetricsResponse = document("JourneyMetricsResponseSerializer", {"journey_metrics": JourneyMetrics()})


# --- versions (version_views.py) -------------------------------------------------------------------------

OLD_NEW = {"type": "object", "required": ["old", "new"], "additionalProperties": False,
           "properties": {"old": {"description": "Any JSON value (null: absent)."},
                          "new": {"description": "Any JSON value (null: absent)."}}}
VERSION = {
    "number": serializers.IntegerField(help_text="1 for the first version; each publish of a campaign that has "
                                                 "been live adds one."),
    "author": serializers.CharField(allow_blank=True, help_text=(
        "Who published it: a console user's email, \"API key <name>\", or the source (cli, system).")),
    "created": unix_time(),
    "published": SchemaField({
        "type": "object", "nullable": True, "additionalProperties": False,
        "required": ["runs", "removed", "affected"],
        "properties": {
            "runs": {"type": "string", "nullable": True, "enum": ["stay", "move", "exit", None],
                     "description": "What the publish did with the live runs (null: none were live)."},
            "removed": {"type": "object", "additionalProperties": {"type": "string", "nullable": True},
                        "description": "Under move: removed step → the step its runs went to (null: they exited)."},
            "affected": {"type": "object", "additionalProperties": {"type": "integer"},
                         "description": "Live runs at each step when it was published."},
        },
    }, allow_null=True, help_text="Null for the first version and a draft's."),
    "current": serializers.BooleanField(help_text="The campaign's version now (new runs enter it)."),
}
Version = document("CampaignVersionSerializer", VERSION, "A version of a campaign's definition.")
VersionList = document("CampaignVersionListSerializer", {"versions": Version(many=True)})
VersionDetail = document("CampaignVersionDetailSerializer", {
    **VERSION, "definition": json_object(help_text="The definition as PUT takes it."),
}, "A version with its definition.")
VersionResponse = document("CampaignVersionResponseSerializer", {"version": VersionDetail()})
VersionStepsDiff = document("CampaignVersionStepsDiffSerializer", {
    "added": serializers.ListField(child=serializers.CharField()),
    "removed": serializers.ListField(child=serializers.CharField()),
    "changed": SchemaField({"type": "object", "additionalProperties": {"type": "object", "additionalProperties": OLD_NEW},
                            "description": "Per changed step, each field that changed with its old and new value."}),
})
VersionDiff = document("CampaignVersionDiffSerializer", {
    "version": serializers.IntegerField(), "against": serializers.IntegerField(help_text="The version compared with."),
    "fields": SchemaField({"type": "object", "additionalProperties": OLD_NEW, "description": (
        "Top-level fields that changed (and workflow.start) with their old and new value.")}),
    "steps": VersionStepsDiff(),
}, "What changed from version `against` to `version`.")
VersionDiffResponse = document("CampaignVersionDiffResponseSerializer", {"diff": VersionDiff()})
PreviewStep = document("PublishPreviewStepSerializer", {
    "key": serializers.CharField(allow_blank=True, help_text="The step's key."),
    "runs": COUNT(help_text="Live runs at it now."),
    "change": serializers.ChoiceField(choices=["unchanged", "changed", "removed"],
                                      help_text="What the new workflow does with the step."),
    "type_changed": serializers.BooleanField(help_text="Its type changed (or a wait_until step waits for something "
                                                       "else): under move, runs there run the new step at once."),
})
PublishPreview = document("PublishPreviewSerializer", {
    "version": serializers.IntegerField(help_text="The current version."),
    "next_version": serializers.IntegerField(help_text="The version the update would make (the same for a campaign "
                                                       "never activated: a draft's edits rewrite it; the same when "
                                                       "`changed` is false: nothing is stored)."),
    "changed": serializers.BooleanField(help_text="Whether the update changes the definition. False: it stores "
                                                  "nothing, makes no version and leaves the runs as they are (a "
                                                  "`publish` given is checked, not done)."),
    "live_runs": COUNT(),
    "workflow_changed": serializers.BooleanField(),
    "publish_required": serializers.BooleanField(help_text="Whether the update must say what happens to the runs "
                                                           "(`publish`)."),
    "steps": PreviewStep(many=True),
    "added": serializers.ListField(child=serializers.CharField(), help_text="Steps the new workflow adds."),
}, "The dry count of a publish: nothing was stored.")
PublishPreviewResponse = document("PublishPreviewResponseSerializer", {"preview": PublishPreview()})


# --- broadcast triggers --------------------------------------------------------------------------------
# Answered by broadcast_views.py; the body is what campaigns/journeys/broadcasts.clean_request accepts.

IDENTIFIER = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 254}, {"type": "integer"}]}
LOCAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"


def _identifiers(what: str) -> SchemaField:
    return SchemaField({"type": "array", "minItems": 1, "maxItems": MAX_RECIPIENTS_LISTED, "items": IDENTIFIER,
                        "nullable": True}, required=False, allow_null=True, help_text=what)


def _broadcast_flag(what: str) -> serializers.BooleanField:
    return serializers.BooleanField(required=False, help_text=what + " Default false.")


BroadcastTriggerBody = document("BroadcastTriggerRequestSerializer", {
    "data": json_object(required=False, allow_null=True,
                        help_text="`trigger.*` in the broadcast's messages, for every recipient."),
    "recipients": json_object(required=False, allow_null=True, help_text=(
        "A condition tree of the segment condition language: who receives it. Give at most one of recipients, "
        "ids, emails and per_user_data; none: the campaign's audience (everybody when it has none).")),
    "ids": _identifiers("People by id (external id); ids that name nobody are errors of the trigger."),
    "emails": _identifiers("People by email (case-insensitive); emails that name nobody are errors of the "
                           "trigger."),
    "per_user_data": SchemaField({
        "type": "array", "minItems": 1, "maxItems": MAX_RECIPIENTS_LISTED, "nullable": True,
        "items": {"type": "object", "additionalProperties": False, "properties": {
            "id": IDENTIFIER, "email": {"type": "string", "minLength": 1, "maxLength": 254},
            "data": {"type": "object", "nullable": True, "description": "Merged over `data` for this person."},
        }},
    }, required=False, allow_null=True, help_text=(
        "People with data of their own: each row {\"id\" or \"email\": ..., \"data\": {...}}, every row naming "
        "its person the same way.")),
    "id_ignore_missing": _broadcast_flag("true: ids (or per_user_data ids) that name nobody are not errors."),
    "email_ignore_missing": _broadcast_flag("true: emails that name nobody are not errors."),
    "email_add_duplicates": _broadcast_flag("Accepted for Customer.io's clients; an email names one person here."),
    "send_at": SchemaField({"type": "number", "minimum": 1, "maximum": 253402300798, "nullable": True},
                           required=False, allow_null=True,
                           help_text="Unix seconds: fix the recipients and send then (a past time: now)."),
    "local_time": SchemaField({"type": "string", "pattern": LOCAL_TIME, "nullable": True}, required=False,
                              allow_null=True, help_text=(
                                  "YYYY-MM-DDTHH:MM: send at this wall-clock time in each recipient's time zone "
                                  "(not with send_at).")),
}, "Trigger an active broadcast (Customer.io's API-triggered broadcast). Any other field is a 400; no person is "
   "ever created.", closed=True)
BroadcastTriggered = document("BroadcastTriggeredSerializer", {
    "id": serializers.IntegerField(help_text="The trigger's id: follow it at GET /v1/campaigns/{id}/triggers/"
                                             "{trigger_id}."),
}, "The trigger stored (or, for a repeated Idempotency-Key, the one first stored).")
BroadcastABTestDoc = document("BroadcastABTestSerializer", {
    "step": serializers.CharField(help_text="The send step's key."),
    "metric": serializers.ChoiceField(choices=["opened", "clicked", "converted"], allow_null=True,
                                      help_text="What the sample's winner is judged on (the step's winner.metric)."),
    "sample_percent": serializers.IntegerField(allow_null=True, help_text=(
        "The share of the recipients in the sample (null: the step no longer has a sample).")),
    "wait": SchemaField({"type": "object", "nullable": True, "minProperties": 1, "maxProperties": 1,
                         "properties": {unit: {"type": "integer", "minimum": 1} for unit in DURATION_UNITS}},
                        allow_null=True,
                        help_text="How long the rest wait after the recipients were fixed."),
    "sample_size": serializers.IntegerField(help_text="Sample recipients sent their variant so far."),
    "held_for_winner": serializers.IntegerField(help_text="Recipients outside the sample held for the winner."),
    "rest_sent": serializers.IntegerField(help_text="Of them, those sent the winner so far."),
    "wait_ends_at": unix_time(allow_null=True, help_text=(
        "Unix seconds: when the rest get the winner: the wait counted from when the trigger's first run reached "
        "the step (null until one has).")),
    "winner": serializers.CharField(allow_null=True, help_text="The winning variant's key, once decided."),
    "decided_at": unix_time(allow_null=True, help_text="Unix seconds: when the winner was decided."),
    "figures": SchemaField({
        "type": "object", "nullable": True,
        "properties": {"metric": {"type": "string"}, "control": {"type": "string"},
                       "sample_percent": {"type": "integer"}, "by": {"type": "string"},
                       "variants": {"type": "object", "additionalProperties": {"type": "object"},
                                    "description": "Per variant: sent, successes on the metric (keyed by its "
                                                   "name) and rate."}},
    }, allow_null=True, help_text="The sample's figures at the decision (null while undecided)."),
}, "A broadcast A/B test on a sample (docs/journeys.md \"A/B variants\"): the sample gets the variants at "
   "once, the rest the best variant on the metric after the wait.")
BroadcastTriggerDoc = document("BroadcastTriggerSerializer", {
    "id": serializers.IntegerField(),
    "campaign_id": serializers.IntegerField(),
    "state": serializers.ChoiceField(choices=BroadcastTriggerState.choices, help_text=(
        "failed: the broadcast was no longer active when the trigger was due.")),
    "processed": serializers.BooleanField(help_text="state is not pending."),
    "created_at": unix_time(),
    "processed_at": unix_time(allow_null=True),
    "send_at": unix_time(allow_null=True, help_text="Unix seconds, if the request gave send_at."),
    "local_time": serializers.CharField(allow_null=True, help_text="The request's local_time, if it gave one."),
    "recipients": serializers.IntegerField(help_text="Runs created (0 while pending)."),
    "error_count": serializers.IntegerField(help_text="Identifiers that named nobody."),
    "error": serializers.CharField(allow_null=True, help_text="Why a failed trigger failed."),
    "ab_tests": BroadcastABTestDoc(many=True, help_text=(
        "One per send step that tests its variants on a sample of this trigger's recipients (the step's "
        "`sample`); empty for other broadcasts.")),
}, "A trigger of a broadcast.")
BroadcastTriggerResponse = document("BroadcastTriggerResponseSerializer", {"trigger": BroadcastTriggerDoc()})
BroadcastErrorDoc = document("BroadcastErrorSerializer", {
    "identifier": serializers.CharField(allow_blank=True, help_text="The id or email the request named."),
    "reason": serializers.CharField(),
}, "A recipient the trigger could not reach.")
BroadcastErrorList = document("BroadcastErrorListSerializer", {
    "errors": BroadcastErrorDoc(many=True),
    "next": serializers.CharField(allow_blank=True, help_text="Cursor of the next page; empty on the last page."),
})


# --- delivery rules (delivery_rules_views.py) ---------------------------------------------------------

PERIOD = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
          "properties": {unit: {"type": "integer", "minimum": 1} for unit in DURATION_UNITS},
          "description": "A rolling window: one unit, e.g. {\"days\": 1} (at most 366 days)."}
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _frequency_cap(name: str, *, closed: bool):
    return document(name, {
        "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_null=True,
                                           help_text="The channel counted and capped; null: all channels."),
        "limit": serializers.IntegerField(min_value=1, max_value=10_000,
                                          help_text="At most this many messages in the window."),
        "period": SchemaField(PERIOD),
    }, "At most `limit` campaign and broadcast messages per person in a rolling `period`.", closed=closed)


def _quiet_hours(name: str, *, closed: bool):
    return document(name, {
        "start": serializers.RegexField(HH_MM, help_text="When quiet hours begin, HH:MM on the person's clock."),
        "end": serializers.RegexField(HH_MM, help_text="When they end (before start: they span midnight)."),
        "timezone": serializers.CharField(allow_null=True, required=False, help_text=(
            "The IANA zone for people without one (their `timezone` attribute, then their profile's zone come "
            "first); null: the workspace's.")),
    }, "No marketing sends between start and end in the person's time zone.", closed=closed)


FrequencyCap = _frequency_cap("FrequencyCapSerializer", closed=False)
QuietHours = _quiet_hours("QuietHoursSerializer", closed=False)
DeliveryRulesDoc = document("DeliveryRulesSerializer", {
    "frequency_caps": FrequencyCap(many=True),
    "quiet_hours": QuietHours(allow_null=True),
    "holdout_percent": serializers.IntegerField(min_value=0, max_value=50, help_text=(
        "Percent of people (a stable draw) who get no marketing messages; transactional still goes.")),
    "updated": unix_time(allow_null=True, help_text="Unix seconds of the last change; null: never set."),
}, "The workspace's delivery rules for campaign and broadcast sends (docs/journeys.md).")
DeliveryRulesResponse = document("DeliveryRulesResponseSerializer", {"delivery_rules": DeliveryRulesDoc()})
FrequencyCapInput = _frequency_cap("FrequencyCapInputSerializer", closed=True)
QuietHoursInput = _quiet_hours("QuietHoursInputSerializer", closed=True)
DeliveryRulesBody = document("DeliveryRulesInputSerializer", {
    "frequency_caps": FrequencyCapInput(many=True, required=False, allow_null=True),
    "quiet_hours": QuietHoursInput(required=False, allow_null=True),
    "holdout_percent": serializers.IntegerField(min_value=0, max_value=50, required=False, allow_null=True),
}, "The whole rules: fields left out take their defaults (no caps, no quiet hours, no holdout).", closed=True)
