"""Segment-compatible ingestion, as `segment-analytics-python` calls it with `host=<base>/cdp`.

Success is 200 with `{"success": true}`; the client treats any other answer as a failure.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema

from accounts.authentication import CdpWriteKeyAuthentication
from accounts.models import ApiKeyKind
from core.api.schema import ApiAutoSchema, ApiSchema
from profiles.api import openapi as doc
from profiles.api.ingest_base import IngestView
from profiles.ingest import cdp

SUCCESS = {"success": True}
# Basic `write_key:`, or no Authorization header and `writeKey` in the body.
CDP_AUTH = [{"CdpWriteKey": []}, {}]


def cdp_schema(request, operation_id: str | None = None):
    """A CDP operation (its id: `cdp_<name>`; the single-message paths share one view, and are
    named after their path)."""
    return extend_schema(operation_id=f"cdp_{operation_id}" if operation_id else None, tags=["cdp"], auth=CDP_AUTH,
                         request={"application/json": request}, responses={200: doc.CdpAccepted})


class CdpView(IngestView):
    authentication_classes = [CdpWriteKeyAuthentication]
    key_kind = ApiKeyKind.CDP
    source = "cdp"


class BatchView(CdpView):
    max_body_bytes = settings.ULAK_MAX_BATCH_BYTES

    @cdp_schema(doc.CdpBatch, "batch")
    def post(self, request):
        return self.accepted(cdp.batch(request.data, self.now()), body=SUCCESS)


class MessageSchema(ApiAutoSchema):
    def get_operation_id(self):
        return f"cdp_{self.view.message_type}"


class MessageView(CdpView):
    """A single message; its type comes from the URL (`as_view(message_type=...)`)."""

    message_type = ""
    schema = ApiSchema(MessageSchema)  # one operation per path: cdp_identify, cdp_track...

    @cdp_schema(doc.CdpMessage)
    def post(self, request):
        return self.accepted([cdp.to_operation(request.data, self.now(), self.message_type)], body=SUCCESS)
