"""/api/v1/... Identifiers arrive URL-encoded and may contain "/" once decoded (an email with a
slash), so they are matched with `path` and the fixed suffixes are tried first. Ingest views are
served by the lean path (profiles/api/ingest_fast.py)."""

from django.urls import path

from accounts.api.track_views import AccountRegionView
from profiles.api import segment_views, track_v1 as v
from profiles.api.ingest_fast import lean

urlpatterns = [
    path("accounts/region", AccountRegionView.as_view(), name="track-region"),
    path("events", lean(v.AnonymousEventsView), name="track-anonymous-events"),
    path("merge_customers", lean(v.MergeCustomersView), name="track-merge"),
    path("metrics", lean(v.MetricsView), name="track-metrics"),
    path("push/events", lean(v.PushEventsView), name="track-push-events"),
    path("customers/<path:identifier>/events", lean(v.CustomerEventsView), name="track-customer-events"),
    path("customers/<path:identifier>/devices/<str:token>", lean(v.DeviceView), name="track-device"),
    path("customers/<path:identifier>/devices", lean(v.DevicesView), name="track-devices"),
    path("customers/<path:identifier>/suppress", lean(v.SuppressView), name="track-suppress"),
    path("customers/<path:identifier>/unsuppress", lean(v.UnsuppressView), name="track-unsuppress"),
    path("customers/<path:identifier>", lean(v.CustomerView), name="track-customer"),
    path("segments/<int:segment_id>/add_customers", segment_views.TrackAddCustomersView.as_view(),
         name="track-segment-add"),
    path("segments/<int:segment_id>/remove_customers", segment_views.TrackRemoveCustomersView.as_view(),
         name="track-segment-remove"),
]
