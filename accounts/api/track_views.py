from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.authentication import TrackApiAuthentication
from accounts.api.permissions import IsKeyOfKind
from accounts.api.base import WorkspaceAPIView
from core.api.schema import document

Region = document("TrackRegionSerializer", {
    "url": serializers.CharField(help_text="This installation's public URL."),
    "data_center": serializers.ChoiceField(choices=["self-hosted"]),
    "environment_id": serializers.IntegerField(help_text="The workspace's id."),
}, "Where this site's Track API lives (Customer.io's shape).")


class AccountRegionView(WorkspaceAPIView):
    """`GET /api/v1/accounts/region`: where this site's Track API lives (Customer.io shape)."""

    authentication_classes = [TrackApiAuthentication]
    permission_classes = [IsKeyOfKind]
    key_kind = "track"
    forbidden_possible = False  # OpenAPI: a key of another kind is a 401 (ingestion document, /api/schema/)

    @extend_schema(operation_id="track_v1_region", tags=["track_v1"], responses={200: Region})
    def get(self, request):
        return Response(
            {"url": settings.ULAK_PUBLIC_URL, "data_center": "self-hosted", "environment_id": self.workspace.pk}
        )
