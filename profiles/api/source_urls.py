"""App API paths for reverse ETL data sources (included at /v1/ through app_urls.py), with or
without a trailing slash."""

from django.urls import re_path

from profiles.api import source_views as v

SOURCE = r"^data_sources/(?P<pk>[0-9]+)"

urlpatterns = [
    re_path(r"^data_sources/?$", v.SourcesView.as_view(), name="app-data-sources"),
    re_path(SOURCE + r"/?$", v.SourceDetailView.as_view(), name="app-data-source"),
    re_path(SOURCE + r"/test/?$", v.SourceTestView.as_view(), name="app-data-source-test"),
    re_path(SOURCE + r"/preview/?$", v.SourcePreviewView.as_view(), name="app-data-source-preview"),
    re_path(SOURCE + r"/sync/?$", v.SourceSyncView.as_view(), name="app-data-source-sync"),
    re_path(SOURCE + r"/runs/?$", v.SourceRunsView.as_view(), name="app-data-source-runs"),
    re_path(SOURCE + r"/runs/(?P<run_id>[0-9]+)/?$", v.SourceRunView.as_view(), name="app-data-source-run"),
]
