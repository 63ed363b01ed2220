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
- `<id>/canvas/numbers/` (GET, `view_campaigns`): the figures on the nodes (`selectors.canvas_numbers`,
  the figures of `GET /v1/campaigns/{id}/metrics`, all time), polled while the page is open;
- `<id>/canvas/people/?q=` (GET, `view_campaigns` and `view_people`): people whose id, email or cio_id
  starts with `q`, to pick one for the simulation (as the message editor's people search);
- `<id>/canvas/simulation/` (POST, `view_campaigns`): `{"customer_id", "id_type", "event", "data"}`, the
  dry run (nothing written or sent), each message's subject and text, no HTML;
- `<id>/canvas/preview/` (POST, `view_campaigns`): the dry count of saving `{"trigger", "workflow",
  "publish"}` (the API's publish preview), nothing stored;
- `<id>/canvas/diff/?version=&against=` (GET, `view_campaigns`): what changed between two versions.
Another workspace's campaign is a `404` on each; without the permission a `403`.

Condition fields (`only_if`, a branch's or split branch's `condition`, a wait's `condition`) are the
segment builder; the page carries its schema and the segment admin's name-suggestion URLs
(`condition_builder`), which need `view_people`; without it the page says why and they stay JSON.
"""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from rest_framework.exceptions import ParseError

from campaigns.journeys import selectors, services, versions
from campaigns.journeys.canvas import (
    CANVAS_FIELDS, activation_errors, check_canvas, diff_on_canvas, preview_canvas, revision_of, save_canvas,
    simulate_on_canvas,
)
from campaigns.journeys.schema import definition_schema
from campaigns.journeys.simulate import clean_data, clean_event
from campaigns.models import Campaign, CampaignState, CampaignType
from core.admin import has_perm
from core.api.parsers import loads
from core.errors import ApiError, InvalidFields, InvalidInput
from profiles import selectors as people
from profiles.api.app_filters import clean_id_type

SAVE_FIELDS = ("revision", *CANVAS_FIELDS, "positions", "publish")
PREVIEW_FIELDS = (*CANVAS_FIELDS, "publish")
SIMULATE_FIELDS = ("customer_id", "id_type", "event", "data")
MAX_IDENTIFIER = 254
SEARCH_LIMIT = 10
NUMBERS_REFRESH_MS = 10_000


# --- the page and its endpoints -------------------------------------------------------------------------

def _errors(pairs, status: int) -> JsonResponse:
    return JsonResponse({"errors": [{"field": field, "message": message} for field, message in pairs]}, status=status)


def _refused(exc: ApiError) -> JsonResponse:
    return JsonResponse({"errors": exc.errors()}, status=exc.status)


def _body(request, allowed=None) -> dict:
    """The request's JSON object; with `allowed`, any other field is refused, each named."""
    try:
        body = loads(request.body or b"")
    except ParseError as exc:
        raise InvalidInput(None, str(exc.detail)) from None
    if not isinstance(body, dict):
        raise InvalidInput(None, "must be a JSON object")
    unknown = sorted(set(body) - set(allowed)) if allowed is not None else []
    if unknown:
        raise InvalidFields([{"field": name, "message": f"unknown field; use {', '.join(allowed)}"}
                             for name in unknown])
    return body


def _names(model_admin) -> str:
    return f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}"


def _state(campaign: Campaign) -> dict:
    return {"revision": revision_of(campaign), "version": campaign.version, "state": campaign.state,
            "versioned": campaign.activated_at is not None}


def condition_builder(request) -> dict:
    """What the condition fields' segment builder needs: the builder schema of the condition kinds
    (profiles.segments.builder, as the segment page's) and its name-suggestion URLs. Its endpoints
    need `view_people`; a member without it gets the reason instead, and the fields stay JSON boxes."""
    if not has_perm(request, "view_people"):
        return {"schema": None, "urls": {},
                "reason": "Conditions are edited as JSON here: the condition builder suggests names from this "
                          "workspace's people and events, which you may not see."}
    from profiles.segments import builder

    return {"schema": builder.schema(request.workspace),
            "urls": {endpoint: reverse(f"admin:profiles_segment_builder_{endpoint}")
                     for endpoint in ("attributes", "events")},
            "reason": ""}


def canvas_data(model_admin, request, campaign: Campaign) -> dict:
    """What the island starts from (json_script on the page)."""
    names = _names(model_admin)
    editable = model_admin.has_change_permission(request, campaign)
    stored = services.stored_definition(campaign)
    message_url = reverse("admin:campaigns_transactionalmessage_change", args=[0]).replace("/0/", "/{id}/")
    trigger = campaign.trigger or {}
    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "type": campaign.type, **_state(campaign)},
        "definition": {name: stored[name] for name in CANVAS_FIELDS},
        "positions": campaign.canvas or {},
        "schema": definition_schema(),
        "editable": editable,
        "urls": {"check": reverse(f"{names}_canvas_check", args=[campaign.pk]),
                 "save": reverse(f"{names}_canvas_save", args=[campaign.pk]) if editable else None,
                 "campaign": reverse(f"{names}_change", args=[campaign.pk]),
                 "message": message_url,
                 "numbers": reverse(f"{names}_canvas_numbers", args=[campaign.pk]),
                 "people": reverse(f"{names}_canvas_people", args=[campaign.pk])
                 if has_perm(request, "view_people") else None,
                 "simulate": reverse(f"{names}_canvas_simulate", args=[campaign.pk]),
                 "simulate_page": reverse(f"{names}_simulate", args=[campaign.pk]),
                 "preview": reverse(f"{names}_canvas_preview", args=[campaign.pk]),
                 "diff": reverse(f"{names}_canvas_diff", args=[campaign.pk])},
        "conditions": condition_builder(request),
        "activation_errors": activation_errors(campaign),
        "check_debounce_ms": 500,
        "numbers_refresh_ms": NUMBERS_REFRESH_MS,
        "versions": [{"number": row.number, "author": row.author, "created": row.created_at.isoformat()}
                     for row in versions.campaign_versions(campaign)],
        "simulation": {"by_event": trigger.get("type") == "event" and campaign.type == CampaignType.TRIGGERED,
                       "event_name": trigger.get("name", "") if trigger.get("type") == "event" else ""},
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
    campaign, refusal = _readable(model_admin, request, object_id, "POST", "the canvas's trigger and workflow")
    if refusal:
        return refusal
    try:
        body = _body(request)
        errors = check_canvas(campaign=campaign, changes=body)
    except ApiError as exc:
        return _refused(exc)
    return JsonResponse({"errors": errors})


def canvas_save_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "POST", "the canvas's trigger, workflow and positions",
                                  change=True)
    if refusal:
        return refusal
    try:
        body = _body(request, SAVE_FIELDS)
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


