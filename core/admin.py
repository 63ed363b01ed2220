"""Base classes for every admin page: scoped to the session's workspace, gated by its role."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect

from core.errors import ApiError
from core.models import is_tenant_model


def has_perm(request, codename: str | None) -> bool:
    return bool(codename) and codename in getattr(request, "workspace_perms", ())


class WorkspacePermissionAdminMixin:
    """View needs `view_permission`, any write needs `change_permission` (workspace codenames).

    Both default to None, and None grants nothing: an admin that names no permission is closed.
    """

    view_permission: str | None = None
    change_permission: str | None = None

    def has_module_permission(self, request):
        return has_perm(request, self.view_permission)

    def has_view_permission(self, request, obj=None):
        return has_perm(request, self.view_permission) or self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return has_perm(request, self.change_permission)

    def has_add_permission(self, request):
        return has_perm(request, self.change_permission)

    def has_delete_permission(self, request, obj=None):
        return has_perm(request, self.change_permission)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another workspace's object looks exactly like one that does not exist.
        raise Http404


class ServiceRefused(Exception):
    """A service refused the change; the reason is already in the user's messages."""


class ServiceBackedAdminMixin:
    """Writes go through services, each wrapped in `self._apply(request, fn)`: an exception listed
    in `refusals` rolls the admin's transaction back (a bulk action's too: nothing of it is kept)
    and returns to the page with `refusal_text(exc)` as an error message."""

    refusals: tuple[type[Exception], ...] = (ValidationError, ApiError)

    def refusal_text(self, exc: Exception) -> str:
        if isinstance(exc, ApiError):
            return "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in exc.errors())
        return "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)

    def _apply(self, request, fn):
        try:
            with transaction.atomic():
                return fn()
        except self.refusals as exc:
            self.message_user(request, self.refusal_text(exc), messages.ERROR)
            raise ServiceRefused from exc

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused:
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused:
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except ServiceRefused:
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyWorkspaceInline(admin.TabularInline):
    """An inline shown to whoever may view its parent's `view_permission`; never edited inline."""

    view_permission: str | None = None
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return has_perm(request, self.view_permission)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WorkspaceScopedAdmin(WorkspacePermissionAdminMixin, admin.ModelAdmin):
    """Admin of a tenant model: queryset, FK choices and autocompletes limited to the workspace."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(workspace_id=request.workspace.pk)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if is_tenant_model(related):
            kwargs["queryset"] = related.objects.filter(workspace=request.workspace)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if is_tenant_model(related):
            kwargs["queryset"] = related.objects.filter(workspace=request.workspace)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.workspace = request.workspace
        super().save_model(request, obj, form, change)


class ReadOnlyWorkspaceScopedAdmin(WorkspaceScopedAdmin):
    """For records nobody may change through the console (audit entries, ledgers)."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return has_perm(request, self.view_permission)
