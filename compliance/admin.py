from auditlog.mixins import LogEntryAdminMixin
from django.contrib import admin

from compliance.models import AuditEntry
from core.admin import ReadOnlyWorkspaceScopedAdmin

if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)  # auditlog registers its own, unscoped admin


@admin.register(AuditEntry)
class AuditEntryAdmin(LogEntryAdminMixin, ReadOnlyWorkspaceScopedAdmin):
    view_permission = "view_audit_log"
    date_hierarchy = "timestamp"
    list_display = ["timestamp", "source", "actor_email", "api_key", "action", "content_type", "object_repr", "msg_short"]
    list_filter = ["source", "action", "content_type"]
    list_select_related = ["content_type", "api_key"]
    search_fields = ["object_repr", "actor_email"]
    fields = ["timestamp", "source", "actor_email", "api_key", "remote_addr", "content_type", "object_pk", "object_repr", "action", "msg"]
    readonly_fields = fields
