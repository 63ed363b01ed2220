"""Routes for export, filled in by compliance/api/export_views.py."""

from django.urls import re_path

from compliance.api.export_views import ExportsView

urlpatterns: list = [
    re_path(r"^exports/?$", ExportsView.as_view(), name="compliance-exports"),
]