def _readable(model_admin, request, object_id, method: str, what: str, *, change: bool = False):
    """The campaign for an endpoint (`view_campaigns`, or `change_campaigns` with `change`), or the
    refusal to answer: 405, 403, or 404 for another workspace's campaign."""
    if request.method != method:
        return None, _errors([(None, f"{method} {what}.")], status=405)
    if change and not model_admin.has_change_permission(request):
        return None, _errors([(None, "Saving the workflow needs the permission to change campaigns.")], status=403)
    if not change and not model_admin.has_view_permission(request):
        return None, _errors([(None, "You may not see campaigns in this workspace.")], status=403)
    try:
        return _campaign(model_admin, request, object_id), None
    except Http404:
        return None, _errors([(None, "No campaign of this workspace has this id.")], status=404)


def canvas_numbers_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "GET", "the canvas's figures")
    if refusal:
        return refusal
    return JsonResponse({"numbers": selectors.canvas_numbers(campaign), "state": campaign.state,
                         "version": campaign.version})


def canvas_people_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "GET", "a search for people")
    if refusal:
        return refusal
    if not has_perm(request, "view_people"):
        return _errors([(None, "You may not see people in this workspace.")], status=403)
    term = request.GET.get("q", "").strip()
    if len(term) > MAX_IDENTIFIER:
        return _errors([("q", f"must be at most {MAX_IDENTIFIER} characters")], status=400)
    if not term:
        return JsonResponse({"people": [], "more": False})
    rows, more = people.people_by_prefix(request.workspace, term, limit=SEARCH_LIMIT)
    found = [{"id": row.external_id, "email": row.email, "cio_id": row.cio_id} for row in rows]
    return JsonResponse({"people": found, "more": more})


