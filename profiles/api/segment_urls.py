"""App API paths for segments (/v1/segments...), with or without a trailing slash."""

from django.urls import re_path

from profiles.api import segment_views as v

SEGMENT = r"^segments/(?P<pk>\d+)"


def _actions(**mapping):
    return v.SegmentViewSet.as_view(mapping)


urlpatterns = [
    re_path(r"^segments/?$", _actions(get="list", post="create"), name="app-segments"),
    re_path(r"^segments/preview/?$", v.SegmentPreviewView.as_view(), name="app-segments-preview"),
    re_path(SEGMENT + r"/?$", _actions(get="retrieve", patch="partial_update", put="partial_update",
                                       delete="destroy"), name="app-segment"),
    re_path(SEGMENT + r"/membership/?$", _actions(get="membership"), name="app-segment-membership"),
    re_path(SEGMENT + r"/customer_count/?$", _actions(get="customer_count"), name="app-segment-count"),
    re_path(SEGMENT + r"/add_customers/?$", _actions(post="add_customers"), name="app-segment-add"),
    re_path(SEGMENT + r"/remove_customers/?$", _actions(post="remove_customers"), name="app-segment-remove"),
]
