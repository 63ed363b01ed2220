"""Base classes for every admin page: scoped to the session's workspace, gated by its role."""

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.text import capfirst
from rest_framework.exceptions import ParseError

from core.api.parsers import loads
from core.errors import ApiError, InvalidInput
from core.models import is_tenant_model

CONFIRM_LISTED = 100  # rows named on an action's confirmation page; the rest are counted


def confirmed(request) -> bool:
    """Whether this POST comes from a confirmation page (`confirmation_page`)."""
    return request.method == "POST" and request.POST.get("confirmed") == "yes"


def confirmation_page(request, modeladmin, *, description: str, consequence: str, objects: list, count: int,
                      hidden: list[tuple[str, str]] = ()) -> TemplateResponse:
    """The page an irreversible change answers first: what will happen to which rows ("This cannot
    be undone"); confirming posts the same URL again with `hidden` and `confirmed=yes`."""
    context = {**modeladmin.admin_site.each_context(request), "title": "Are you sure?",
               "opts": modeladmin.model._meta, "consequence": consequence, "action_description": description,
               "objects": objects, "count": count, "hidden": list(hidden)}
    return TemplateResponse(request, "admin/ulak/confirm_action.html", context)


def confirm_first(consequence: str):
    """Wrap an irreversible admin action: its first POST answers a confirmation page that lists the
    selected rows and says `consequence`; the action runs only when that page is confirmed (the
    same POST again with `confirmed=yes`). Put it under `@admin.action`."""
    def wrap(action):
        @functools.wraps(action)
        def run(modeladmin, request, queryset):
            if confirmed(request):
                return action(modeladmin, request, queryset)
            objects = list(queryset[:CONFIRM_LISTED])
            hidden = [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
            hidden += [(name, request.POST.get(name, default)) for name, default in
                       (("action", ""), ("select_across", "0"), ("index", "0"))]
            return confirmation_page(
                request, modeladmin, consequence=consequence, objects=objects, hidden=hidden,
                description=getattr(run, "short_description", action.__name__.replace("_", " ")),
                count=queryset.count() if len(objects) == CONFIRM_LISTED else len(objects))
        return run
    return wrap


def query_choice(request, name: str, allowed, default):
    """The query parameter `name` as one of `allowed` (compared as text), `default` when absent or
    empty; anything else is an InvalidInput naming the parameter (the console's report pages)."""
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    for value in allowed:
        if str(value) == raw:
            return value
    raise InvalidInput(name, f"must be one of {', '.join(str(v) for v in allowed)}")


def has_perm(request, codename: str | None) -> bool:
    return bool(codename) and codename in getattr(request, "workspace_perms", ())


def _json_refusal(value) -> ValidationError | None:
    """Why JSON typed into a form cannot be stored, read by the project's JSON parser
    (core/api/parsers.py): a NUL, a lone surrogate, nesting past its limit, a non-finite number
    or a key past its limit, naming the path inside the JSON. None when it may be, or when it is
    not JSON at all (the field's own message says so)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        loads(value)
    except InvalidInput as exc:
        return ValidationError(f"{exc.field}: {exc.message}" if exc.field else exc.message, code="unstorable")
    except ParseError:
        return None
    return None


def _checked_json(field: forms.JSONField) -> None:
    """Make `field` (a form's own copy) refuse what `_json_refusal` refuses, as a field error, and
    show such text again as typed (reading it back would fail as storing it would)."""
    to_python, bound_data = field.to_python, field.bound_data

    def checked_to_python(value):
        refusal = _json_refusal(value)
        if refusal is not None:
            raise refusal
        return to_python(value)

    def checked_bound_data(data, initial):
        if not field.disabled and _json_refusal(data) is not None:
            return forms.fields.InvalidJSONInput(data)
        return bound_data(data, initial)

    field.to_python, field.bound_data = checked_to_python, checked_bound_data


def with_checked_json(form_class):
    """`form_class` whose JSON fields (`forms.JSONField` and subclasses) are checked by `_checked_json`.
    Text fields already refuse NUL (Django's ProhibitNullCharactersValidator); NUL anywhere else in
    a posted form is refused by core.middleware before the form sees it."""

    class CheckedJSONForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for field in self.fields.values():  # each form has its own copies of the fields
                if isinstance(field, forms.JSONField):
                    _checked_json(field)

    CheckedJSONForm.__name__ = CheckedJSONForm.__qualname__ = form_class.__name__
    return CheckedJSONForm


class WorkspacePermissionAdminMixin:
    """View needs `view_permission`, any write needs `change_permission` (workspace codenames).

    Both default to None, and None grants nothing: an admin that names no permission is closed.
    Add and change forms read JSON with the project's JSON parser (`with_checked_json`).
    """

    view_permission: str | None = None
    change_permission: str | None = None

    def get_form(self, request, obj=None, **kwargs):
        return with_checked_json(super().get_form(request, obj, **kwargs))

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

    def changelist_view(self, request, extra_context=None):
        # "People", not Django's "Select person to change".
        return super().changelist_view(request, {"title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})})


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
