"""Segment-compatible ingestion, as `segment-analytics-python` calls it with `host=<base>/cdp`.

Success is 200 with `{"success": true}`; the client treats any other answer as a failure.
"""

from django.conf import settings

from accounts.authentication import CdpWriteKeyAuthentication
from accounts.models import ApiKeyKind
from profiles.api.ingest_base import IngestView
from profiles.ingest import cdp

SUCCESS = {"success": True}


class CdpView(IngestView):
    authentication_classes = [CdpWriteKeyAuthentication]
    key_kind = ApiKeyKind.CDP
    source = "cdp"


class BatchView(CdpView):
    max_body_bytes = settings.ULAK_MAX_BATCH_BYTES

    def post(self, request):
        return self.accepted(cdp.batch(request.data, self.now()), body=SUCCESS)


class MessageView(CdpView):
    """A single message; its type comes from the URL (`as_view(message_type=...)`)."""

    message_type = ""

    def post(self, request):
        return self.accepted([cdp.to_operation(request.data, self.now(), self.message_type)], body=SUCCESS)
