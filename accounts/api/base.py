"""Base API views. Every workspace-bound endpoint builds on these.

Modelled on PostHog's routing: the workspace comes from the API key (never from the body), is set
as the scope in `initial()` and reset in `dispatch()`'s `finally`, and `get_queryset` cannot be
overridden: subclasses narrow the already-scoped queryset in `safely_get_queryset`.
"""

from rest_framework import viewsets
from rest_framework.views import APIView

from accounts.authentication import AppApiKeyAuthentication
from accounts.api.permissions import HasAppScope
from core.api.schema import ApiSchema
from core.context import (
    Actor,
    current_workspace,
    enter_actor,
    enter_workspace,
    exit_actor,
    exit_workspace,
    request_ip,
)


class WorkspaceScopedViewMixin:
    schema = ApiSchema()  # OpenAPI: the shared error responses, closed response objects (core/api/schema.py)

    def initial(self, request, *args, **kwargs):
        self.perform_authentication(request)
        workspace = getattr(request.user, "workspace", None)
        if workspace is not None:
            self._scope_tokens.append((exit_workspace, enter_workspace(workspace)))
            actor = Actor(source="api", api_key=request.auth, remote_addr=request_ip(request))
            self._scope_tokens.append((exit_actor, enter_actor(actor)))
        super().initial(request, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        self._scope_tokens = []
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            for reset, token in reversed(self._scope_tokens):
                reset(token)

    @property
    def workspace(self):
        return current_workspace()


class WorkspaceAPIView(WorkspaceScopedViewMixin, APIView):
    authentication_classes = [AppApiKeyAuthentication]
    permission_classes = [HasAppScope]


class WorkspaceViewSet(WorkspaceScopedViewMixin, viewsets.GenericViewSet):
    """Set `model`; narrow with `safely_get_queryset(queryset)`. Never override `get_queryset`."""

    authentication_classes = [AppApiKeyAuthentication]
    permission_classes = [HasAppScope]
    model = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; override safely_get_queryset instead "
                "so the workspace filter cannot be lost."
            )

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.unscoped.none()
        queryset = self.model.objects.filter(workspace=self.workspace)
        return self.safely_get_queryset(queryset)

    def safely_get_queryset(self, queryset):
        return queryset

    def perform_create(self, serializer):
        serializer.save(workspace=self.workspace)
