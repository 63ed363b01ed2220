"""/cdp/v1/... (Segment's /v1 paths)."""

from django.urls import path

from profiles.api.cdp import BatchView, MessageView
from profiles.api.ingest_fast import lean
from profiles.ingest.cdp import MAPPERS

urlpatterns = [path("batch", lean(BatchView), name="cdp-batch")] + [
    path(kind, lean(MessageView, message_type=kind), name=f"cdp-{kind}") for kind in MAPPERS
]
