"""OpenAPI components of the people-side APIs (documentation only): segments and ingest dead
letters in the App API, and the ingestion surfaces (Track API v1 and v2, CDP) in their own document
(/api/schema/).

Each one describes what a view answers or accepts today: `segment_views.segment_json`,
`dead_letter_views.dead_letter_json`, and the ingest views' answers (`{}` for Track,
`{"success": true}` for CDP, Track v2's 207). Ingest request bodies are the wire formats of
Customer.io and Segment (docs/ingestion.md): they are described with the fields Ulak reads; other
fields are accepted (person attributes, Segment's `context`...).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core.api.schema import SchemaField, document, iso_time, json_object
from profiles.api.app_serializers import PersonIdentifiersSerializer
from profiles.ingest.metrics import METRIC_KINDS, PUSH_EVENTS
from profiles.ingest.track_v2 import ACTIONS
from profiles.models import DeadLetterState, DevicePlatform, EventType, SegmentState

CURSOR = "Cursor of the next page; empty on the last page."
ANY_JSON = {"description": "Any JSON value."}
ID_TYPE = OpenApiParameter("id_type", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=["id", "email", "cio_id"],
                           description="What the ids are; default id.")
PAGING = [OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY,
                           description="Page size: default 50, at most 1000."),
          OpenApiParameter("start", OpenApiTypes.STR, OpenApiParameter.QUERY,
                           description="The `next` of the previous page.")]
# Choice sets named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].
SEGMENT_TYPES = ["dynamic", "manual"]


# --- segments ------------------------------------------------------------------------------------------

Segment = document("SegmentSerializer", {
    "id": serializers.IntegerField(), "name": serializers.CharField(),
    "description": serializers.CharField(allow_blank=True),
    "type": serializers.ChoiceField(choices=SEGMENT_TYPES, help_text="dynamic: data-driven (`conditions`); manual."),
    "conditions": json_object(help_text="The condition tree (docs/segments.md); {} for a manual segment."),
    "state": serializers.ChoiceField(choices=SegmentState.choices),
    "progress": serializers.IntegerField(help_text="Percent of the last full recompute."),
    "member_count": serializers.IntegerField(),
    "computed_at": iso_time(allow_null=True),
}, "A segment (Customer.io's shape).")
SegmentResponse = document("SegmentResponseSerializer", {"segment": Segment()})
SegmentList = document("SegmentListSerializer", {"segments": Segment(many=True)})


def _segment_input(name: str, *, create: bool):
    definition = document(f"{name}DefinitionSerializer", {
        "name": serializers.CharField(max_length=200, required=create),
        "description": serializers.CharField(required=False, allow_blank=True),
        "type": serializers.ChoiceField(choices=SEGMENT_TYPES, required=False, help_text=(
            "Default: dynamic with conditions, manual without." if create else "Cannot be changed.")),
        "conditions": SchemaField({"type": "object"}, required=False, allow_null=True,
                                  help_text="The condition tree (docs/segments.md); a bad one is a 400 naming "
                                            "its path (`segment.conditions.and.0...`)."),
    })
    return document(f"{name}Serializer", {"segment": definition()},
                    "Create a segment." if create else "Only the fields given change (PUT too).")


SegmentCreate = _segment_input("SegmentCreate", create=True)
SegmentUpdate = _segment_input("SegmentUpdate", create=False)

SegmentMembers = document("SegmentMembershipSerializer", {
    "identifiers": PersonIdentifiersSerializer(many=True),
    "ids": serializers.ListField(child=serializers.CharField(), help_text="The `id` of each member that has one."),
    "next": serializers.CharField(allow_blank=True, help_text=CURSOR),
}, "Current members by ascending internal id.")
SegmentCount = document("SegmentCustomerCountSerializer", {"count": serializers.IntegerField()})
SegmentPeople = document("SegmentPeopleSerializer", {
    "ids": SchemaField({"type": "array", "maxItems": 1000,
                        "items": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}},
                       help_text="Ids of the kind `id_type` names (at most 1000)."),
})
SegmentChange = document("SegmentMembershipChangeSerializer", {
    "count": serializers.IntegerField(help_text="People who entered (or left) the segment."),
    "unknown_ids": serializers.ListField(child=serializers.CharField(), help_text="Ids that named nobody."),
})
SegmentPreviewRequest = document("SegmentPreviewSerializer", {
    "conditions": SchemaField({"type": "object"}, help_text="A condition tree to evaluate now (saves nothing)."),
})
SegmentPreview = document("SegmentPreviewResultSerializer", {
    "count": serializers.IntegerField(), "sample": PersonIdentifiersSerializer(many=True,
                                                                              help_text="Up to 10 of them."),
})


# --- ingest dead letters ------------------------------------------------------------------------------

DeadLetterError = document("DeadLetterErrorSerializer", {
    "type": serializers.CharField(), "message": serializers.CharField(allow_blank=True)})
DeadLetter = document("DeadLetterSerializer", {
    "id": serializers.IntegerField(), "state": serializers.ChoiceField(choices=DeadLetterState.choices),
    "kind": serializers.CharField(help_text="The operation kind (identify, event...)."),
    "source": serializers.CharField(help_text="track, cdp..."),
    "payload": SchemaField(ANY_JSON, help_text="The staged operation as it was accepted."),
    "received_at": iso_time(), "error": DeadLetterError(), "attempts": serializers.IntegerField(),
    "created_at": iso_time(), "failed_at": iso_time(), "replayed_at": iso_time(allow_null=True),
    "discarded_at": iso_time(allow_null=True), "updated_at": iso_time(),
}, "An ingest operation the processor could not apply, kept with its error.")
DeadLetterResponse = document("DeadLetterResponseSerializer", {"dead_letter": DeadLetter()})
DeadLetterList = document("DeadLetterListSerializer", {
    "dead_letters": DeadLetter(many=True), "next": serializers.CharField(allow_blank=True, help_text=CURSOR)})
DeadLetterReplayRequest = document("DeadLetterReplaySerializer", {
    "ids": serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000,
                                 required=False, help_text="Absent: every dead letter of the workspace."),
})
DeadLetterReplayed = document("DeadLetterReplayResultSerializer", {
    "replayed": serializers.IntegerField(help_text="How many were staged again.")})
DEAD_LETTER_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The dead letter's id.")


# --- ingestion: answers ---------------------------------------------------------------------------------

TrackAccepted = document("TrackAcceptedSerializer", {},
                         "Staged: the operations are stored and will be applied in order.")
CdpAccepted = document("CdpAcceptedSerializer", {"success": serializers.BooleanField()},
                       "Staged (Segment's answer: the client treats anything else as a failure).")
BatchErrorItem = document("BatchErrorItemSerializer", {
    "batch_index": serializers.IntegerField(required=False, help_text="The operation's index in `batch`."),
    "reason": serializers.ChoiceField(choices=["invalid", "too_large"], required=False),
    "field": serializers.CharField(allow_null=True, help_text="`batch.<i>.<field>`."),
    "message": serializers.CharField(),
})
BatchPartial = document("TrackBatchPartialSerializer", {"errors": BatchErrorItem(many=True)},
                        "Some operations were invalid: the valid ones are stored (Customer.io's 207).")
BatchError = document("TrackBatchErrorSerializer", {
    "meta": document("TrackBatchErrorMetaSerializer", {"error": serializers.CharField()})(),
    "errors": BatchErrorItem(many=True),
}, "Nothing stored: the body is wrong, or every operation is (then each error names its `batch_index`).")


# --- ingestion: Track API v1 ----------------------------------------------------------------------------

TIMESTAMP = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "nullable": True,
             "description": "Unix seconds (milliseconds tolerated) or ISO 8601 with a time zone."}
ATTRIBUTES = {"type": "object", "additionalProperties": ANY_JSON}


def timestamp(**kwargs) -> SchemaField:
    return SchemaField(TIMESTAMP, required=False, allow_null=True, **kwargs)


Identify = document("TrackIdentifySerializer", {
    "email": serializers.CharField(required=False, allow_null=True, allow_blank=True),
    "phone": serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="E.164."),
    "unsubscribed": serializers.BooleanField(required=False, allow_null=True),
    "created_at": timestamp(help_text="Stored as a Unix attribute."),
    "_timestamp": timestamp(help_text="When these values were true (an older write never replaces a newer one)."),
    "_update": serializers.BooleanField(required=False, help_text="true: only update an existing person."),
    "anonymous_id": serializers.CharField(required=False, allow_null=True, allow_blank=True),
    "id": serializers.CharField(required=False, allow_null=True,
                                help_text="Sets the id of a person named by cio_<cio_id>."),
    "cio_relationships": SchemaField({"oneOf": [{"type": "array", "items": {"type": "object"}},
                                                {"type": "object"}]}, required=False, allow_null=True),
}, "Person attributes (any other field is an attribute; \"\" or null removes it) and reserved fields.")
Event = document("TrackEventSerializer", {
    "name": serializers.CharField(max_length=255),
    "type": serializers.ChoiceField(choices=EventType.choices, required=False, allow_null=True),
    "data": json_object(required=False, allow_null=True),
    "id": serializers.CharField(required=False, allow_null=True, help_text="Dedupe id: stored once."),
    "timestamp": timestamp(),
})
AnonymousEvent = document("TrackAnonymousEventSerializer", {
    "name": serializers.CharField(max_length=255),
    "anonymous_id": serializers.CharField(required=False, allow_null=True, allow_blank=True),
    "type": serializers.ChoiceField(choices=EventType.choices, required=False, allow_null=True),
    "data": json_object(required=False, allow_null=True),
    "id": serializers.CharField(required=False, allow_null=True, help_text="Dedupe id: stored once."),
    "timestamp": timestamp(),
})
Device = document("TrackDeviceSerializer", {
    "device": SchemaField({
        "type": "object", "required": ["id"], "additionalProperties": ANY_JSON,
        "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 512},
                       "platform": {"type": "string", "enum": list(DevicePlatform.values)},
                       "last_used": TIMESTAMP, "attributes": {"type": "object"}},
    }, help_text="The device token (`id`), its platform; other fields are its attributes."),
})
PERSON_REF = {"type": "object", "minProperties": 1,
              "properties": {key: {"oneOf": [{"type": "string"}, {"type": "integer"}]} for key in ("id", "email",
                                                                                                 "cio_id")},
              "description": "Exactly one of id, email, cio_id."}
Merge = document("TrackMergeSerializer", {"primary": SchemaField(PERSON_REF), "secondary": SchemaField(PERSON_REF)},
                 "Move the secondary person into the primary one.")
Metric = document("TrackMetricSerializer", {
    "delivery_id": serializers.CharField(max_length=64),
    "metric": serializers.ChoiceField(choices=list(METRIC_KINDS)),
    "timestamp": timestamp(), "href": serializers.CharField(max_length=2000, required=False),
    "reason": serializers.CharField(max_length=1000, required=False),
}, "A delivery metric only the client sees.")
PushEvent = document("TrackPushEventSerializer", {
    "delivery_id": serializers.CharField(max_length=64),
    "event": serializers.ChoiceField(choices=PUSH_EVENTS),
    "device_id": serializers.CharField(required=False, allow_null=True),
    "timestamp": timestamp(),
}, "The legacy push SDK's metric call.")
SEGMENT_PATH = OpenApiParameter("segment_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The segment's id.")
PERSON_PATH = OpenApiParameter("identifier", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="The person's id, URL-encoded; `cio_<cio_id>` names Ulak's cio_id.")


# --- ingestion: Track API v2 and CDP ----------------------------------------------------------------------

V2_OPERATION = {
    "type": "object", "required": ["type", "action"], "additionalProperties": ANY_JSON,
    "properties": {
        "type": {"type": "string", "enum": [*ACTIONS, "delivery"]},
        "action": {"type": "string", "enum": sorted({a for actions in ACTIONS.values() for a in actions} | {"event"})},
        "identifiers": {"type": "object"},
        "attributes": {"type": "object"},
        "name": {"type": "string"},
        "timestamp": TIMESTAMP,
        "id": {"type": "string"},
        "anonymous_id": {"type": "string"},
        "device": {"type": "object"},
        "primary": {"type": "object"},
        "secondary": {"type": "object"},
        "cio_relationships": {"type": "array", "items": {"type": "object"}},
    },
    "description": "One operation: person (identify, delete, event, page, screen, add/delete_relationships, "
                   "add/delete_device, merge, suppress, unsuppress), object (identify, delete, "
                   "add/delete_relationships) or delivery (event).",
}
V2Operation = document("TrackV2OperationSerializer", {
    name: SchemaField(schema, required=name in V2_OPERATION["required"])
    for name, schema in V2_OPERATION["properties"].items()
}, V2_OPERATION["description"])
V2Batch = document("TrackV2BatchSerializer", {
    "batch": SchemaField({"type": "array", "minItems": 1, "items": V2_OPERATION}),
}, "Operations, each at most 32 KB; 500 KB in all.")

CDP_FIELDS = {
    "userId": SchemaField({"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}, required=False,
                          allow_null=True),
    "anonymousId": serializers.CharField(max_length=200, required=False, allow_null=True),
    "messageId": serializers.CharField(max_length=200, required=False, allow_null=True,
                                       help_text="Deduplicates events."),
    "timestamp": timestamp(), "originalTimestamp": timestamp(),
    "event": serializers.CharField(required=False, help_text="track: the event's name."),
    "name": serializers.CharField(required=False, help_text="page, screen: the name."),
    "properties": json_object(required=False, allow_null=True),
    "traits": json_object(required=False, allow_null=True),
    "groupId": serializers.CharField(required=False, help_text="group: the object's id."),
    "previousId": serializers.CharField(required=False, help_text="alias: the id joined to userId."),
    "context": json_object(required=False, allow_null=True),
    "integrations": json_object(required=False, allow_null=True),
    "writeKey": serializers.CharField(required=False, help_text="The write key, when not sent as Basic auth."),
}
CdpMessage = document("CdpMessageSerializer", CDP_FIELDS,
                      "A Segment message (its type is the path's). Other fields are accepted and ignored.")
CdpBatch = document("CdpBatchSerializer", {
    "batch": SchemaField({"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["type"], "additionalProperties": ANY_JSON,
        "properties": {"type": {"type": "string", "enum": ["identify", "track", "page", "screen", "group",
                                                           "alias"]}}}}),
    "writeKey": serializers.CharField(required=False, help_text="The write key, when not sent as Basic auth."),
    "context": json_object(required=False, allow_null=True),
}, "Segment messages; one invalid message rejects the batch whole (400 naming `batch.N.field`).")
