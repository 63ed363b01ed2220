"""/cdp/v1/... (Segment's /v1 paths)."""

from django.urls import path

from profiles.api.cdp import BatchView, MessageView
from profiles.ingest.cdp import MAPPERS

urlpatterns = [path("batch", BatchView.as_view(), name="cdp-batch")] + [
    path(kind, MessageView.as_view(message_type=kind), name=f"cdp-{kind}") for kind in MAPPERS
]
