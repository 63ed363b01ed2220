"""The campaign page's Simulate view: a dry run of the campaign for one person of the workspace
(campaigns/journeys/simulate.py, docs/journeys.md "Dry-run simulation"), shown as the steps with
their virtual times, outcomes and details, and each message as the person would get it.

It changes nothing, so `view_campaigns` (analysts too) may use it, as the transactional preview.
The person is named by id, email or cio_id; another workspace's person is nobody, another
workspace's campaign a 404. An email's HTML is shown in a sandboxed `srcdoc` frame (no script can
run in it), which takes the page's Content-Security-Policy: as the preview does, this page allows
inline styles, images and fonts from anywhere for it, never a script.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path

from campaigns.journeys.simulate import simulate
from campaigns.models import CampaignType
from core.errors import ApiError
from profiles import selectors as people
from profiles.admin import compact_json

EMAIL_FRAME_CSP = {"style-src": [UNSAFE_INLINE], "img-src": ["*", "data:"], "font-src": ["*", "data:"]}
DETAIL_LIMIT = 2000
# The service's field paths → the form's fields.
FORM_FIELDS = {"event": "event_name", "event.name": "event_name", "event.data": "event_data",
               "event.timestamp": "event_name", "data": "trigger_data"}


class SimulateForm(forms.Form):
    id_type = forms.ChoiceField(label="Person by", choices=[("id", "id"), ("email", "Email"), ("cio_id", "cio_id")])
    identifier = forms.CharField(max_length=254)
    event_name = forms.CharField(max_length=255, required=False, label="Event",
                                 help_text="An event-triggered campaign: the event's name.")
    event_data = forms.JSONField(required=False, label="Event data",
                                 help_text='The event\'s data, e.g. {"plan": "pro"} (event.* and trigger.*).',
                                 widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "class": "ulak-json"}))
    trigger_data = forms.JSONField(required=False, label="Trigger data",
                           help_text="A broadcast or another trigger: trigger.* in the messages.",
                           widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "class": "ulak-json"}))

    def clean_event_data(self):
        return self._object("event_data")

    def clean_trigger_data(self):
        return self._object("trigger_data")

    def _object(self, name):
        value = self.cleaned_data.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, dict):
            raise ValidationError("Must be a JSON object.")
        return value


def _when(unix: int | None):
    return datetime.fromtimestamp(unix, UTC) if unix is not None else None


def _shown(result: dict) -> dict:
    """The result as the template shows it: times as datetimes, details as compact JSON."""
    steps = [{**step, "when": _when(step["at"]), "detail_json": compact_json(step["detail"], limit=DETAIL_LIMIT)}
             for step in result["steps"]]
    messages = [{**message, "when": _when(message["at"]),
                 "payload_json": json.dumps(message["payload"], indent=2, ensure_ascii=False)
                 if message["payload"] else ""} for message in result["messages"]]
    ended = result["ended"] and {**result["ended"], "when": _when(result["ended"]["at"])}
    entry = {**result["entry"], "filters": [{**item, "filter_json": compact_json(item["filter"])}
                                            for item in result["entry"]["filters"]],
             "trigger_data_json": compact_json(result["entry"]["trigger_data"], limit=DETAIL_LIMIT),
             "audience_json": compact_json(result["entry"]["audience"], limit=DETAIL_LIMIT)
             if result["entry"]["audience"] else ""}
    return {**result, "steps": steps, "messages": messages, "ended": ended, "entry": entry}


def _run(request, campaign, form) -> tuple[dict | None, int]:
    data = form.cleaned_data
    person = people.find_person(request.workspace, data["id_type"], data["identifier"].strip())
    if person is None:  # another workspace's person looks exactly like nobody
        form.add_error("identifier", "No person of this workspace has this identifier.")
        return None, 404
    by_event = (campaign.trigger or {}).get("type") == "event" and campaign.type == CampaignType.TRIGGERED
    event = None
    if by_event or data["event_name"] or data["event_data"] is not None:
        event = {"name": data["event_name"], "data": data["event_data"]}
    try:
        result = simulate(campaign=campaign, profile=person, event=event, data=data["trigger_data"])
    except ApiError as exc:
        for error in exc.errors():
            field = error["field"]
            text = f"{field}: {error['message']}" if field else error["message"]
            form.add_error(FORM_FIELDS.get(field), text)
        return None, 400
    return _shown(result), 200


def simulate_view(model_admin, request, object_id):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    campaign = model_admin.get_object(request, unquote(object_id))
    if campaign is None:  # missing, or another workspace's
        raise Http404
    trigger = campaign.trigger or {}
    initial = {"event_name": trigger.get("name", "")} if trigger.get("type") == "event" else {}
    form = SimulateForm(request.POST if request.method == "POST" else None, initial=initial)
    result, status = None, 200
    if form.is_bound:
        status = 400
        if form.is_valid():
            result, status = _run(request, campaign, form)
    context = {**model_admin.admin_site.each_context(request), "title": f"Simulate: {campaign.name}",
               "opts": model_admin.opts, "original": campaign, "form": form, "result": result}
    return TemplateResponse(request, "admin/campaigns/campaign/simulate.html", context, status=status)


def simulate_urls(model_admin) -> list:
    """The view's URL, for CampaignAdmin.get_urls (admin:campaigns_campaign_simulate)."""

    @csp_update(EMAIL_FRAME_CSP)
    def view(request, object_id):
        return simulate_view(model_admin, request, object_id)

    return [path("<path:object_id>/simulate/", model_admin.admin_site.admin_view(view),
                 name=f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_simulate")]
