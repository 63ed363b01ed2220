"""Public routes reached from messages and from ESPs (no session, no API key: signed tokens and
per-configuration webhook secrets). Mounted at the site root:
`path("", include("channels.public_urls"))` in config/urls.py."""

from django.urls import path

from channels import anymail_hooks, public_views

urlpatterns = [
    path("t/o/<str:token>.gif", public_views.open_pixel, name="email-open"),
    path("t/c/<str:token>", public_views.click, name="email-click"),
    path("t/v/<str:token>", public_views.web_view, name="email-web-view"),
    path("unsubscribe/<str:token>", public_views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>", public_views.preferences, name="preferences"),
    path("hooks/anymail/<str:public_id>/<str:esp>/tracking/", anymail_hooks.tracking_webhook,
         name="anymail-tracking-webhook"),
]
