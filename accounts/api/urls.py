from django.urls import path

from accounts.api.views import ApiKeyViewSet, WorkspaceView
from core.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("api_keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [path("workspace", WorkspaceView.as_view(), name="workspace")] + router.urls
