"""/api/v2/... Customer.io Track API v2."""

from django.urls import path

from profiles.api import track_v2 as v
from profiles.api.ingest_fast import lean

urlpatterns = [
    path("entity", lean(v.EntityView), name="track-v2-entity"),
    path("batch", lean(v.BatchView), name="track-v2-batch"),
]
