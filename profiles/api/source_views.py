"""App API for reverse ETL data sources (/v1/data_sources): create, read, change and delete
sources (the password is write-only), test the connection, preview the first rows, start a sync,
and read its runs (profiles/sources, docs/reverse-etl.md).

Reads need the `read` scope; everything else, test and preview included (they connect out with the
stored credentials and read the source's rows), needs `write`. Another workspace's source or run is
a 404; bad input a 400 naming the field; a second sync while one is queued or running a 409.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from core.api.schema import error_responses
from core.errors import InvalidInput
from profiles.api import source_openapi as doc
from profiles.api.app_filters import clean_limit, decode_cursor, next_cursor
from profiles.ingest.operations import clean_bool, require_dict
from profiles.sources import mapping, selectors, services
from profiles.sources.models import DataSource, SyncRun


def _iso(value):
    return value.isoformat() if value else None


def run_json(run: SyncRun) -> dict:
    return {
        "id": run.pk, "source_id": run.source_id, "status": run.status, "trigger": run.trigger, "full": run.full,
        "rows_read": run.rows_read, "rows_applied": run.rows_applied, "rows_rejected": run.rows_rejected,
        "rows_suppressed": run.rows_suppressed, "bytes_read": run.bytes_read, "limit_hit": run.limit_hit,
        "error": run.error, "errors": run.errors, "cursor_from": mapping.shown_cursor(run.cursor_from),
        "cursor_to": mapping.shown_cursor(run.cursor_to), "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
    }


def source_json(source: DataSource, last_run: SyncRun | None) -> dict:
    """A source as the API shows it: never its password, only whether one is stored."""
    return {
        "id": source.pk, "name": source.name, "kind": source.kind, "host": source.host, "port": source.port,
        "database": source.database, "username": source.username, "password_set": bool(source.password_encrypted),
        "require_tls": source.require_tls, "query": source.query, "identifier_column": source.identifier_column,
        "identifier_kind": source.identifier_kind, "attribute_columns": source.attribute_columns,
        "cursor_column": source.cursor_column, "cursor_value": mapping.shown_cursor(source.cursor_value),
        "schedule_minutes": source.schedule_minutes, "enabled": source.enabled,
        "next_run_at": _iso(source.next_run_at), "max_rows": source.max_rows, "max_bytes": source.max_bytes,
        "max_seconds": source.max_seconds, "last_run": run_json(last_run) if last_run else None,
        "created_at": _iso(source.created_at), "updated_at": _iso(source.updated_at),
    }


class SourceView(WorkspaceAPIView):
    def source_or_404(self, pk: str) -> DataSource:
        source = selectors.find_source(self.workspace, int(pk))  # the URL only matches digits
        if source is None:
            raise NotFound("Data source not found.")
        return source

    def answer(self, source: DataSource, code=status.HTTP_200_OK) -> Response:
        last = selectors.last_runs(self.workspace, [source.pk]).get(source.pk)
        return Response({"data_source": source_json(source, last)}, status=code)


class SourcesView(SourceView):
    @extend_schema(operation_id="data_sources_list", responses={200: doc.SourceList})
    def get(self, request):
        rows = list(selectors.sources(self.workspace))
        last = selectors.last_runs(self.workspace, [row.pk for row in rows])
        return Response({"data_sources": [source_json(row, last.get(row.pk)) for row in rows]})

    @extend_schema(operation_id="data_sources_create", request=doc.SourceCreate, responses={201: doc.SourceResponse})
    def post(self, request):
        source = services.create_source(workspace=self.workspace, data=request.data, user=None)
        return self.answer(source, status.HTTP_201_CREATED)


class SourceDetailView(SourceView):
    @extend_schema(operation_id="data_sources_retrieve", parameters=[doc.SOURCE_ID], responses={200: doc.SourceResponse})
    def get(self, request, pk):
        return self.answer(self.source_or_404(pk))

    @extend_schema(operation_id="data_sources_update", parameters=[doc.SOURCE_ID], request=doc.SourceUpdate,
                   responses={200: doc.SourceResponse})
    def patch(self, request, pk):
        source = services.update_source(source=self.source_or_404(pk), data=request.data)
        return self.answer(source)

    @extend_schema(operation_id="data_sources_delete", parameters=[doc.SOURCE_ID],
                   responses={204: None, **error_responses(409)})
    def delete(self, request, pk):
        services.delete_source(source=self.source_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceTestView(SourceView):
    @extend_schema(operation_id="data_sources_test", parameters=[doc.SOURCE_ID], request=None,
                   responses={200: doc.ConnectionTest})
    def post(self, request, pk):
        """Connect with the stored settings and run `SELECT 1` read-only; `ok` says whether it worked."""
        return Response(services.check_connection(source=self.source_or_404(pk)))


class SourcePreviewView(SourceView):
    @extend_schema(operation_id="data_sources_preview", parameters=[doc.SOURCE_ID], request=doc.PreviewRequest,
                   responses={200: doc.Preview})
    def post(self, request, pk):
        """The query's first rows and what each would stage. Nothing is staged or recorded. A source
        that cannot be read is a 400 naming the setting (host, query, identifier_column...)."""
        source = self.source_or_404(pk)
        body = require_dict(request.data or {}, None)
        unknown = sorted(set(body) - {"limit"})
        if unknown:
            raise InvalidInput(unknown[0], "is not a field of a preview")
        limit = body.get("limit", services.PREVIEW_ROWS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= services.MAX_PREVIEW_ROWS:
            raise InvalidInput("limit", f"must be a whole number from 1 to {services.MAX_PREVIEW_ROWS}")
        return Response(services.preview(source=source, limit=limit))


class SourceSyncView(SourceView):
    @extend_schema(operation_id="data_sources_sync", parameters=[doc.SOURCE_ID], request=doc.SyncRequest,
                   responses={202: doc.RunResponse, **error_responses(409)})
    def post(self, request, pk):
        """Queue a sync now (`{"full": true}` ignores the cursor). 409 while one is queued or running."""
        source = self.source_or_404(pk)
        body = require_dict(request.data or {}, None)
        unknown = sorted(set(body) - {"full"})
        if unknown:
            raise InvalidInput(unknown[0], "is not a field of a sync")
        full = clean_bool(body.get("full", False), "full")
        run = services.start_sync(source=source, full=full)
        return Response({"run": run_json(run)}, status=status.HTTP_202_ACCEPTED)


class SourceRunsView(SourceView):
    @extend_schema(operation_id="data_sources_runs_list", responses={200: doc.RunList}, parameters=[
        doc.SOURCE_ID,
        OpenApiParameter("limit", OpenApiTypes.INT, description="Page size: default 50, at most 1000."),
        OpenApiParameter("start", OpenApiTypes.STR, description="The `next` of the previous page."),
    ])
    def get(self, request, pk):
        """The source's runs, newest first."""
        source = self.source_or_404(pk)
        params = request.query_params
        limit, before = clean_limit(params.get("limit")), decode_cursor(params.get("start"))
        rows = list(selectors.runs(self.workspace, source, before=before)[: limit + 1])
        rows, cursor = next_cursor(rows, limit, lambda row: (row.pk,))
        return Response({"runs": [run_json(row) for row in rows], "next": cursor})


class SourceRunView(SourceView):
    @extend_schema(operation_id="data_sources_runs_retrieve", parameters=[doc.SOURCE_ID, doc.RUN_ID],
                   responses={200: doc.RunResponse})
    def get(self, request, pk, run_id):
        source = self.source_or_404(pk)
        run = selectors.find_run(self.workspace, source, int(run_id))
        if run is None:
            raise NotFound("Sync run not found.")
        return Response({"run": run_json(run)})
