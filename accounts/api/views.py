from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import services
from accounts.api.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    ApiKeyWithSecretSerializer,
    WorkspaceSerializer,
)
from accounts.models import ApiKey, ApiKeyKind
from accounts.api.base import WorkspaceAPIView, WorkspaceViewSet
from core.api.schema import error_responses


class WorkspaceView(WorkspaceAPIView):
    """The workspace the key belongs to."""

    @extend_schema(operation_id="workspace_retrieve", responses={200: WorkspaceSerializer})
    def get(self, request):
        return Response(WorkspaceSerializer(self.workspace).data)

    @extend_schema(operation_id="workspace_update", request=WorkspaceSerializer, responses={200: WorkspaceSerializer})
    def patch(self, request):
        serializer = WorkspaceSerializer(self.workspace, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = services.update_workspace(workspace=self.workspace, **serializer.validated_data)
        return Response(WorkspaceSerializer(workspace).data)


def _with_secret(api_key, secret):
    api_key.secret = secret
    return ApiKeyWithSecretSerializer(api_key).data


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceViewSet):
    """API keys of the workspace. Secrets are returned once, on create and rotate.

    The calling key may create, rotate and revoke only keys whose scopes it holds itself
    (accounts/grants.py); otherwise 403 and nothing changes."""

    model = ApiKey
    serializer_class = ApiKeySerializer

    def safely_get_queryset(self, queryset):
        kind = self.request.query_params.get("kind")
        return queryset.filter(kind=kind) if kind else queryset

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=ApiKeyKind.values, description="Only keys of this kind.")],
        # An unknown `cursor` is a 404 (DRF's cursor pagination).
        responses={200: ApiKeySerializer(many=True), **error_responses(404)},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="api_keys_retrieve", responses={200: ApiKeySerializer})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(operation_id="api_keys_create", request=ApiKeyCreateSerializer,
                   responses={201: ApiKeyWithSecretSerializer})
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, secret = services.create_api_key(
            workspace=self.workspace, acting_key=request.auth, **serializer.validated_data)
        return Response(_with_secret(api_key, secret), status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="api_keys_rotate", request=None, responses={200: ApiKeyWithSecretSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        api_key, secret = services.rotate_api_key(api_key=self.get_object(), acting_key=request.auth)
        return Response(_with_secret(api_key, secret))

    @extend_schema(operation_id="api_keys_revoke", request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = services.revoke_api_key(api_key=self.get_object(), acting_key=request.auth)
        return Response(ApiKeySerializer(api_key).data)
