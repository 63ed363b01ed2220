"""App API: data subject export (`POST /v1/compliance/exports`, compliance scope).

The bundle is streamed as it is produced (see compliance/dsar.py), so it needs no background
job and no download link that could outlive the request.
"""

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound

from accounts.models import AppScope
from compliance import dsar
from compliance.api import openapi as doc
from core.api.schema import error_responses
from profiles.api.app_views import AppView
from profiles.ingest.operations import require_dict


class ExportsView(AppView):
    required_scopes = {"POST": AppScope.COMPLIANCE}

    @extend_schema(operation_id="compliance_export_person", request=doc.ExportRequest,
                   responses={(200, "application/json"): doc.PersonalDataExport, **error_responses(404)})
    def post(self, request):
        """Everything held about one person, as a JSON attachment streamed while it is produced.

        The export is recorded in the audit log (with the number of events, no personal data).
        """
        body = require_dict(request.data, None)
        try:
            export = dsar.open_export(workspace=self.workspace, identifiers=body.get("identifiers"))
        except dsar.PersonNotFound as exc:
            raise NotFound(str(exc)) from exc
        response = StreamingHttpResponse(export.chunks, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response
