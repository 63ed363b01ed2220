"""/api/v1/... Identifiers arrive URL-encoded and may contain "/" once decoded (an email with a
slash), so they are matched with `path` and the fixed suffixes are tried first."""

from django.urls import path

from accounts.api.track_views import AccountRegionView
from profiles.api import segment_views, track_v1 as v

urlpatterns = [
    path("accounts/region", AccountRegionView.as_view(), name="track-region"),
    path("events", v.AnonymousEventsView.as_view(), name="track-anonymous-events"),
    path("merge_customers", v.MergeCustomersView.as_view(), name="track-merge"),
    path("metrics", v.MetricsView.as_view(), name="track-metrics"),
    path("push/events", v.PushEventsView.as_view(), name="track-push-events"),
    path("customers/<path:identifier>/events", v.CustomerEventsView.as_view(), name="track-customer-events"),
    path("customers/<path:identifier>/devices/<str:token>", v.DeviceView.as_view(), name="track-device"),
    path("customers/<path:identifier>/devices", v.DevicesView.as_view(), name="track-devices"),
    path("customers/<path:identifier>/suppress", v.SuppressView.as_view(), name="track-suppress"),
    path("customers/<path:identifier>/unsuppress", v.UnsuppressView.as_view(), name="track-unsuppress"),
    path("customers/<path:identifier>", v.CustomerView.as_view(), name="track-customer"),
    path("segments/<int:segment_id>/add_customers", segment_views.TrackAddCustomersView.as_view(),
         name="track-segment-add"),
    path("segments/<int:segment_id>/remove_customers", segment_views.TrackRemoveCustomersView.as_view(),
         name="track-segment-remove"),
]
