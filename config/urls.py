from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from campaigns.hooks import campaign_webhook
from config import views as ops
from core.api.schema import INGEST_SCHEMA_SETTINGS
from profiles.api.track_v1 import PushEventsView

handler400 = "core.api.exceptions.bad_request"
handler404 = "core.api.exceptions.not_found"
handler500 = "core.api.exceptions.server_error"

# The API docs load their scripts from this site (Swagger UI's set-up script from `?script`, Redoc
# without an inline script); their styles are injected inline, which these two pages allow
# (docs/security.md), as are their inline icons (data: images). Redoc's search runs in a worker
# made from a blob.
api_docs_policy = csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["data:"], "worker-src": ["blob:"]})

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # App API (Bearer key)
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", api_docs_policy(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="docs"),
    path("v1/redoc/", api_docs_policy(SpectacularRedocView.as_view(
        url_name="schema", template_name="api_docs/redoc.html")), name="redoc"),
    path("v1/", include("accounts.api.urls")),
    path("v1/", include("profiles.api.app_urls")),
    path("v1/", include("profiles.api.segment_urls")),
    path("v1/", include("profiles.api.dead_letter_urls")),
    path("v1/", include("campaigns.api.urls")),
    path("v1/", include("channels.api.urls")),
    path("v1/", include("channels.api.reporting_urls")),
    # In-app inbox client API (signed per-person token)
    path("inbox/v1/", include("channels.api.inbox_urls")),
    path("v1/compliance/", include("compliance.api.deletion_urls")),
    path("v1/compliance/", include("compliance.api.audit_urls")),
    path("v1/compliance/", include("compliance.api.export_urls")),
    # Track API (Basic site_id:key); the OpenAPI document of Track and CDP
    path("api/schema/", SpectacularAPIView.as_view(custom_settings=INGEST_SCHEMA_SETTINGS), name="ingest-schema"),
    path("api/v1/", include("profiles.api.track_urls")),
    path("api/v2/", include("profiles.api.track_v2_urls")),
    path("push/events", PushEventsView.as_view(), name="track-push-events-legacy"),
    # Tracking links, unsubscribe and preference pages, ESP webhooks (signed tokens / secrets)
    path("", include("channels.public_urls")),
    path("hooks/", include("channels.hooks_urls")),
    path("hooks/campaigns/<str:token>", campaign_webhook, name="campaign-webhook"),
    # CDP (Segment wire format)
    path("cdp/v1/", include("profiles.api.cdp_urls")),
]
