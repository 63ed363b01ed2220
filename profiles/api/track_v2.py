"""Customer.io Track API v2: one operation at /entity, many at /batch.

Answers:
- /entity: 200 `{}`, or 400 naming the field of the operation (e.g. `identifiers.id`).
- /batch, every operation valid: 200 `{}`.
- /batch, some invalid: the valid ones are stored, 207 with exactly `{"errors": [{"batch_index",
  "reason", "field", "message"}]}` as Customer.io answers (`reason` is "invalid", or "too_large"
  for an operation over 32 KB; `field` is prefixed `batch.<i>`).
- /batch, all invalid: nothing is stored, 400 with the same `errors` list plus the usual
  `meta.error` summary of the first one.
- /batch, the body itself wrong (not an object, no `batch` list, an empty list): 400.
- Over 32 KB (/entity) or 500 KB (/batch), after gzip decompression: 413.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.authentication import TrackApiAuthentication
from core.api.exceptions import error_body
from profiles.api import openapi as doc
from profiles.api.ingest_base import IngestView
from profiles.ingest import track_v2


class TrackV2View(IngestView):
    authentication_classes = [TrackApiAuthentication]
    key_kind = "track"
    source = "track_v2"


class EntityView(TrackV2View):
    @extend_schema(operation_id="track_v2_entity", tags=["track_v2"], request={"application/json": doc.V2Operation},
                   responses={200: doc.TrackAccepted})
    def post(self, request):
        return self.accepted([track_v2.operation(request.data, self.now())])


class BatchView(TrackV2View):
    max_body_bytes = settings.ULAK_MAX_BATCH_BYTES

    @extend_schema(operation_id="track_v2_batch", tags=["track_v2"], request={"application/json": doc.V2Batch},
                   responses={200: doc.TrackAccepted, 207: doc.BatchPartial,
                              400: OpenApiResponse(doc.BatchError, description=doc.BatchError.__doc__)})
    def post(self, request):
        operations, errors = track_v2.batch(request.data, self.now())
        if not errors:
            return self.accepted(operations)
        if not operations:
            return Response(error_body(errors), status=status.HTTP_400_BAD_REQUEST)
        self.stage(operations)
        return Response({"errors": errors}, status=status.HTTP_207_MULTI_STATUS)
