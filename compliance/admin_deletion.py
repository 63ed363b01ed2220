"""Admin pages for deletion records (requests) and identifier suppressions.

Seen by the audit and deletion permissions; a deletion is requested through the add form (which
calls the service; the identifier typed in is hashed, never stored), suppressions are lifted by
an action. Nothing here is edited or deleted.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from compliance import deletion
from compliance.api.deletion_views import export_records
from compliance.models import DeletionRecord, IdentifierKind
from compliance.subjects import clean_identifiers
from core.admin import WorkspaceScopedAdmin, confirm_first, has_perm
from core.errors import InvalidInput
from core.exporting import AdminExportMixin
from profiles.admin import register_person_action
from profiles.models import SuppressedIdentifier

VIEWERS = ("view_audit_log", "manage_deletions")


class DeletionRequestForm(forms.ModelForm):
    identifier_type = forms.ChoiceField(choices=IdentifierKind.choices)
    identifier = forms.CharField(max_length=254, help_text="Hashed on submit; the value itself is not stored.")
    reason = forms.CharField(widget=forms.Textarea, required=False, max_length=1000,
                             help_text="Why; write no personal data here.")

    class Meta:
        model = DeletionRecord
        fields = ["reason"]

    def clean(self):
        data = super().clean()
        kind, value = data.get("identifier_type"), data.get("identifier")
        if kind and value:
            try:
                data["identifiers"] = dict([clean_identifiers({kind: value})])
            except InvalidInput as exc:
                raise ValidationError({"identifier": exc.message}) from exc
        return data


class _DeletionPermissions:
    """View with either compliance permission; only `manage_deletions` acts; nobody edits."""

    view_permission = "view_audit_log"
    change_permission = "manage_deletions"

    def has_module_permission(self, request):
        return any(has_perm(request, p) for p in VIEWERS)

    def has_view_permission(self, request, obj=None):
        return any(has_perm(request, p) for p in VIEWERS)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DeletionRecord)
class DeletionRecordAdmin(AdminExportMixin, _DeletionPermissions, WorkspaceScopedAdmin):
    export_url_name = "compliance_deletionrecord_export"
    list_display = ["id", "requested_at", "status", "identifier_type", "source", "requested_by", "api_key",
                    "completed_at"]
    list_filter = ["status", "source", "identifier_type"]
    list_select_related = ["requested_by", "api_key"]
    date_hierarchy = "requested_at"
    readonly_fields = ["identifier_type", "identifier_hash", "source", "requested_by", "api_key", "reason",
                       "status", "counts", "requested_at", "started_at", "completed_at"]

    def has_add_permission(self, request):
        return has_perm(request, "manage_deletions")

    def export(self, request):
        """GET ?since=&until=&format=: the workspace's deletion records as a download (as the API)."""
        return export_records(request.workspace, request.GET)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DeletionRequestForm
            kwargs["fields"] = ["identifier_type", "identifier", "reason"]
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["identifier_type", "identifier", "reason"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        record = deletion.request_deletion(
            workspace=request.workspace, identifiers=form.cleaned_data["identifiers"],
            reason=form.cleaned_data.get("reason") or "", source="admin", user=request.user,
        )
        obj.__dict__.update(record.__dict__)  # the admin goes on with `obj` (history entry, redirect)


@admin.register(SuppressedIdentifier)
class SuppressedIdentifierAdmin(_DeletionPermissions, WorkspaceScopedAdmin):
    list_display = ["id", "kind", "hash", "created_at", "lifted_at", "dropped", "deletion"]
    list_filter = ["kind", ("lifted_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["kind", "hash", "deletion", "created_at", "lifted_at", "lifted_by", "lifted_by_api_key",
                       "dropped"]
    fields = readonly_fields
    actions = ["lift"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="deletion")
    def deletion(self, suppression):
        return f"deletion #{suppression.deletion_id}" if suppression.deletion_id else "-"

    def has_lift_permission(self, request):
        return has_perm(request, "manage_deletions")

    @admin.action(description="Lift the suppression (allow the identifier again)", permissions=["lift"])
    @confirm_first("data naming these identifiers is accepted again: a person deleted at their request can be "
                   "created anew by the next Track call or import naming them.")
    def lift(self, request, queryset):
        lifted = 0
        for suppression in queryset.filter(lifted_at__isnull=True):
            deletion.lift_suppression(suppression=suppression, user=request.user)
            lifted += 1
        self.message_user(request, f"Lifted {lifted} suppression(s).", messages.SUCCESS)


@admin.action(description="Delete selected people (GDPR/KVKK deletion)")
@confirm_first("each person, their events, messages, journeys and everything else naming them is deleted, and "
               "their identifiers are suppressed so that nothing recreates them.")
def request_deletion(modeladmin, request, queryset):
    people = list(queryset.values_list("cio_id", flat=True))
    for cio_id in people:
        deletion.request_deletion(workspace=request.workspace, identifiers={"cio_id": cio_id}, source="admin",
                                  user=request.user, reason="Requested in the console")
    modeladmin.message_user(request, f"Deletion requested for {len(people)} person(s); see Deletion records.")


register_person_action(request_deletion, permission="manage_deletions")
