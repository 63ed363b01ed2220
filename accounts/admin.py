
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope, Membership, Workspace
from accounts.lockouts import clear_login_lockout, counted_login_failures
from accounts.roles import Role
from core.admin import (
    ServiceBackedAdminMixin, WorkspacePermissionAdminMixin, WorkspaceScopedAdmin, confirm_first, has_perm,
)

# Access is granted per workspace through memberships and roles, never through auth groups.
admin.site.unregister(Group)


@admin.register(Workspace)
class WorkspaceAdmin(WorkspacePermissionAdminMixin, admin.ModelAdmin):
    """The session's workspace only; other workspaces are reached with the switcher."""

    view_permission = "view_workspace"
    change_permission = "manage_workspace"
    list_display = ["name", "slug", "site_id", "time_zone", "event_retention_days", "created_at"]
    fields = ["name", "slug", "site_id", "time_zone", "event_retention_days", "created_at"]
    readonly_fields = ["slug", "site_id", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk=request.workspace.pk)

    def has_add_permission(self, request):
        return False  # workspaces are created with `manage.py create_workspace`

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.update_workspace(workspace=obj, **{f: form.cleaned_data[f] for f in form.changed_data})


# --- console login lock-outs (docs/security.md) -----------------------------------------------------
# The login throttle (django-axes, config/settings.py) counts failed logins per account and per
# client address. An owner may clear the per-account count of a member of their workspace.

UNLOCK_PERMISSION = "manage_owners"  # owners only


class MembershipAddForm(forms.ModelForm):
    email = forms.EmailField()
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Only for a new user; leave empty for an existing one."
    )

    class Meta:
        model = Membership
        fields = ["role"]


@admin.register(Membership)
class MembershipAdmin(ServiceBackedAdminMixin, WorkspaceScopedAdmin):
    view_permission = "view_members"
    change_permission = "manage_members"
    refusals = (ValidationError, PermissionDenied)
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user"]
    search_fields = ["user__email", "user__name"]
    actions = None

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["email", "password", "role"] if obj is None else ["user", "role", "login_lockout"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "login_lockout"] if obj is not None else []

    @admin.display(description="Console login")
    def login_lockout(self, obj):
        failures, limit = counted_login_failures(user=obj.user), settings.AXES_FAILURE_LIMIT
        if failures >= limit:
            return f"Locked out: {failures} failed logins counted (limit {limit})."
        return f"{failures} failed login(s) counted (locked out at {limit})." if failures else "Not locked out."

    def get_urls(self):
        clear = self.admin_site.admin_view(self.clear_login_lockout_view)
        return [path("<path:object_id>/clear-login-lockout/", clear, name="accounts_membership_clear_login_lockout"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_clear_login_lockout": has_perm(request, UNLOCK_PERMISSION)}
        return super().change_view(request, object_id, form_url, extra_context)

    def clear_login_lockout_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not has_perm(request, UNLOCK_PERMISSION):
            raise PermissionDenied
        membership = self.get_object(request, unquote(object_id))
        if membership is None:
            raise Http404  # another workspace's member looks like no member at all
        failures = clear_login_lockout(membership=membership)
        self.message_user(request, f"Login lock-out cleared for {membership.user} ({failures} failed login(s) "
                                   "forgotten).")
        return HttpResponseRedirect(reverse("admin:accounts_membership_change", args=[membership.pk]))

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or obj.role != Role.OWNER or has_perm(request, "manage_owners")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            self._apply(request, lambda: services.change_member_role(
                membership=obj, role=data["role"], acting_user=request.user))
        else:
            saved = self._apply(request, lambda: services.add_member(
                workspace=request.workspace, email=data["email"], role=data["role"],
                password=data.get("password") or None, acting_user=request.user))
            # The admin goes on with `obj` (history entry, redirect): make it the saved row.
            obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj):
        self._apply(request, lambda: services.remove_member(membership=obj, acting_user=request.user))


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=AppScope.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="App API keys only. You can grant only the scopes your role holds (docs/roles.md).",
    )

    class Meta:
        model = ApiKey
        fields = ["kind", "name"]

    def clean(self):
        data = super().clean()
        kind, scopes = data.get("kind"), data.get("scopes") or []
        if kind == ApiKeyKind.APP and not scopes:
            self.add_error("scopes", "An App API key needs at least one scope.")
        if kind and kind != ApiKeyKind.APP and scopes:
            self.add_error("scopes", "Only App API keys carry scopes.")
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceBackedAdminMixin, WorkspaceScopedAdmin):
    """Secrets are shown once, in a message, when a key is created or rotated.

    Creating, rotating and revoking go through accounts/services.py, which refuses a key whose
    scopes the user's role does not hold (accounts/grants.py): the refusal is shown as an error
    and nothing of the request is kept. Keys are never edited (the change page is read-only).
    """

    view_permission = "view_api_keys"
    change_permission = "manage_api_keys"
    refusals = (ValidationError, PermissionDenied)
    list_display = ["name", "kind", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    form = ApiKeyAddForm
    actions = ["revoke_keys", "rotate_keys"]
    readonly_fields = ["kind", "name", "prefix", "scopes", "created_by", "created_at", "last_used_at",
                       "revoked_at", "replaced_by"]

    def get_fields(self, request, obj=None):
        return ["kind", "name", "scopes"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        # A key's kind and scopes are fixed at creation: rotate or revoke it instead.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the key's history stays

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        key, secret = self._apply(request, lambda: services.create_api_key(
            workspace=request.workspace, kind=data["kind"], name=data["name"], scopes=data.get("scopes") or [],
            acting_user=request.user,
        ))
        obj.__dict__.update(key.__dict__)
        self._show_secret(request, key, secret)

    def _show_secret(self, request, key, secret):
        if key.kind == ApiKeyKind.TRACK:
            text = f"site_id {request.workspace.site_id}, Track API key {secret}"
        else:
            text = secret
        self.message_user(request, f"New key “{key.name}”: {text} — copy it now, it will not be shown again.",
                          messages.WARNING)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    @confirm_first("every request signed with these keys is refused from now on.")
    def revoke_keys(self, request, queryset):
        keys = list(queryset)
        # All or nothing: one key the user may not revoke refuses the whole action.
        self._apply(request, lambda: [services.revoke_api_key(api_key=key, acting_user=request.user)
                                      for key in keys])
        self.message_user(request, f"Revoked {len(keys)} key(s).")

    @admin.action(description="Rotate selected keys (new secret, old one revoked)", permissions=["change"])
    @confirm_first("each key gets a new secret, shown once, and its old secret stops working at once.")
    def rotate_keys(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        # All or nothing, and secrets are shown only once every rotation went through.
        rotated = self._apply(request, lambda: [services.rotate_api_key(api_key=key, acting_user=request.user)
                                                for key in keys])
        for new, secret in rotated:
            self._show_secret(request, new, secret)
