"""App API paths for ingest dead letters (included at /v1/), with or without a trailing slash."""

from django.urls import re_path

from profiles.api import dead_letter_views as v

urlpatterns = [
    re_path(r"^ingest/dead_letters/?$", v.DeadLettersView.as_view(), name="app-dead-letters"),
    re_path(r"^ingest/dead_letters/replay/?$", v.DeadLettersReplayView.as_view(), name="app-dead-letters-replay"),
    re_path(r"^ingest/dead_letters/(?P<pk>[0-9]+)/?$", v.DeadLetterDetailView.as_view(), name="app-dead-letter"),
    re_path(r"^ingest/dead_letters/(?P<pk>[0-9]+)/replay/?$", v.DeadLetterReplayView.as_view(),
            name="app-dead-letter-replay"),
    re_path(r"^ingest/dead_letters/(?P<pk>[0-9]+)/discard/?$", v.DeadLetterDiscardView.as_view(),
            name="app-dead-letter-discard"),
]
