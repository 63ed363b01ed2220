"""App API for deletions and suppressions (compliance scope). Nothing here shows personal data:
identifiers appear only as keyed hashes."""

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from compliance import deletion
from compliance.api import openapi as doc
from compliance.subjects import clean_identifiers
from core.audit import record_action
from core.exporting import parse_format, parse_instant, streamed
from compliance.models import DeletionRecord
from profiles.models import SuppressedIdentifier
from core.api.pagination import CursorPagination
from core.api.schema import error_responses
from accounts.api.base import WorkspaceAPIView
from profiles.ingest.operations import clean_str, require_dict

COMPLIANCE = {"GET": AppScope.COMPLIANCE, "POST": AppScope.COMPLIANCE, "DELETE": AppScope.COMPLIANCE}
RECORD_FIELDS = ("id", "status", "identifier_type", "identifier_hash", "source", "requested_by_id", "api_key_id",
                 "reason", "counts", "requested_at", "started_at", "completed_at")
EXPORT_CHUNK = 2000


def _iso(value):
    return value.isoformat() if value else None


def record_row(record: DeletionRecord) -> dict:
    row = {name: getattr(record, name) for name in RECORD_FIELDS}
    for name in ("requested_at", "started_at", "completed_at"):
        row[name] = _iso(row[name])
    return row


def suppression_row(suppression: SuppressedIdentifier) -> dict:
    return {"id": suppression.pk, "kind": suppression.kind, "hash": suppression.hash,
            "created_at": _iso(suppression.created_at), "lifted_at": _iso(suppression.lifted_at),
            "dropped": suppression.dropped, "deletion_id": suppression.deletion_id}


def export_records(workspace, params) -> StreamingHttpResponse:
    """Deletion records with `since`/`until` (inclusive, on requested_at) as streamed JSON or CSV;
    shared by the App API and the admin. Raises FilterError naming a bad parameter."""
    fmt = parse_format(params.get("format"))
    since = parse_instant("since", params.get("since"), end_of_day=False)
    until = parse_instant("until", params.get("until"), end_of_day=True)
    # The response is produced after the view returns (and leaves the workspace scope), so the
    # queryset names its workspace itself.
    records = DeletionRecord.objects.for_workspace(workspace).order_by("requested_at", "pk")
    if since is not None:
        records = records.filter(requested_at__gte=since)
    if until is not None:
        records = records.filter(requested_at__lte=until)
    record_action(target=workspace, action="deletion_records_exported", workspace=workspace,
                  details={"format": fmt, "since": params.get("since"), "until": params.get("until")})
    rows = (record_row(r) for r in records.iterator(chunk_size=EXPORT_CHUNK))
    return streamed(rows, fmt=fmt, columns=RECORD_FIELDS, filename=f"deletions-{workspace.slug}")


class ComplianceView(WorkspaceAPIView):
    required_scopes = COMPLIANCE

    def perform_content_negotiation(self, request, force=False):
        # `?format=csv|json` selects the export format here, not a DRF renderer.
        return super().perform_content_negotiation(request, force=True)



class DeletionsView(ComplianceView):
    @extend_schema(operation_id="compliance_deletions_request", request=doc.DeletionRequest,
                   responses={202: doc.DeletionAccepted})
    def post(self, request):
        body = require_dict(request.data, None)
        identifiers = dict([clean_identifiers(body.get("identifiers"))])
        reason = clean_str(body.get("reason"), "reason", max_length=1000, required=False) or ""
        record = deletion.request_deletion(workspace=self.workspace, identifiers=identifiers, reason=reason,
                                           source="api", api_key=request.auth)
        return Response({"deletion": {"id": record.pk, "status": record.status,
                                      "requested_at": _iso(record.requested_at)}},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(operation_id="compliance_deletions_export", parameters=[doc.EXPORT_FORMAT, *doc.SINCE_UNTIL],
                   responses=doc.exported(doc.DeletionRecordRow))
    def get(self, request):
        """All deletion records in the window, streamed (a year of them never loads at once)."""
        return export_records(self.workspace, request.query_params)


class DeletionView(ComplianceView):
    @extend_schema(operation_id="compliance_deletions_retrieve", responses={200: doc.DeletionRecordResponse})
    def get(self, request, pk: str):
        record = DeletionRecord.objects.filter(pk=pk).first()
        if record is None:
            raise NotFound("Deletion not found.")
        return Response({"deletion": record_row(record)})


class SuppressionsView(ComplianceView):
    @extend_schema(operation_id="compliance_suppressions_list", parameters=doc.CURSOR_PAGING,
                   responses={200: doc.SuppressedIdentifierPage, **error_responses(404)})
    def get(self, request):
        paginator = CursorPagination()
        page = paginator.paginate_queryset(SuppressedIdentifier.objects.all(), request, view=self)
        return paginator.get_paginated_response([suppression_row(s) for s in page])


class SuppressionLiftView(ComplianceView):
    @extend_schema(operation_id="compliance_suppressions_lift", request=None,
                   responses={200: doc.SuppressedIdentifierResponse})
    def post(self, request, pk: str):
        suppression = SuppressedIdentifier.objects.filter(pk=pk).first()
        if suppression is None:
            raise NotFound("Suppression not found.")
        suppression = deletion.lift_suppression(suppression=suppression, api_key=request.auth)
        return Response({"suppression": suppression_row(suppression)})
