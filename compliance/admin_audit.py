from auditlog.mixins import LogEntryAdminMixin
from django.contrib import admin
from django.db.models import OuterRef, Subquery

from accounts.models import ApiKey
from compliance.api.audit_views import parse_filters, stream_export
from core.admin import ReadOnlyWorkspaceScopedAdmin
from core.exporting import AdminExportMixin
from core.models import AuditEntry

if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)  # auditlog registers its own, unscoped admin


@admin.register(AuditEntry)
class AuditEntryAdmin(AdminExportMixin, LogEntryAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    """Read-only; exports (selected rows, or a date range from the changelist's form) stream the
    same JSON/CSV as `GET /v1/compliance/audit-log`."""

    export_url_name = "compliance_auditentry_export"
    change_list_template = "admin/compliance/auditentry/change_list.html"
    view_permission = "view_audit_log"
    date_hierarchy = "timestamp"
    list_display = ["timestamp", "source", "actor_email", "api_key", "action", "content_type", "object_repr", "msg_short"]
    list_filter = ["source", "action", "content_type"]
    list_select_related = ["content_type"]
    search_fields = ["object_repr", "actor_email"]
    fields = ["timestamp", "source", "actor_email", "api_key", "remote_addr", "content_type", "object_pk", "object_repr", "action", "msg"]
    readonly_fields = fields
    actions = ["export_selected_csv", "export_selected_json"]

    def get_queryset(self, request):
        # The key is a plain id on the entry (core has no foreign key to accounts): its label is
        # read in the same query.
        keys = ApiKey.objects.for_workspace(request.workspace).filter(pk=OuterRef("api_key_id"))
        return super().get_queryset(request).annotate(
            api_key_name=Subquery(keys.values("name")[:1]), api_key_kind=Subquery(keys.values("kind")[:1]),
            api_key_prefix=Subquery(keys.values("prefix")[:1]))

    @admin.display(description="API key")
    def api_key(self, entry):
        if entry.api_key_id is None:
            return "-"
        if getattr(entry, "api_key_name", None) is None:
            return f"key #{entry.api_key_id}"
        return f"{entry.api_key_name} ({entry.api_key_kind}, {entry.api_key_prefix}…)"

    def export(self, request):
        """GET ?since=&until=&actor=&model=&format=: the workspace's log, filtered, as a download."""
        filters = parse_filters(request.GET)
        entries = filters.apply(self.get_queryset(request))
        return stream_export(entries, fmt=filters.format, workspace=request.workspace, details=filters.summary())

    def _export_selected(self, request, queryset, fmt):
        details = {"format": fmt, "selected": True}
        return stream_export(queryset, fmt=fmt, workspace=request.workspace, details=details)
