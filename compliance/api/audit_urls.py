"""Routes for audit (mounted at /v1/compliance/)."""

from django.urls import path

from compliance.api.audit_views import AuditLogView

urlpatterns = [
    path("audit-log", AuditLogView.as_view(), name="compliance-audit-log"),
]
