"""Routes for deletion (included at /v1/compliance/), with or without a trailing slash."""

from django.urls import re_path

from compliance.api import deletion_views as views

urlpatterns = [
    re_path(r"^deletions/?$", views.DeletionsView.as_view(), name="compliance-deletions"),
    re_path(r"^deletions/(?P<pk>[0-9]+)/?$", views.DeletionView.as_view(), name="compliance-deletion"),
    re_path(r"^suppressions/?$", views.SuppressionsView.as_view(), name="compliance-suppressions"),
    re_path(r"^suppressions/(?P<pk>[0-9]+)/lift/?$", views.SuppressionLiftView.as_view(),
            name="compliance-suppression-lift"),
]
