from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts import services
from accounts.api.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    ApiKeyWithSecretSerializer,
    WorkspaceSerializer,
)
from accounts.models import ApiKey
from accounts.api.base import WorkspaceAPIView, WorkspaceViewSet


class WorkspaceView(WorkspaceAPIView):
    """The workspace the key belongs to."""

    @extend_schema(responses=WorkspaceSerializer)
    def get(self, request):
        return Response(WorkspaceSerializer(self.workspace).data)

    @extend_schema(request=WorkspaceSerializer, responses=WorkspaceSerializer)
    def patch(self, request):
        serializer = WorkspaceSerializer(self.workspace, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = services.update_workspace(workspace=self.workspace, **serializer.validated_data)
        return Response(WorkspaceSerializer(workspace).data)


def _with_secret(api_key, secret):
    api_key.secret = secret
    return ApiKeyWithSecretSerializer(api_key).data


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceViewSet):
    """API keys of the workspace. Secrets are returned once, on create and rotate."""

    model = ApiKey
    serializer_class = ApiKeySerializer

    def safely_get_queryset(self, queryset):
        kind = self.request.query_params.get("kind")
        return queryset.filter(kind=kind) if kind else queryset

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyWithSecretSerializer})
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scopes = serializer.validated_data["scopes"]
        missing = set(scopes) - set(request.auth.scopes)
        if missing:
            raise PermissionDenied(f"A key cannot grant scopes it does not hold: {', '.join(sorted(missing))}.")
        api_key, secret = services.create_api_key(workspace=self.workspace, **serializer.validated_data)
        return Response(_with_secret(api_key, secret), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeyWithSecretSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        api_key, secret = services.rotate_api_key(api_key=self.get_object())
        return Response(_with_secret(api_key, secret))

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = services.revoke_api_key(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)
