"""OpenAPI components of the reverse ETL App API (documentation only): what
`profiles/api/source_views.py` answers and accepts (docs/reverse-etl.md)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core.api.schema import ANY_JSON, SchemaField, document, iso_time
from profiles.sources import services
from profiles.sources.models import IdentifierKind, RunStatus, RunTrigger, SourceKind

SOURCE_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The data source's id.")
RUN_ID = OpenApiParameter("run_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The sync run's id.")
CURSOR = "Cursor of the next page; empty on the last page."
SOURCE_KINDS = list(SourceKind.values)  # named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]


def choice(values, **kwargs) -> SchemaField:
    """One of `values`, described inline (no shared enum component to collide with other `kind`s)."""
    return SchemaField({"type": "string", "enum": list(values)}, **kwargs)
LIMIT_HELP = {"max_rows": "Rows one run reads at most.", "max_bytes": "Bytes of values one run reads at most.",
              "max_seconds": "Seconds one run (and each statement) takes at most."}


def _settings(required: bool) -> dict:
    def opt(**kwargs):
        return {"required": False, **kwargs}

    def req(**kwargs):
        return kwargs if required else opt(**kwargs)

    fields = {
        "name": serializers.CharField(max_length=120, **req()),
        "kind": choice(SOURCE_KINDS, **req(help_text="Cannot be changed.")),
        "host": serializers.CharField(max_length=255, **req(help_text="Must pass the SSRF policy.")),
        "port": serializers.IntegerField(min_value=1, max_value=65535, **opt(allow_null=True,
                                                                             help_text="Default 5432 or 3306.")),
        "database": serializers.CharField(max_length=255, **req()),
        "username": serializers.CharField(max_length=255, **req()),
        "password": serializers.CharField(max_length=1024, **opt(allow_blank=True, allow_null=True, help_text=(
            "Write-only, stored encrypted. Absent: unchanged; null or \"\": none."))),
        "require_tls": serializers.BooleanField(**opt()),
        "query": serializers.CharField(max_length=services.MAX_QUERY_CHARS, **req(
            help_text="One SELECT (or WITH … SELECT), no ';'; run in a read-only transaction.")),
        "identifier_column": serializers.CharField(max_length=255, **req()),
        "identifier_kind": choice(IdentifierKind.values, **opt(help_text="Default id.")),
        "attribute_columns": serializers.ListField(child=serializers.CharField(), max_length=300, **opt(
            allow_null=True, help_text="Empty: every column but the identifier and cursor columns.")),
        "cursor_column": serializers.CharField(max_length=255, **opt(allow_blank=True, allow_null=True)),
        "schedule_minutes": serializers.IntegerField(min_value=services.SCHEDULE_MINUTES[0],
                                                     max_value=services.SCHEDULE_MINUTES[1],
                                                     **opt(allow_null=True, help_text="null: only when asked.")),
        "enabled": serializers.BooleanField(**opt()),
    }
    for field, (default, least, most) in services.LIMITS.items():
        fields[field] = serializers.IntegerField(min_value=least, max_value=most, **opt(
            allow_null=True, help_text=f"{LIMIT_HELP[field]} Default {default:,}."))
    return fields


SourceCreate = document("DataSourceCreateSerializer", _settings(True), "A new data source.", closed=True)
SourceUpdate = document("DataSourceUpdateSerializer", _settings(False), "Only the fields given change.", closed=True)

RunSummary = document("SyncRunSerializer", {
    "id": serializers.IntegerField(), "source_id": serializers.IntegerField(),
    "status": choice(RunStatus.values),
    "trigger": choice(RunTrigger.values),
    "full": serializers.BooleanField(help_text="The cursor was ignored."),
    "rows_read": serializers.IntegerField(), "rows_applied": serializers.IntegerField(help_text="Staged for ingest."),
    "rows_rejected": serializers.IntegerField(), "rows_suppressed": serializers.IntegerField(
        help_text="Of the rejected: naming a person deleted at their request."),
    "bytes_read": serializers.IntegerField(),
    "limit_hit": serializers.CharField(allow_blank=True, help_text="rows, bytes, seconds or empty."),
    "error": serializers.CharField(allow_blank=True),
    "errors": document("SyncRunRowErrorSerializer", {
        "row": serializers.IntegerField(), "column": serializers.CharField(allow_null=True),
        "message": serializers.CharField()})(many=True, help_text="The first 100 per-row errors."),
    "cursor_from": SchemaField(ANY_JSON, allow_null=True), "cursor_to": SchemaField(ANY_JSON, allow_null=True),
    "created_at": iso_time(), "started_at": iso_time(allow_null=True), "finished_at": iso_time(allow_null=True),
    "duration_seconds": serializers.FloatField(allow_null=True),
}, "One sync of a data source.")

Source = document("DataSourceSerializer", {
    "id": serializers.IntegerField(), "name": serializers.CharField(),
    "kind": choice(SOURCE_KINDS), "host": serializers.CharField(),
    "port": serializers.IntegerField(), "database": serializers.CharField(), "username": serializers.CharField(),
    "password_set": serializers.BooleanField(help_text="Whether a password is stored (it is never shown)."),
    "require_tls": serializers.BooleanField(), "query": serializers.CharField(),
    "identifier_column": serializers.CharField(),
    "identifier_kind": choice(IdentifierKind.values),
    "attribute_columns": serializers.ListField(child=serializers.CharField()),
    "cursor_column": serializers.CharField(allow_blank=True),
    "cursor_value": SchemaField(ANY_JSON, allow_null=True, help_text="The highest cursor value synced."),
    "schedule_minutes": serializers.IntegerField(allow_null=True), "enabled": serializers.BooleanField(),
    "next_run_at": iso_time(allow_null=True),
    "max_rows": serializers.IntegerField(), "max_bytes": serializers.IntegerField(),
    "max_seconds": serializers.IntegerField(),
    "last_run": RunSummary(allow_null=True), "created_at": iso_time(), "updated_at": iso_time(),
}, "A database or warehouse synced into people (reverse ETL).")
SourceResponse = document("DataSourceResponseSerializer", {"data_source": Source()})
SourceList = document("DataSourceListSerializer", {"data_sources": Source(many=True)})

ConnectionTest = document("DataSourceTestSerializer", {
    "ok": serializers.BooleanField(),
    "server_version": serializers.CharField(required=False),
    "stage": choice(["address", "connect", "query", "timeout"], required=False,
                                     help_text="Where it failed."),
    "error": serializers.CharField(required=False),
}, "Whether Ulak could connect and run SELECT 1 read-only.")
PreviewRequest = document("DataSourcePreviewRequestSerializer", {
    "limit": serializers.IntegerField(min_value=1, max_value=services.MAX_PREVIEW_ROWS, required=False,
                                      help_text=f"Rows; default {services.PREVIEW_ROWS}."),
}, closed=True)
PreviewRow = document("DataSourcePreviewRowSerializer", {
    "values": SchemaField({"type": "object", "additionalProperties": ANY_JSON}),
    "person": SchemaField({"type": "object", "additionalProperties": ANY_JSON}, required=False),
    "fields": SchemaField({"type": "object", "additionalProperties": ANY_JSON}, required=False),
    "attributes": SchemaField({"type": "object", "additionalProperties": ANY_JSON}, required=False),
    "error": document("DataSourcePreviewErrorSerializer", {
        "column": serializers.CharField(allow_null=True), "message": serializers.CharField()})(required=False),
})
Preview = document("DataSourcePreviewSerializer", {
    "columns": serializers.ListField(child=serializers.CharField()), "rows": PreviewRow(many=True),
}, "The query's first rows and what each would stage (nothing is staged).")
SyncRequest = document("DataSourceSyncRequestSerializer", {
    "full": serializers.BooleanField(required=False, help_text="Ignore the cursor: read every row."),
}, closed=True)
RunResponse = document("SyncRunResponseSerializer", {"run": RunSummary()})
RunList = document("SyncRunListSerializer", {"runs": RunSummary(many=True),
                                             "next": serializers.CharField(allow_blank=True, help_text=CURSOR)})
