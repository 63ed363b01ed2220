"""The journey canvas (docs/console-journeys.md): a campaign's trigger and workflow drawn and edited
as a graph in the console, a React Flow island (frontend/src/journey-canvas/).

The island edits the definition in the App API / file shape (docs/journeys.md) and reads the same
JSON Schema the API publishes (`GET /v1/campaigns/schema`, campaigns/journeys/schema.py) to draw
each step's outcomes and generate its form. Saving goes through `services.update_campaign`, the
service of `PUT /v1/campaigns/{id}`, so every refusal is the API's own, naming its field path
(`workflow.steps.welcome.content.subject`), which the island shows on the node it concerns.

Conflicting edits: the page carries the campaign's **revision**; a save based on an older one is
refused with a 409 and nothing is stored. Node positions are kept in `Campaign.canvas`, outside the
definition. The revision, the save and the check are campaigns/journeys/canvas.py; this module is
the page and its endpoints.

Endpoints (CampaignAdmin URLs, each through `admin_view`: a session login, CSRF on the POSTs):
- `<id>/canvas/` (GET, `view_campaigns`): the page;
- `<id>/canvas/check/` (POST, `view_campaigns`): the edited trigger and workflow checked as a save and
  an activation would check them, nothing stored: `{"errors": [{"field", "message", "kind"}]}`;
- `<id>/canvas/save/` (POST, `change_campaigns`): `{"revision", "trigger", "workflow", "positions",
  "publish"}` saved, answering the new revision, or `400`/`409` `{"errors": [{"field", "message"}]}`.
Another workspace's campaign is a `404` on each; without the permission a `403`.
"""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from rest_framework.exceptions import ParseError

from campaigns.journeys import services
from campaigns.journeys.canvas import CANVAS_FIELDS, activation_errors, check_canvas, revision_of, save_canvas
from campaigns.journeys.schema import definition_schema
from campaigns.models import Campaign, CampaignState
from core.api.parsers import loads
from core.errors import ApiError, InvalidFields, InvalidInput

SAVE_FIELDS = ("revision", *CANVAS_FIELDS, "positions", "publish")


# --- the page and its endpoints -------------------------------------------------------------------------

def _errors(pairs, status: int) -> JsonResponse:
    return JsonResponse({"errors": [{"field": field, "message": message} for field, message in pairs]}, status=status)


def _refused(exc: ApiError) -> JsonResponse:
    return JsonResponse({"errors": exc.errors()}, status=exc.status)


def _body(request) -> dict:
    try:
        body = loads(request.body or b"")
    except ParseError as exc:
        raise InvalidInput(None, str(exc.detail)) from None
    if not isinstance(body, dict):
        raise InvalidInput(None, "must be a JSON object")
    return body


def _names(model_admin) -> str:
    return f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}"


def _state(campaign: Campaign) -> dict:
    return {"revision": revision_of(campaign), "version": campaign.version, "state": campaign.state,
            "versioned": campaign.activated_at is not None}


def canvas_data(model_admin, request, campaign: Campaign) -> dict:
    """What the island starts from (json_script on the page)."""
    names = _names(model_admin)
    editable = model_admin.has_change_permission(request, campaign)
    stored = services.stored_definition(campaign)
    message_url = reverse("admin:campaigns_transactionalmessage_change", args=[0]).replace("/0/", "/{id}/")
    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "type": campaign.type, **_state(campaign)},
        "definition": {name: stored[name] for name in CANVAS_FIELDS},
        "positions": campaign.canvas or {},
        "schema": definition_schema(),
        "editable": editable,
        "urls": {"check": reverse(f"{names}_canvas_check", args=[campaign.pk]),
                 "save": reverse(f"{names}_canvas_save", args=[campaign.pk]) if editable else None,
                 "campaign": reverse(f"{names}_change", args=[campaign.pk]),
                 "message": message_url},
        "activation_errors": activation_errors(campaign),
        "check_debounce_ms": 500,
    }


def _campaign(model_admin, request, object_id) -> Campaign:
    campaign = model_admin.get_object(request, unquote(object_id))
    if campaign is None:  # missing, or another workspace's
        raise Http404
    return campaign


def canvas_view(model_admin, request, object_id):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    campaign = _campaign(model_admin, request, object_id)
    context = {**model_admin.admin_site.each_context(request), "title": f"Workflow canvas: {campaign.name}",
               "opts": model_admin.opts, "original": campaign, "canvas": canvas_data(model_admin, request, campaign),
               "live": campaign.state != CampaignState.DRAFT}
    return TemplateResponse(request, "admin/campaigns/campaign/canvas.html", context)


def canvas_check_view(model_admin, request, object_id):
    if request.method != "POST":
        return _errors([(None, "POST the canvas's trigger and workflow.")], status=405)
    if not model_admin.has_view_permission(request):
        return _errors([(None, "You may not see campaigns in this workspace.")], status=403)
    try:
        campaign = _campaign(model_admin, request, object_id)
    except Http404:
        return _errors([(None, "No campaign of this workspace has this id.")], status=404)
    try:
        body = _body(request)
        errors = check_canvas(campaign=campaign, changes=body)
    except ApiError as exc:
        return _refused(exc)
    return JsonResponse({"errors": errors})


def canvas_save_view(model_admin, request, object_id):
    if request.method != "POST":
        return _errors([(None, "POST the canvas's trigger, workflow and positions.")], status=405)
    if not model_admin.has_change_permission(request):
        return _errors([(None, "Saving the workflow needs the permission to change campaigns.")], status=403)
    try:
        campaign = _campaign(model_admin, request, object_id)
    except Http404:
        return _errors([(None, "No campaign of this workspace has this id.")], status=404)
    try:
        body = _body(request)
        unknown = sorted(set(body) - set(SAVE_FIELDS))
        if unknown:
            raise InvalidFields([{"field": name, "message": f"unknown field; use {', '.join(SAVE_FIELDS)}"}
                                 for name in unknown])
        revision = body.get("revision")
        if not isinstance(revision, str) or not revision:
            raise InvalidInput("revision", "is required: the revision the canvas was loaded with")
        saved = save_canvas(campaign=campaign, revision=revision,
                            changes={name: body[name] for name in CANVAS_FIELDS if name in body},
                            positions=body.get("positions"), publish=body.get("publish"))
    except ApiError as exc:
        response = _refused(exc)
        if exc.status == 409:
            current = Campaign.objects.for_workspace(request.workspace).get(pk=campaign.pk)
            response = JsonResponse({"errors": exc.errors(), "campaign": _state(current)}, status=409)
        return response
    return JsonResponse({"campaign": _state(saved), "positions": saved.canvas,
                         "definition": {name: services.stored_definition(saved)[name] for name in CANVAS_FIELDS},
                         "activation_errors": activation_errors(saved)})


def canvas_urls(model_admin) -> list:
    """The page's and its endpoints' URLs, for CampaignAdmin.get_urls (before `<path:object_id>/`)."""
    view = model_admin.admin_site.admin_view
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    return [
        path("<path:object_id>/canvas/check/", view(lambda request, object_id: canvas_check_view(
            model_admin, request, object_id)), name=f"{prefix}_canvas_check"),
        path("<path:object_id>/canvas/save/", view(lambda request, object_id: canvas_save_view(
            model_admin, request, object_id)), name=f"{prefix}_canvas_save"),
        path("<path:object_id>/canvas/", view(lambda request, object_id: canvas_view(model_admin, request, object_id)),
             name=f"{prefix}_canvas"),
    ]
