"""Shared behaviour of every ingestion endpoint (Track v1, Track v2, CDP)."""

import time

from django.conf import settings
from rest_framework.response import Response

from core.api.parsers import LenientJSONParser
from accounts.api.permissions import IsKeyOfKind
from core.api.throttles import ApiKeyRateThrottle
from accounts.api.base import WorkspaceAPIView
from profiles.ingest.store import stage_operations


class IngestView(WorkspaceAPIView):
    permission_classes = [IsKeyOfKind]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [LenientJSONParser]
    max_body_bytes = settings.ULAK_MAX_MESSAGE_BYTES
    source = ""
    key_kind = ""
    # OpenAPI: in the ingestion document (/api/schema/; docs/ingestion.md). A key of another kind
    # is not found by the authentication, so a refusal is a 401, never a 403.
    forbidden_possible = False
    # False when the lean path (profiles/api/ingest_fast.py) found the processor already scheduled
    # within the last second: staging then skips the Redis call that would find the same.
    schedule_processor = True

    def now(self) -> float:
        return time.time()

    def stage(self, operations: list[dict]) -> None:
        """Store durably; when this returns, the operations are committed and may be acknowledged."""
        stage_operations(workspace=self.workspace, operations=operations, source=self.source,
                         schedule=self.schedule_processor)

    def accepted(self, operations: list[dict], body=None) -> Response:
        self.stage(operations)
        return Response({} if body is None else body)

