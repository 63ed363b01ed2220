"""The demo inbox: what demo-provider configurations would have sent (channels/providers/demo.py),
newest first, and each message as its recipient would see it — an email rendered in a sandboxed
frame, SMS and WhatsApp as phone bubbles, push as a notification card. `view_campaigns`, as
deliveries; nothing here is ever changed through the console (docs/console-demo-inbox.md).

An email's HTML is served by its own URL (`…/<id>/html/`) with a policy of its own: a sandbox with
no script and no same-origin access, framed only by this site; the page shows it in a
`sandbox=""` frame, so no script in a message can run.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse

from channels.demo_inbox import shown, summary
from channels.models import ChannelType, DemoMessage
from channels.providers.demo import CHANNELS
from core.admin import ReadOnlyWorkspaceScopedAdmin, has_perm

NOT_SENT = "Development inbox: messages here were not sent to anyone."
# The message's HTML as a mail client shows it: its styles and images load; no script, no form, no
# plugin, no same-origin access (sandbox), and only this site may frame it.
MESSAGE_CSP = ("sandbox; default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


class ChannelFilter(admin.SimpleListFilter):
    """The channels the demo provider sends (not every channel type)."""

    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return [(channel.value, channel.label) for channel in CHANNELS]

    def queryset(self, request, queryset):
        return queryset.filter(channel=self.value()) if self.value() in {c.value for c in CHANNELS} else queryset


@admin.register(DemoMessage)
class DemoInboxAdmin(ReadOnlyWorkspaceScopedAdmin):
    view_permission = "view_campaigns"
    list_display = ["created_at", "channel", "recipient", "subject_or_text"]
    list_display_links = ["created_at", "subject_or_text"]
    list_filter = [ChannelFilter]
    search_fields = ["^recipient"]
    search_help_text = "A recipient (email address, phone number), whole or its beginning."
    ordering = ["-pk"]  # newest first, through demomessage_ws_newest
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/channels/demomessage/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(recipient__startswith=term.lower() if "@" in term else term), False

    @admin.display(description="subject / text")
    def subject_or_text(self, obj):
        return summary(obj) or "—"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Demo inbox", "not_sent": NOT_SENT, **(extra_context or {})})

    def get_urls(self):
        # admin_view: logged-in members only, never cached.
        urls = [path("<path:object_id>/html/", self.admin_site.admin_view(self.html_view),
                     name="channels_demomessage_html")]
        return urls + super().get_urls()

    def _message(self, request, object_id) -> DemoMessage:
        if not self.has_view_permission(request):
            raise PermissionDenied
        message = self.get_object(request, unquote(object_id))
        if message is None:  # missing, or another workspace's
            raise Http404
        return message

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method not in ("GET", "HEAD"):  # read-only: nothing here is changed
            return HttpResponseNotAllowed(["GET", "HEAD"])
        message = self._message(request, object_id)
        delivery = message.delivery
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": message,
            "title": f"{message.get_channel_display()} to {message.recipient}", "message": message,
            "shown": shown(message), "delivery": delivery, "not_sent": NOT_SENT,
            "html_url": reverse("admin:channels_demomessage_html", args=[message.pk]),
            "delivery_url": (reverse("admin:channels_delivery_change", args=[delivery.pk])
                             if has_perm(request, "view_campaigns") else ""),
        }
        return TemplateResponse(request, "admin/channels/demomessage/detail.html", context)

    def html_view(self, request, object_id):
        message = self._message(request, object_id)
        if message.channel != ChannelType.EMAIL or not message.body:  # only an email has HTML
            raise Http404
        response = HttpResponse(message.body, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = MESSAGE_CSP
        response["X-Frame-Options"] = "SAMEORIGIN"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("delivery")
