"""Provider webhooks, mounted under /hooks/ (config/urls.py)."""

from django.urls import path

from channels import hooks

app_name = "hooks"

urlpatterns = [
    path("twilio/<str:public_id>/status", hooks.twilio_status, name="twilio-status"),
    path("twilio/<str:public_id>/inbound", hooks.twilio_inbound, name="twilio-inbound"),
    path("whatsapp/<str:public_id>", hooks.whatsapp_webhook, name="whatsapp"),
]
