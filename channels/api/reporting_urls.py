"""App API paths for reporting webhooks (/v1/reporting_webhooks...), with or without a trailing slash."""

from django.urls import re_path

from channels.api.reporting_views import ReportingWebhookViewSet


def _actions(**mapping):
    return ReportingWebhookViewSet.as_view(mapping)


urlpatterns = [
    re_path(r"^reporting_webhooks/?$", _actions(get="list", post="create"), name="app-reporting-webhooks"),
    re_path(r"^reporting_webhooks/(?P<pk>\d+)/?$",
            _actions(get="retrieve", put="update", patch="partial_update", delete="destroy"),
            name="app-reporting-webhook"),
]
