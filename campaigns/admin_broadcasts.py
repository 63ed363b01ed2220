"""The live progress of a broadcast's sends on its campaign page (docs/journeys.md "Broadcasts",
docs/console.md "Progress of long work"): the latest triggers, each with its recipients, how many
of them the send has reached, the messages handed off or not sent, and the runs by state; a
trigger still sending is followed by the progress island (`core/static/ulak/console/progress.js`)
through its status URL, polled every second until it is finished, without a reload.

Reads only (`campaigns.journeys.selectors.broadcast_progress`: one query for every trigger shown),
so `view_campaigns` (analysts too) may follow a send. Another workspace's campaign, or a trigger of
another campaign, is a 404.
"""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.http import Http404, JsonResponse
from django.urls import path, reverse

from campaigns.journeys.selectors import broadcast_progress, find_broadcast_trigger
from campaigns.models import BroadcastTrigger, BroadcastTriggerState, Campaign, CampaignType

LATEST_TRIGGERS = 10


def broadcast_urls(admin) -> list:
    name = f"{admin.opts.app_label}_{admin.opts.model_name}_broadcast_status"
    return [path("<path:object_id>/broadcasts/<int:trigger_id>/status/",
                 admin.admin_site.admin_view(lambda request, object_id, trigger_id: status_view(
                     admin, request, unquote(object_id), trigger_id)), name=name)]


def status(trigger: BroadcastTrigger, progress: dict) -> dict:
    """The progress island's JSON for one trigger: {state, state_label, done, total, finished, ...};
    `state` is pending (recipients not fixed yet), sending, sent or failed."""
    if trigger.state == BroadcastTriggerState.PENDING:
        state, label = "pending", "Waiting to start"
    elif trigger.state == BroadcastTriggerState.FAILED:
        state, label = "failed", "Failed"
    elif progress["finished"]:
        state, label = "sent", "Sent"
    else:
        state, label = "sending", "Sending"
    runs = progress["runs"]
    return {
        "id": trigger.pk, "state": state, "state_label": label, "done": progress["done"], "total": progress["total"],
        "finished": progress["finished"], "sent": progress["sent"], "not_sent": progress["not_sent"],
        "queued": progress["queued"], "running": runs["active"], "waiting": runs["waiting"],
        "ended": runs["completed"] + runs["exited"] + runs["failed"],
        "error_count": progress["error_count"], "error": progress["error"],
    }


def status_view(admin, request, object_id, trigger_id):
    if not admin.has_view_permission(request):
        return JsonResponse({"errors": [{"field": None, "message": "You may not see campaigns in this workspace."}]},
                            status=403)
    campaign = admin.get_object(request, object_id)
    trigger = find_broadcast_trigger(request.workspace, campaign, trigger_id) if campaign is not None else None
    if trigger is None:  # missing, another workspace's, or another campaign's
        raise Http404
    return JsonResponse(status(trigger, broadcast_progress(campaign, [trigger])[trigger.pk]))


def broadcast_send_rows(admin, campaign: Campaign) -> list[dict]:
    """The campaign page's latest triggers (a broadcast's only), each with its status and URL: two
    queries whatever their number."""
    if campaign.type != CampaignType.BROADCAST:
        return []
    triggers = list(BroadcastTrigger.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign)
                    .order_by("-created_at", "-pk")[:LATEST_TRIGGERS])
    progress = broadcast_progress(campaign, triggers)
    name = f"admin:{admin.opts.app_label}_{admin.opts.model_name}_broadcast_status"
    return [{"trigger": trigger, "status": status(trigger, progress[trigger.pk]),
             "url": reverse(name, args=[campaign.pk, trigger.pk])} for trigger in triggers]
