"""App API paths for people and objects (/v1/...), with or without a trailing slash, as the
OptionalSlashRouter does.

Person and object identifiers arrive URL-encoded and may hold "/" once decoded (an email with a
slash), so they match `.+` and the fixed suffixes anchor the end.
"""

from django.urls import re_path

from profiles.api import app_views as v

PERSON = r"^customers/(?P<identifier>.+)"
OBJECT = r"^objects/(?P<object_type_id>[^/]+)/(?P<object_id>.+?)"

urlpatterns = [
    re_path(r"^customers/?$", v.CustomersView.as_view(), name="app-customers"),
    re_path(PERSON + r"/attributes/?$", v.CustomerAttributesView.as_view(), name="app-customer-attributes"),
    re_path(PERSON + r"/activities/?$", v.CustomerActivitiesView.as_view(), name="app-customer-activities"),
    re_path(PERSON + r"/relationships/?$", v.CustomerRelationshipsView.as_view(), name="app-customer-relationships"),
    re_path(r"^object_types/?$", v.ObjectTypesView.as_view(), name="app-object-types"),
    re_path(r"^object_types/(?P<type_id>[^/]+)/?$", v.ObjectTypeView.as_view(), name="app-object-type"),
    re_path(r"^objects/?$", v.ObjectsView.as_view(), name="app-objects"),
    re_path(OBJECT + r"/relationships/?$", v.ObjectRelationshipsView.as_view(), name="app-object-relationships"),
    re_path(OBJECT + r"/?$", v.ObjectView.as_view(), name="app-object"),
]

# Reverse ETL data sources (profiles/api/source_urls.py).
from profiles.api.source_urls import urlpatterns as data_source_urlpatterns  # noqa: E402

urlpatterns += data_source_urlpatterns
