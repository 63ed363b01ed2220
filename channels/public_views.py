"""The pages people reach from a message: open pixel, click redirect, web view, unsubscribe and
the subscription centre. No login: the signed token in the URL is the authorisation, and every
query is limited to the workspace the token names. Pages show no personal data except the
person's own (masked) email address on the preferences page."""

from __future__ import annotations

import base64

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from channels import links, tracking
from core.context import Actor, acting_as, request_ip

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# The retained message is the tenant's HTML: show it as an opaque, script-less origin so it can
# never act on this site (no cookies, no scripts), while its links and images still work.
WEB_VIEW_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation; "
                "default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:")


def _evidence(request) -> dict:
    return {"ip": request_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:500]}


def _actor(request) -> Actor:
    return Actor(source="system", remote_addr=request_ip(request))


def _not_found(request):
    return render(request, "channels/not_found.html", status=404)


@never_cache
@require_safe
def open_pixel(request, token):
    delivery = tracking.delivery_for("open", token)
    if delivery is not None and request.method == "GET":
        with acting_as(_actor(request)):
            tracking.record_open(delivery)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_safe
def click(request, token):
    target = tracking.click_target(token)
    if target is None:
        return _not_found(request)
    public_id, url = target
    if request.method == "GET":  # link checkers probe with HEAD
        with acting_as(_actor(request)):
            tracking.record_click(public_id, url)
    return HttpResponseRedirect(url)


@never_cache
@require_safe
def web_view(request, token):
    delivery = tracking.delivery_for("view", token)
    if delivery is None:
        return _not_found(request)
    if delivery.content_purged_at is not None or not delivery.body:
        return render(request, "channels/message_unavailable.html", status=410)
    response = HttpResponse(delivery.body, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = WEB_VIEW_CSP
    response["Referrer-Policy"] = "no-referrer"
    return response


def _page_context(delivery) -> dict:
    return {
        "workspace_name": delivery.workspace.name,
        "topic_name": delivery.topic.name if delivery.topic_id else "",
        "preferences_url": links.preferences_url(delivery),
        "has_person": delivery.profile_id is not None,
    }


@csrf_exempt  # RFC 8058: mailbox providers POST without a CSRF token; the signed token authorises
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    delivery = tracking.delivery_for("unsubscribe", token)
    if delivery is None:
        return _not_found(request)
    if request.method == "GET":
        return render(request, "channels/unsubscribe.html", _page_context(delivery))
    with acting_as(_actor(request)):
        tracking.unsubscribe_from_delivery(delivery, evidence=_evidence(request))
    return render(request, "channels/unsubscribed.html", _page_context(delivery))


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request, token):
    profile = tracking.profile_for_preferences(token)
    if profile is None:
        return _not_found(request)
    if request.method == "POST":
        with acting_as(_actor(request)):
            tracking.save_preferences(profile, topic_keys=set(request.POST.getlist("topic")),
                                      unsubscribe_all=bool(request.POST.get("unsubscribe_all")),
                                      evidence=_evidence(request))
        return HttpResponseRedirect(f"{request.path}?saved=1", status=303)
    return render(request, "channels/preferences.html", {
        "workspace_name": profile.workspace.name,
        "masked_email": tracking.mask_email(profile.email),
        "topics": tracking.preference_state(profile),
        "unsubscribed": profile.unsubscribed,
        "saved": request.GET.get("saved") == "1",
    })
