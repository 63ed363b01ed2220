from django.conf import settings
from rest_framework.response import Response

from accounts.authentication import TrackApiAuthentication
from accounts.api.permissions import IsKeyOfKind
from accounts.api.base import WorkspaceAPIView


class AccountRegionView(WorkspaceAPIView):
    """`GET /api/v1/accounts/region`: where this site's Track API lives (Customer.io shape)."""

    authentication_classes = [TrackApiAuthentication]
    permission_classes = [IsKeyOfKind]
    key_kind = "track"
    schema = None

    def get(self, request):
        return Response(
            {"url": settings.ULAK_PUBLIC_URL, "data_center": "self-hosted", "environment_id": self.workspace.pk}
        )