def canvas_simulate_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "POST", "the person and the trigger's event")
    if refusal:
        return refusal
    try:
        body = _body(request, SIMULATE_FIELDS)
        identifier = body.get("customer_id")
        if not isinstance(identifier, str) or not identifier.strip() or len(identifier) > MAX_IDENTIFIER:
            raise InvalidInput("customer_id", f"is required: the person's identifier (see id_type), at most "
                                              f"{MAX_IDENTIFIER} characters")
        id_type = body.get("id_type")
        if id_type is not None and not isinstance(id_type, str):
            raise InvalidInput("id_type", "must be one of id, email, cio_id")
        id_type = clean_id_type(id_type)
        clean_event(body.get("event")), clean_data(body.get("data"))  # a bad body is a 400 before a 404
        person = people.find_person(request.workspace, id_type, identifier.strip())
        if person is None:  # another workspace's person looks exactly like nobody
            return _errors([("customer_id", "No person of this workspace has this identifier.")], status=404)
        result = simulate_on_canvas(campaign=campaign, profile=person, event=body.get("event"), data=body.get("data"))
    except ApiError as exc:
        return _refused(exc)
    return JsonResponse({"simulation": result})


def canvas_preview_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "POST", "the canvas's trigger and workflow")
    if refusal:
        return refusal
    try:
        body = _body(request, PREVIEW_FIELDS)
        preview = preview_canvas(campaign=campaign, changes={name: body[name] for name in CANVAS_FIELDS if name in body},
                                 publish=body.get("publish"))
    except ApiError as exc:
        return _refused(exc)
    return JsonResponse({"preview": preview, "revision": revision_of(campaign)})


def canvas_diff_view(model_admin, request, object_id):
    campaign, refusal = _readable(model_admin, request, object_id, "GET", "two version numbers")
    if refusal:
        return refusal
    unknown = sorted(set(request.GET) - {"version", "against"})
    if unknown:
        return _errors([(name, "unknown parameter; use version and against") for name in unknown], status=400)
    try:
        diff = diff_on_canvas(campaign, number=request.GET.get("version"), against=request.GET.get("against"))
    except ApiError as exc:
        return _refused(exc)
    return JsonResponse({"diff": diff})


def canvas_urls(model_admin) -> list:
    """The page's and its endpoints' URLs, for CampaignAdmin.get_urls (before `<path:object_id>/`)."""
    view = model_admin.admin_site.admin_view
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    def route(name, handler, segment=None):
        return path(f"<path:object_id>/canvas/{segment or name}/", view(lambda request, object_id: handler(
            model_admin, request, object_id)), name=f"{prefix}_canvas_{name}")

    return [
        route("numbers", canvas_numbers_view),
        route("people", canvas_people_view),
        # not `canvas/simulate/`: the Simulate page's `<path:object_id>/simulate/` comes first and would take it
        route("simulate", canvas_simulate_view, "simulation"),
        route("preview", canvas_preview_view),
        route("diff", canvas_diff_view),
        path("<path:object_id>/canvas/check/", view(lambda request, object_id: canvas_check_view(
            model_admin, request, object_id)), name=f"{prefix}_canvas_check"),
        path("<path:object_id>/canvas/save/", view(lambda request, object_id: canvas_save_view(
            model_admin, request, object_id)), name=f"{prefix}_canvas_save"),
        path("<path:object_id>/canvas/", view(lambda request, object_id: canvas_view(model_admin, request, object_id)),
             name=f"{prefix}_canvas"),
    ]
