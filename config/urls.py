from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views as ops
from profiles.api.track_v1 import PushEventsView

handler400 = "core.api.exceptions.bad_request"
handler404 = "core.api.exceptions.not_found"
handler500 = "core.api.exceptions.server_error"

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # App API (Bearer key)
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("v1/", include("accounts.api.urls")),
    path("v1/", include("profiles.api.app_urls")),
    path("v1/", include("profiles.api.segment_urls")),
    path("v1/", include("campaigns.api.urls")),
    path("v1/", include("channels.api.urls")),
    path("v1/", include("channels.api.reporting_urls")),
    # In-app inbox client API (signed per-person token)
    path("inbox/v1/", include("channels.api.inbox_urls")),
    path("v1/compliance/", include("compliance.api.deletion_urls")),
    path("v1/compliance/", include("compliance.api.audit_urls")),
    path("v1/compliance/", include("compliance.api.export_urls")),
    # Track API (Basic site_id:key)
    path("api/v1/", include("profiles.api.track_urls")),
    path("api/v2/", include("profiles.api.track_v2_urls")),
    path("push/events", PushEventsView.as_view(), name="track-push-events-legacy"),
    # Tracking links, unsubscribe and preference pages, ESP webhooks (signed tokens / secrets)
    path("", include("channels.public_urls")),
    path("hooks/", include("channels.hooks_urls")),
    # CDP (Segment wire format)
    path("cdp/v1/", include("profiles.api.cdp_urls")),
]
