from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.api.track_views import AccountRegionView
from core import views as ops

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
    # Track API (Basic site_id:key)
    path("api/v1/accounts/region", AccountRegionView.as_view(), name="track-region"),
]
