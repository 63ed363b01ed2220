"""API key permissions. They fail closed: a view that names no scope cannot be reached."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey, ApiKeyKind, AppScope


class HasAppScope(BasePermission):
    """App API keys carry scopes: `read` for safe methods, `write` for the rest.

    A view may demand another scope per method with `required_scopes = {"GET": "compliance"}`.
    """

    message = "This API key does not have the scope this request needs."

    def has_permission(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey) or api_key.kind != ApiKeyKind.APP:
            return False
        required = getattr(view, "required_scopes", {}).get(request.method)
        if required is None:
            required = AppScope.READ if request.method in SAFE_METHODS else AppScope.WRITE
        return required in api_key.scopes


class IsKeyOfKind(BasePermission):
    """For Track and CDP endpoints: the request was authenticated by a key of `view.key_kind`."""

    def has_permission(self, request, view):
        api_key = request.auth
        return isinstance(api_key, ApiKey) and api_key.kind == view.key_kind
