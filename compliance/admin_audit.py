from auditlog.mixins import LogEntryAdminMixin
from django.contrib import admin

from compliance.api.audit_views import parse_filters, stream_export
from compliance.exporting import AdminExportMixin
from compliance.models import AuditEntry
from core.admin import ReadOnlyWorkspaceScopedAdmin

if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)  # auditlog registers its own, unscoped admin


@admin.register(AuditEntry)
class AuditEntryAdmin(AdminExportMixin, LogEntryAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    """Read-only; exports (selected rows, or a date range from the changelist's form) stream the
    same JSON/CSV as `GET /v1/compliance/audit-log`."""

    export_url_name = "compliance_auditentry_export"
    view_permission = "view_audit_log"
    date_hierarchy = "timestamp"
    list_display = ["timestamp", "source", "actor_email", "api_key", "action", "content_type", "object_repr", "msg_short"]
    list_filter = ["source", "action", "content_type"]
    list_select_related = ["content_type", "api_key"]
    search_fields = ["object_repr", "actor_email"]
    fields = ["timestamp", "source", "actor_email", "api_key", "remote_addr", "content_type", "object_pk", "object_repr", "action", "msg"]
    readonly_fields = fields
    actions = ["export_selected_csv", "export_selected_json"]

    def export(self, request):
        """GET ?since=&until=&actor=&model=&format=: the workspace's log, filtered, as a download."""
        filters = parse_filters(request.GET)
        entries = filters.apply(self.get_queryset(request))
        return stream_export(entries, fmt=filters.format, workspace=request.workspace, details=filters.summary())

    def _export_selected(self, request, queryset, fmt):
        details = {"format": fmt, "selected": True}
        return stream_export(queryset, fmt=fmt, workspace=request.workspace, details=details)
