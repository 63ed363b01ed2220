"""Shared behaviour of every ingestion endpoint (Track v1, Track v2, CDP)."""

import time

from django.conf import settings
from rest_framework.response import Response

from core.api.exceptions import error_response
from core.api.parsers import LenientJSONParser
from core.api.permissions import IsKeyOfKind
from core.api.throttles import ApiKeyRateThrottle
from core.api.views import WorkspaceAPIView
from profiles.ingest.errors import InvalidInput
from profiles.ingest.store import stage_operations


class IngestView(WorkspaceAPIView):
    permission_classes = [IsKeyOfKind]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [LenientJSONParser]
    max_body_bytes = settings.ULAK_MAX_MESSAGE_BYTES
    source = ""
    key_kind = ""
    schema = None  # wire-compatible surfaces are documented in docs/ingestion.md

    def now(self) -> float:
        return time.time()

    def stage(self, operations: list[dict]) -> None:
        """Store durably; when this returns, the operations are committed and may be acknowledged."""
        stage_operations(workspace=self.workspace, operations=operations, source=self.source)

    def accepted(self, operations: list[dict], body=None) -> Response:
        self.stage(operations)
        return Response({} if body is None else body)

    def handle_exception(self, exc):
        if isinstance(exc, InvalidInput):
            return error_response(exc.message, field=exc.field, status_code=exc.status)
        return super().handle_exception(exc)
