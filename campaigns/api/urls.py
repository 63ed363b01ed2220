"""App API paths for message content and transactional sends (/v1/...), with or without a trailing slash.

Included by config/urls.py as `path("v1/", include("campaigns.api.urls"))`.
"""

from django.urls import re_path

from campaigns.api import send_views as send
from campaigns.api import views as v

TRANSACTIONAL = r"^transactional/(?P<pk>\d+)"
LAYOUT = r"^layouts/(?P<pk>\d+)"


def _actions(viewset, **mapping):
    return viewset.as_view(mapping)


urlpatterns = [
    re_path(r"^send/email/?$", send.SendEmailView.as_view(), name="app-send-email"),
    re_path(r"^send/sms/?$", send.SendSmsView.as_view(), name="app-send-sms"),
    re_path(r"^send/whatsapp/?$", send.SendWhatsAppView.as_view(), name="app-send-whatsapp"),
    re_path(r"^send/push/?$", send.SendPushView.as_view(), name="app-send-push"),
    re_path(r"^send/in_app/?$", send.SendInAppView.as_view(), name="app-send-in-app"),
    re_path(r"^send/inbox_message/?$", send.SendInboxMessageView.as_view(), name="app-send-inbox-message"),
    re_path(r"^transactional/?$", _actions(v.TransactionalViewSet, get="list", post="create"),
            name="app-transactional"),
    re_path(TRANSACTIONAL + r"/?$", _actions(v.TransactionalViewSet, get="retrieve", put="partial_update",
                                             patch="partial_update", delete="destroy"),
            name="app-transactional-detail"),
    re_path(TRANSACTIONAL + r"/preview/?$", v.TransactionalPreviewView.as_view(),
            name="app-transactional-preview"),
    re_path(r"^templates/preview/?$", v.TemplatePreviewView.as_view(), name="app-templates-preview"),
    re_path(r"^snippets/?$", _actions(v.SnippetViewSet, get="list", put="upsert"),
            name="app-snippets"),
    re_path(r"^snippets/(?P<name>[A-Za-z0-9_-]+)/?$", _actions(v.SnippetViewSet, get="retrieve", delete="destroy"),
            name="app-snippet"),
    re_path(r"^layouts/?$", _actions(v.LayoutViewSet, get="list", post="create"), name="app-layouts"),
    re_path(LAYOUT + r"/?$", _actions(v.LayoutViewSet, get="retrieve", put="partial_update", patch="partial_update",
                                      delete="destroy"), name="app-layout"),
]
