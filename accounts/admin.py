from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope, Membership, Workspace
from accounts.roles import Role
from core.admin import ServiceBackedAdminMixin, WorkspacePermissionAdminMixin, WorkspaceScopedAdmin, has_perm

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
        return ["email", "password", "role"] if obj is None else ["user", "role"]

    def get_readonly_fields(self, request, obj=None):
        return ["user"] if obj is not None else []

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
        help_text="App API keys only.",
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
class ApiKeyAdmin(WorkspaceScopedAdmin):
    """Secrets are shown once, in a message, when a key is created or rotated."""

    view_permission = "view_api_keys"
    change_permission = "manage_api_keys"
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

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the key's history stays

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        key, secret = services.create_api_key(
            workspace=request.workspace, kind=data["kind"], name=data["name"], scopes=data.get("scopes") or [],
            created_by=request.user,
        )
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
    def revoke_keys(self, request, queryset):
        for key in queryset:
            services.revoke_api_key(api_key=key)
        self.message_user(request, f"Revoked {len(queryset)} key(s).")

    @admin.action(description="Rotate selected keys (new secret, old one revoked)", permissions=["change"])
    def rotate_keys(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            new, secret = services.rotate_api_key(api_key=key, acting_user=request.user)
            self._show_secret(request, new, secret)
