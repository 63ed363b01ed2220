"""The in-app inbox API (included at /inbox/v1/), with or without a trailing slash."""

from django.urls import re_path

from channels.api import inbox

urlpatterns = [
    re_path(r"^messages/?$", inbox.InboxMessagesView.as_view(), name="inbox-messages"),
    re_path(r"^messages/(?P<delivery_id>[-\w]+)/(?P<action>opened|clicked|dismissed)/?$",
            inbox.InboxMessageActionView.as_view(), name="inbox-message-action"),
]
