"""OpenAPI components of the compliance App API (documentation only).

Each one describes what a view answers or accepts today: the audit-log rows of
`audit_views.export_row`, the deletion records and suppressions of `deletion_views`
(`record_row`, `suppression_row`), and the data subject export of `compliance/dsar.py`. Exports
are streamed: a JSON array (`application/json`) or CSV (`text/csv`) with the same columns. Times
are ISO 8601 with microseconds and offset.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from channels.models import ChannelType, ConsentRecord, ConsentSource, Delivery, DeliveryStatus, Suppression
from compliance.models import DeletionSource, DeletionStatus, IdentifierKind
from compliance.subjects import IDENTIFIER_TYPES
from core.api.schema import SchemaField, document, iso_time, json_object
from core.exporting import FORMATS
from core.models import AuditSource
from profiles.models import DeadLetterState, DevicePlatform, EventType, SuppressedKind


def query(name: str, description: str, **kwargs) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.QUERY, description=description, **kwargs)


EXPORT_FORMAT = query("format", "json (default: an array) or csv.", enum=list(FORMATS))
SINCE_UNTIL = [query("since", "ISO 8601 or Unix seconds, inclusive (a date alone: from that day's start, UTC)."),
               query("until", "ISO 8601 or Unix seconds, inclusive (a date alone: to that day's end, UTC).")]
ANY_JSON = {"description": "Any JSON value.", "nullable": True}


def exported(row) -> dict:
    """The two answers of a streamed export of `row` serializers."""
    return {(200, "application/json"): row(many=True), (200, "text/csv"): OpenApiTypes.STR}


SubjectIdentifiers = SchemaField({
    "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
    "properties": {kind: {"type": "string", "minLength": 1} for kind in IDENTIFIER_TYPES},
}, help_text='Exactly one of {"id": ...}, {"email": ...}, {"phone": ...} (E.164) or {"cio_id": ...}.')


# --- the audit log -----------------------------------------------------------------------------------

AuditRow = document("AuditLogRowSerializer", {
    "id": serializers.IntegerField(), "timestamp": iso_time(),
    "source": serializers.ChoiceField(choices=AuditSource.choices),
    "action": serializers.CharField(help_text="create, update, delete, access, or the recorded verb (login, "
                                              "audit_log_exported...)."),
    "actor_email": serializers.CharField(allow_null=True),
    "api_key_id": serializers.IntegerField(allow_null=True),
    "remote_addr": serializers.CharField(allow_null=True),
    "model": serializers.CharField(allow_null=True, help_text="app_label.model"),
    "object_pk": serializers.CharField(allow_blank=True),
    "object_repr": serializers.CharField(allow_blank=True),
    "changes": SchemaField(ANY_JSON, allow_null=True, help_text="What changed (auditlog's format), or what was "
                                                                 "recorded; CSV: as JSON."),
}, "One audit-log entry, oldest first.")


# --- deletions and suppressions ----------------------------------------------------------------------

DeletionRequest = document("DeletionRequestSerializer", {
    "identifiers": SubjectIdentifiers,
    "reason": serializers.CharField(max_length=1000, required=False, allow_null=True, allow_blank=True),
}, "Forget a person: their identifiers are suppressed now, the deletion runs in the background.")
DeletionAccepted = document("DeletionAcceptedSerializer", {
    "deletion": document("DeletionStartedSerializer", {
        "id": serializers.IntegerField(), "status": serializers.ChoiceField(choices=DeletionStatus.choices),
        "requested_at": iso_time(),
    })(),
})
DeletionRecordRow = document("DeletionRecordSerializer", {
    "id": serializers.IntegerField(), "status": serializers.ChoiceField(choices=DeletionStatus.choices),
    "identifier_type": serializers.ChoiceField(choices=IdentifierKind.choices),
    "identifier_hash": serializers.CharField(help_text="HMAC-SHA256 with the workspace's secret: never the "
                                                       "identifier itself."),
    "source": serializers.ChoiceField(choices=DeletionSource.choices),
    "requested_by_id": serializers.IntegerField(allow_null=True),
    "api_key_id": serializers.IntegerField(allow_null=True),
    "reason": serializers.CharField(allow_blank=True),
    "counts": serializers.DictField(child=serializers.IntegerField(), help_text="Rows removed, per table."),
    "requested_at": iso_time(), "started_at": iso_time(allow_null=True), "completed_at": iso_time(allow_null=True),
}, "A deletion request and, once completed, the record that it was done (no personal data).")
DeletionRecordResponse = document("DeletionRecordResponseSerializer", {"deletion": DeletionRecordRow()})

SuppressedIdentifierRow = document("SuppressedIdentifierSerializer", {
    "id": serializers.IntegerField(), "kind": serializers.ChoiceField(choices=SuppressedKind.choices),
    "hash": serializers.CharField(help_text="Keyed hash of the identifier."),
    "created_at": iso_time(), "lifted_at": iso_time(allow_null=True),
    "dropped": serializers.IntegerField(help_text="Ingest operations dropped."),
    "deletion_id": serializers.IntegerField(allow_null=True),
}, "An identifier of a deleted person: ingest naming it is dropped until the suppression is lifted.")
SuppressedIdentifierPage = document("SuppressedIdentifierPageSerializer", {
    "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
    "results": SuppressedIdentifierRow(many=True),
}, "A page, newest first; follow `next` (a URL with its cursor).")
SuppressedIdentifierResponse = document("SuppressedIdentifierResponseSerializer",
                                        {"suppression": SuppressedIdentifierRow()})
CURSOR_PAGING = [query("cursor", "From a page's `next` or `previous`; an unknown one is a 404."),
                 OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY,
                                  description="Page size: default 50, at most 1000.")]


# --- the data subject export -------------------------------------------------------------------------

ExportRequest = document("PersonalDataExportRequestSerializer", {"identifiers": SubjectIdentifiers},
                         "The person to export.")


def _rows(name: str, fields: dict, doc: str = ""):
    return document(f"Dsar{name}Serializer", fields, doc)(many=True)


TIME = iso_time
NULL_TIME = lambda: iso_time(allow_null=True)  # noqa: E731
TEXT = lambda **kwargs: serializers.CharField(allow_blank=True, **kwargs)  # noqa: E731
ERROR = document("DsarErrorSerializer", {"type": serializers.CharField(), "message": TEXT()})

PersonalDataExport = document("PersonalDataExportSerializer", {
    "generated_at": TIME(),
    "workspace": document("DsarWorkspaceSerializer", {"id": serializers.IntegerField(),
                                                      "name": serializers.CharField()})(),
    "person": document("DsarPersonSerializer", {
        "id": serializers.CharField(allow_null=True), "cio_id": serializers.CharField(),
        "email": serializers.CharField(allow_null=True), "phone": serializers.CharField(allow_null=True),
        "attributes": json_object(), "time_zone": TEXT(), "unsubscribed": serializers.BooleanField(),
        "suppressed": serializers.BooleanField(), "created_at": TIME(), "updated_at": TIME(),
    })(),
    "identities": _rows("Identity", {"anonymous_id": serializers.CharField(), "created_at": TIME()}),
    "devices": _rows("Device", {"id": serializers.CharField(), "platform": serializers.ChoiceField(
        choices=DevicePlatform.choices), "attributes": json_object(), "last_used": NULL_TIME(), "created_at": TIME()}),
    "relationships": _rows("Relationship", {
        "object_type_id": serializers.CharField(), "object_id": serializers.CharField(),
        "relationship_attributes": json_object(), "object_attributes": json_object(),
        "created_at": TIME(), "updated_at": TIME()}),
    "events": _rows("Event", {
        "id": serializers.CharField(), "type": serializers.ChoiceField(choices=EventType.choices),
        "name": serializers.CharField(), "timestamp": TIME(), "data": SchemaField(ANY_JSON),
        "anonymous_id": serializers.CharField(allow_null=True), "dedupe_id": serializers.CharField(allow_null=True),
        "received_at": TIME()}),
    "deliveries": _rows("Delivery", {
        "id": serializers.CharField(), "channel": serializers.ChoiceField(choices=ChannelType.choices),
        "source": serializers.ChoiceField(choices=Delivery.Source.choices), "source_id": TEXT(),
        "transactional_message_id": serializers.IntegerField(allow_null=True),
        "status": serializers.ChoiceField(choices=DeliveryStatus.choices), "recipient": TEXT(), "subject": TEXT(),
        "body": TEXT(), "body_plain": TEXT(), "payload": json_object(), "content": json_object(),
        "message_data": json_object(), "content_purged_at": NULL_TIME(), "failure_reason": TEXT(),
        "created_at": TIME(), "send_at": NULL_TIME(), "sent_at": NULL_TIME(), "delivered_at": NULL_TIME(),
        "opened_at": NULL_TIME(), "clicked_at": NULL_TIME(), "converted_at": NULL_TIME(), "failed_at": NULL_TIME(),
        "events": _rows("DeliveryEvent", {"kind": serializers.CharField(), "at": TIME(), "data": json_object()}),
    }, "With its rendered content and events."),
    "inbound_messages": _rows("InboundMessage", {
        "channel": serializers.ChoiceField(choices=ChannelType.choices), "from": serializers.CharField(),
        "to": TEXT(), "body": TEXT(), "media": serializers.ListField(child=SchemaField(ANY_JSON)),
        "keyword": TEXT(), "received_at": TIME()}),
    "demo_messages": _rows("DemoMessage", {
        "delivery_id": serializers.CharField(), "channel": serializers.ChoiceField(choices=ChannelType.choices),
        "recipient": TEXT(), "sender": TEXT(), "reply_to": TEXT(), "subject": TEXT(), "body": TEXT(),
        "body_plain": TEXT(), "headers": json_object(), "payload": json_object(), "created_at": TIME(),
    }, "What demo-provider channel configurations stored of the person's deliveries instead of sending them."),
    "segment_memberships": _rows("SegmentMembership", {
        "segment_id": serializers.IntegerField(), "segment": serializers.CharField(),
        "entered_at": TIME(), "exited_at": NULL_TIME()}),
    "consent": _rows("Consent", {
        "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_blank=True), "topic": TEXT(),
        "action": serializers.ChoiceField(choices=ConsentRecord.Action.choices),
        "source": serializers.ChoiceField(choices=ConsentSource.choices), "evidence": json_object(),
        "created_at": TIME()}),
    "subscription_preferences": _rows("SubscriptionPreference", {
        "channel": serializers.ChoiceField(choices=ChannelType.choices, allow_blank=True),
        "topic": serializers.CharField(allow_null=True), "subscribed": serializers.BooleanField(),
        "source": serializers.ChoiceField(choices=ConsentSource.choices), "updated_at": TIME()}),
    "suppressions": _rows("Suppression", {
        "channel": serializers.ChoiceField(choices=ChannelType.choices), "address": serializers.CharField(),
        "reason": serializers.ChoiceField(choices=Suppression.Reason.choices), "note": TEXT(), "created_at": TIME()}),
    "ingest_dead_letters": _rows("DeadLetter", {
        "kind": serializers.CharField(), "source": serializers.CharField(), "payload": SchemaField(ANY_JSON),
        "received_at": TIME(), "state": serializers.ChoiceField(choices=DeadLetterState.choices),
        "attempts": serializers.IntegerField(), "error": ERROR(), "created_at": TIME(), "failed_at": TIME(),
        "replayed_at": NULL_TIME(), "discarded_at": NULL_TIME()}),
    "journeys": serializers.ListField(child=SchemaField(ANY_JSON), help_text="Not collected yet: empty."),
    "not_yet_collected": serializers.ListField(child=serializers.CharField(),
                                               help_text="Parts whose features do not exist yet."),
}, "Everything held about one person, as one JSON document (streamed while it is produced).")
