"""/api/v2/... Customer.io Track API v2."""

from django.urls import path

from profiles.api import track_v2 as v

urlpatterns = [
    path("entity", v.EntityView.as_view(), name="track-v2-entity"),
    path("batch", v.BatchView.as_view(), name="track-v2-batch"),
]
