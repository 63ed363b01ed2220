"""The workspace's audit log as a streamed JSON or CSV export: the App API endpoint, and the
filter parsing and streaming the admin's export uses too.

Filters (all optional): `since`/`until`, inclusive, as ISO 8601 (a date alone covers that whole
day, UTC; a time without offset is UTC) or Unix seconds; `actor`, an email or `api_key:<id>`;
`model`, `app_label.model`; `format`, `json` (default) or `csv`.

Rows come oldest first (by time, then id), so an export reads as a history and a consumer can
continue from the last timestamp it holds. Each export is itself recorded ("audit_log_exported")
and covers the entries written before it started. Rows are read with a server-side cursor in
chunks and written out as they come, so a year of entries is never held in memory.
"""

from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema

from compliance.api import openapi as doc

from accounts.models import AppScope
from core.audit import record_action
from core.exporting import FORMATS, FilterError, parse_format, parse_instant, streamed
from core.models import AuditEntry
from accounts.api.base import WorkspaceAPIView

CHUNK_SIZE = 2000  # rows per server-side cursor fetch
COLUMNS = (
    "id", "timestamp", "source", "action", "actor_email", "api_key_id", "remote_addr",
    "model", "object_pk", "object_repr", "changes",
)
ACTION_NAMES = {
    AuditEntry.Action.CREATE: "create",
    AuditEntry.Action.UPDATE: "update",
    AuditEntry.Action.DELETE: "delete",
    AuditEntry.Action.ACCESS: "access",
}
API_KEY_ACTOR = "api_key:"


# --- filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    since: datetime | None = None
    until: datetime | None = None
    actor: Q | None = None
    actor_kind: str | None = None  # "email" or "api_key:<id>": what the export record may say
    content_type: ContentType | None = None
    format: str = "json"

    def apply(self, entries):
        if self.since is not None:
            entries = entries.filter(timestamp__gte=self.since)
        if self.until is not None:
            entries = entries.filter(timestamp__lte=self.until)
        if self.actor is not None:
            entries = entries.filter(self.actor)
        if self.content_type is not None:
            entries = entries.filter(content_type=self.content_type)
        return entries

    def summary(self) -> dict:
        """What the export's own audit entry records: the filters, never an actor's email."""
        return {
            "format": self.format,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "actor": self.actor_kind,
            "model": _label(self.content_type) if self.content_type else None,
        }


def parse_filters(params) -> AuditFilters:
    """Read the export filters from query parameters; raises FilterError naming the bad one."""
    since = parse_instant("since", params.get("since"), end_of_day=False)
    until = parse_instant("until", params.get("until"), end_of_day=True)
    if since and until and since > until:
        raise FilterError("until", "Must not be before since.")
    actor, actor_kind = _parse_actor(params.get("actor"))
    fmt = parse_format(params.get("format"))
    return AuditFilters(
        since=since, until=until, actor=actor, actor_kind=actor_kind,
        content_type=_parse_model(params.get("model")), format=fmt,
    )


def _parse_actor(raw: str | None) -> tuple[Q | None, str | None]:
    raw = (raw or "").strip()
    if not raw:
        return None, None
    if raw.startswith(API_KEY_ACTOR):
        key_id = raw[len(API_KEY_ACTOR):]
        if not (key_id.isascii() and key_id.isdigit()) or int(key_id) >= 2**63:
            raise FilterError("actor", "Expected api_key:<numeric id>.")
        return Q(api_key_id=int(key_id)), f"{API_KEY_ACTOR}{int(key_id)}"
    try:
        validate_email(raw)
    except ValidationError:
        raise FilterError("actor", "Expected an email or api_key:<id>.") from None
    return Q(actor_email__iexact=raw), "email"


def _parse_model(raw: str | None) -> ContentType | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        model = apps.get_model(raw)
    except (LookupError, ValueError):
        raise FilterError("model", "Expected app_label.model of an installed model, e.g. profiles.profile.") from None
    return ContentType.objects.get_for_model(model)


def _label(content_type: ContentType) -> str:
    return f"{content_type.app_label}.{content_type.model}"


# --- rows and streaming ----------------------------------------------------------------------------


_VALUES = (
    "id", "timestamp", "source", "action", "actor_email", "api_key_id", "remote_addr",
    "content_type__app_label", "content_type__model", "object_pk", "object_repr", "changes",
)


def export_row(values: dict) -> dict:
    """One entry as exported; `action` names record_action's verb ("login", ...) for those entries."""
    changes = values["changes"]
    action = ACTION_NAMES.get(values["action"], str(values["action"]))
    if values["action"] == AuditEntry.Action.ACCESS and isinstance(changes, dict) and changes.get("action"):
        action = str(changes["action"])
    app_label, model = values["content_type__app_label"], values["content_type__model"]
    return {
        "id": values["id"],
        "timestamp": values["timestamp"].isoformat(),
        "source": values["source"],
        "action": action,
        "actor_email": values["actor_email"] or None,
        "api_key_id": values["api_key_id"],
        "remote_addr": values["remote_addr"],
        "model": f"{app_label}.{model}" if model else None,
        "object_pk": values["object_pk"],
        "object_repr": values["object_repr"],
        "changes": changes,
    }


def stream_export(entries, *, fmt: str, workspace, details: dict) -> StreamingHttpResponse:
    """Record the export, then stream `entries` (already scoped and filtered) as JSON or CSV.

    Shared by the App API and the admin. Only entries older than the export's own record are
    included, so rows written while a long export streams do not slip in.
    """
    record = record_action(target=workspace, action="audit_log_exported", workspace=workspace, details=details)
    values = (
        entries.filter(pk__lt=record.pk)
        .order_by("timestamp", "id")
        .values(*_VALUES)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    rows = (export_row(v) for v in values)
    return streamed(rows, fmt=fmt, columns=COLUMNS,
                    filename=f"audit-log-{workspace.slug}-{timezone.now():%Y%m%dT%H%M%SZ}")


# --- App API ---------------------------------------------------------------------------------------


class AuditLogView(WorkspaceAPIView):
    """GET /v1/compliance/audit-log: the key's workspace's audit log (needs the `compliance` scope)."""

    required_scopes = {"GET": AppScope.COMPLIANCE}
    http_method_names = ["get"]  # no HEAD: it would run (and record) a whole export

    def perform_content_negotiation(self, request, force=False):
        # `format` picks the export format here, not a DRF renderer; errors are still JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="compliance_audit_log_export",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.STR, description="ISO 8601 or Unix seconds, inclusive"),
            OpenApiParameter("until", OpenApiTypes.STR, description="ISO 8601 or Unix seconds, inclusive"),
            OpenApiParameter("actor", OpenApiTypes.STR, description="an email, or api_key:<id>"),
            OpenApiParameter("model", OpenApiTypes.STR, description="app_label.model, e.g. profiles.profile"),
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="json (default) or csv"),
        ],
        responses=doc.exported(doc.AuditRow),
    )
    def get(self, request):
        filters = parse_filters(request.query_params)
        entries = filters.apply(AuditEntry.scoped.all())
        return stream_export(entries, fmt=filters.format, workspace=self.workspace, details=filters.summary())
