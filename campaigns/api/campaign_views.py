"""App API (/v1, Bearer app key) for campaigns and their journeys: the campaign definitions
(Customer.io's `{"campaigns": [...]}` / `{"campaign": {...}}` shapes), their state changes,
the published JSON Schema of the definition, the runs with their step log, and metrics.

Reads need the `read` scope, changes `write`. Another workspace's campaign, run or person is a
404. A definition with problems is a 400 naming each field path (`workflow.steps.welcome.
content.subject`), and nothing is stored; a state change the campaign's state does not allow (pausing
a draft, deleting a running campaign) is a 409. Times are Unix seconds. Lists of runs page with
`start`/`limit` and the `next` cursor, newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from campaigns.api import openapi as doc
from campaigns.journeys import selectors, services, versions
from campaigns.journeys.schema import definition_schema
from campaigns.models import Campaign, Journey, JourneyState, JourneyStep
from channels.api.openapi import PAGING, PERSON_PATH, query
from core.api.schema import error_responses
from core.errors import InvalidInput
from profiles import selectors as people
from profiles.api.app_filters import clean_id_type, clean_limit, decode_cursor, next_cursor
from profiles.ingest.operations import require_dict

MAX_PK = 2**63 - 1
CAMPAIGN_PATH = [OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The campaign's id.")]
STATE_FILTER = query("state", "Only runs in this state.", enum=JourneyState.values)


def unix(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _pk(value) -> int | None:
    number = int(value)
    return number if number <= MAX_PK else None


# --- the JSON answered ---------------------------------------------------------------------------------

def action_json(key: str, step: dict) -> dict:
    return {"id": key, "type": step["type"], "name": step.get("name") or "", "channel": step.get("channel")}


def _workflow(campaign: Campaign) -> dict:
    workflow = campaign.workflow or {}
    return {"start": workflow.get("start"), "steps": workflow.get("steps") or {}}


def webhook_url(campaign: Campaign) -> str | None:
    """The inbound-webhook trigger's URL (campaigns/hooks.py) when the campaign's trigger is a
    webhook, else None. The token in it is the URL's only credential; it is shown to every key and
    console role that can read the campaign, as Customer.io shows a webhook-triggered campaign's URL
    to anyone who can see the campaign (the URL starts runs; it reads nothing)."""
    if (campaign.trigger or {}).get("type") != "webhook" or not campaign.webhook_token:
        return None
    return f"{settings.ULAK_PUBLIC_URL.rstrip('/')}/hooks/campaigns/{campaign.webhook_token}"


def campaign_summary_json(campaign: Campaign) -> dict:
    return {
        "id": campaign.pk, "key": campaign.key, "name": campaign.name, "description": campaign.description,
        "type": campaign.type, "state": campaign.state, "active": campaign.admits,
        "created": unix(campaign.created_at), "updated": unix(campaign.updated_at),
        "activated": unix(campaign.activated_at), "stopped": unix(campaign.stopped_at),
        "trigger": campaign.trigger or {}, "webhook_url": webhook_url(campaign),
        "actions": [action_json(key, step) for key, step in selectors.ordered_steps(_workflow(campaign))],
    }


def campaign_json(campaign: Campaign) -> dict:
    return {
        **campaign_summary_json(campaign),
        "audience": campaign.audience, "re_entry": campaign.re_entry or {}, "exit": campaign.exit_rules or {},
        "goal": campaign.goal, "journey_key": campaign.journey_key, "workflow": _workflow(campaign),
        "priority": campaign.priority, "exempt_from_caps": campaign.exempt_from_caps,
        "when_capped": campaign.when_capped, "when_quiet": campaign.when_quiet,
        "version": campaign.version,
    }


def journey_json(journey: Journey) -> dict:
    person = journey.profile if journey.profile_id else None
    return {
        "id": journey.pk, "campaign_id": journey.campaign_id,
        "customer": {"id": person.external_id or None, "cio_id": person.cio_id} if person is not None else None,
        "key": journey.key or None, "state": journey.state, "exit_reason": journey.exit_reason or None,
        "step": journey.step or None, "version": journey.version,
        "next_run_at": unix(journey.next_run_at), "entered_at": unix(journey.entered_at),
        "ended_at": unix(journey.ended_at), "converted_at": unix(journey.converted_at),
        "trigger_data": journey.trigger_data,
        # Keys starting with "_" are the engine's own bookkeeping (retry counts...).
        "data": {key: value for key, value in (journey.data or {}).items() if not key.startswith("_")},
    }


def step_json(row: JourneyStep) -> dict:
    return {"seq": row.seq, "step": row.step or None, "type": row.type or None, "outcome": row.outcome,
            "detail": row.detail, "delivery_id": row.delivery_public_id, "created_at": unix(row.created_at)}


def definition_body(data) -> dict:
    """The definition of a create or update body: the object itself or in its `campaign`
    envelope; the read-only fields of a campaign's answer are dropped (an exported campaign can be
    sent back as it is)."""
    if isinstance(data, dict) and set(data) == {"campaign"} and isinstance(data["campaign"], dict):
        data = data["campaign"]
    body = require_dict(data, None)
    return {key: value for key, value in body.items() if key not in doc.CAMPAIGN_READ_ONLY}


def publish_body(data) -> tuple[dict, dict | None]:
    """An update body → (its definition, its `publish` choice or None). `publish` (what happens to
    the runs already in a live campaign: docs/journeys.md "Versions") sits at the top level, next to
    the definition's fields or to its `campaign` envelope."""
    publish = None
    if isinstance(data, dict) and "publish" in data:
        publish = data["publish"]
        data = {key: value for key, value in data.items() if key != "publish"}
    return definition_body(data), publish


def replacement(data, *, partial: bool) -> tuple[dict, dict | None]:
    """The definition and `publish` choice of a PUT (or PATCH, `partial`) body."""
    body, publish = publish_body(data)
    if not partial:
        # A replacement: what it leaves out takes its default, never the stored value (the
        # definition's cleaner reads name, type and trigger from the stored definition otherwise).
        body = {"type": "triggered", "name": None, "trigger": None, **body}
    return body, publish


# --- views ---------------------------------------------------------------------------------------------

class CampaignAPIView(WorkspaceAPIView):
    def query(self, name: str):
        return self.request.query_params.get(name)

    def campaign_or_404(self, pk) -> Campaign:
        number = _pk(pk)
        campaign = selectors.find_campaign(self.workspace, number) if number is not None else None
        if campaign is None:
            raise NotFound("Campaign not found.")
        return campaign

    def state_filter(self) -> str | None:
        state = self.query("state") or None
        if state is not None and state not in JourneyState.values:
            raise InvalidInput("state", f"must be one of {', '.join(JourneyState.values)}")
        return state

    def paging(self) -> dict:
        """The query of a list of runs: `state`, `limit` and `start` checked (a 400 names the bad one)."""
        return {"state": self.state_filter(), "limit": clean_limit(self.query("limit")),
                "after": decode_cursor(self.query("start"))}

    def journeys_page(self, paging: dict, **filters) -> Response:
        rows = selectors.journeys(self.workspace, **paging, **filters)
        rows, cursor = next_cursor(rows, paging["limit"], lambda journey: (journey.pk,))
        return Response({"journeys": [journey_json(journey) for journey in rows], "next": cursor})


class CampaignsView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_list", responses={200: doc.CampaignList})
    def get(self, request):
        """Every campaign of the workspace, oldest first, with its trigger and workflow steps (`actions`)."""
        return Response({"campaigns": [campaign_summary_json(c) for c in selectors.campaigns(self.workspace)]})

    @extend_schema(operation_id="campaigns_create", request=doc.CampaignDefinitionBody,
                   responses={201: doc.CampaignResponse})
    def post(self, request):
        """Create a campaign (a draft): `name`, `type`, `trigger`, `workflow` and its rules."""
        campaign = services.create_campaign(workspace=self.workspace, definition=definition_body(request.data))
        return Response({"campaign": campaign_json(campaign)}, status=status.HTTP_201_CREATED)


class CampaignSchemaView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_schema", responses={200: doc.DefinitionSchema})
    def get(self, request):
        """The JSON Schema of a campaign definition (what POST and PUT take), with valid examples."""
        return Response(definition_schema())


class CampaignView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_get", parameters=CAMPAIGN_PATH, responses={200: doc.CampaignResponse})
    def get(self, request, pk):
        return Response({"campaign": campaign_json(self.campaign_or_404(pk))})

    @extend_schema(operation_id="campaigns_replace", parameters=CAMPAIGN_PATH, request=doc.CampaignReplaceBody,
                   responses={200: doc.CampaignResponse})
    def put(self, request, pk):
        """Replace the whole definition (fields left out take their defaults). A campaign that has been
        live gets a new version; `publish` says what happens to the runs already in it (stay on their
        version, move to the new one, exit), required when runs are live and the workflow changed."""
        return self.change(pk, partial=False)

    @extend_schema(operation_id="campaigns_update", parameters=CAMPAIGN_PATH, request=doc.CampaignPatchBody,
                   responses={200: doc.CampaignResponse})
    def patch(self, request, pk):
        """Change only the fields given (`publish` as for PUT)."""
        return self.change(pk, partial=True)

    def change(self, pk, *, partial: bool) -> Response:
        body, publish = replacement(self.request.data, partial=partial)
        campaign = services.update_campaign(campaign=self.campaign_or_404(pk), definition=body, partial=partial,
                                            publish=publish)
        return Response({"campaign": campaign_json(campaign)})


    @extend_schema(operation_id="campaigns_delete", parameters=CAMPAIGN_PATH,
                   responses={204: None, **error_responses(409)})
    def delete(self, request, pk):
        """Delete a draft or stopped campaign with its runs and step log (a running one: 409)."""
        services.delete_campaign(campaign=self.campaign_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignActionsView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_actions", parameters=CAMPAIGN_PATH, responses={200: doc.ActionList})
    def get(self, request, pk):
        """The workflow's steps with their definitions, in reading order."""
        workflow = _workflow(self.campaign_or_404(pk))
        return Response({"actions": [{**action_json(key, step), "step": step}
                                     for key, step in selectors.ordered_steps(workflow)]})


STATE_CHANGED = {200: doc.CampaignResponse, **error_responses(409)}


class CampaignActivateView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_activate", parameters=CAMPAIGN_PATH, request=None, responses=STATE_CHANGED)
    def post(self, request, pk):
        """Draft or stopped → active, after checking the whole definition: a 400 names each problem
        (a step unreachable from the start, a send step without a configured channel...)."""
        campaign = services.activate_campaign(campaign=self.campaign_or_404(pk))
        return Response({"campaign": campaign_json(campaign)})


class CampaignPauseView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_pause", parameters=CAMPAIGN_PATH, request=None, responses=STATE_CHANGED)
    def post(self, request, pk):
        """Active → paused: nobody enters, runs hold where they are."""
        campaign = services.pause_campaign(campaign=self.campaign_or_404(pk))
        return Response({"campaign": campaign_json(campaign)})


class CampaignResumeView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_resume", parameters=CAMPAIGN_PATH, request=None, responses=STATE_CHANGED)
    def post(self, request, pk):
        """Paused → active: what fell due meanwhile runs now."""
        campaign = services.resume_campaign(campaign=self.campaign_or_404(pk))
        return Response({"campaign": campaign_json(campaign)})


class CampaignStopView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_stop", parameters=CAMPAIGN_PATH, request=doc.StopBody,
                   responses=STATE_CHANGED)
    def post(self, request, pk):
        """Stop a running campaign: `exit` every live run now, or `drain` (runs finish, nobody new
        enters)."""
        mode = require_dict(request.data, None).get("mode")
        campaign = services.stop_campaign(campaign=self.campaign_or_404(pk), mode=mode)
        return Response({"campaign": campaign_json(campaign)})


class CampaignJourneysView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_journeys", responses={200: doc.JourneyList}, parameters=[
        *CAMPAIGN_PATH,
        query("customer_id", "Only the runs of this person (see id_type)."),
        query("id_type", "What `customer_id` is; default id.", enum=["id", "email", "cio_id"]),
        STATE_FILTER, *PAGING])
    def get(self, request, pk):
        """The campaign's runs, newest first."""
        campaign = self.campaign_or_404(pk)
        paging, id_type = self.paging(), clean_id_type(self.query("id_type"))
        person, identifier = None, self.query("customer_id")
        if identifier:
            person = people.find_person(self.workspace, id_type, identifier)
            if person is None:
                return Response({"journeys": [], "next": ""})  # nobody by that id: no runs
        return self.journeys_page(paging, campaign_id=campaign.pk, profile=person)


class CampaignMetricsView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_metrics", parameters=[*CAMPAIGN_PATH, query(
        "version", "Only the runs on this version of the campaign, and its workflow's steps.", type=OpenApiTypes.INT)],
        responses={200: doc.CampaignMetricsResponse})
    def get(self, request, pk):
        """Runs entered, live, completed, exited, failed and converted; per step what its runs did and,
        for send steps, what happened to the messages; the same totals per version (`versions`)."""
        campaign = self.campaign_or_404(pk)
        version = self.query("version")
        if version is not None:
            found = versions.find_version(campaign, int(version)) \
                if version.isascii() and version.isdigit() and len(version) <= 10 else None
            if found is None:
                raise InvalidInput("version", "names no version of this campaign")
            version = found
        return Response({"metrics": {"campaign_id": campaign.pk,
                                     **selectors.campaign_metrics(campaign, version=version)}})


class CampaignJourneyMetricsView(CampaignAPIView):
    @extend_schema(operation_id="campaigns_journey_metrics", parameters=[
        *CAMPAIGN_PATH,
        query("start", "Beginning of the report (Unix seconds).", type=OpenApiTypes.INT, required=True),
        query("end", "End of the report (Unix seconds).", type=OpenApiTypes.INT, required=True),
        query("resolution", "The length of each period.", required=True, enum=list(selectors.RESOLUTIONS)),
    ], responses={200: doc.JourneyMetricsResponse})
    def get(self, request, pk):
        """Customer.io's journey metrics: per period, the runs that started in it and how many of
        them were messaged, never messaged, converted and exited early. start, end and resolution are
        required (400 naming the one missing)."""
        campaign = self.campaign_or_404(pk)
        moments = {}
        for name in ("start", "end"):
            value = self.query(name)
            if value in (None, ""):
                raise InvalidInput(name, "is required: Unix seconds")
            if not value.isdigit() or not 0 < int(value) < 253402300799:
                raise InvalidInput(name, "must be Unix seconds")
            moments[name] = datetime.fromtimestamp(int(value), UTC)
        resolution = self.query("resolution")
        if resolution not in selectors.RESOLUTIONS:
            raise InvalidInput("resolution", f"is required: one of {', '.join(selectors.RESOLUTIONS)}")
        if moments["end"] < moments["start"]:
            raise InvalidInput("end", "must not be before start")
        if len(selectors.periods(moments["start"], moments["end"], resolution)) > selectors.MAX_PERIODS:
            raise InvalidInput("end", f"the report may hold at most {selectors.MAX_PERIODS} periods at this resolution")
        return Response({"journey_metrics": selectors.journey_metrics(
            campaign, start=moments["start"], end=moments["end"], resolution=resolution)})


class JourneyView(CampaignAPIView):
    @extend_schema(operation_id="journeys_get", responses={200: doc.JourneyResponse}, parameters=[
        OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The run's id.")])
    def get(self, request, pk):
        """One run with its step log."""
        number = _pk(pk)
        journey = selectors.find_journey(self.workspace, number) if number is not None else None
        if journey is None:
            raise NotFound("Journey not found.")
        steps = [step_json(row) for row in selectors.step_log(journey)]
        return Response({"journey": {**journey_json(journey), "steps": steps}})


class CustomerJourneysView(CampaignAPIView):
    @extend_schema(operation_id="customer_journeys", responses={200: doc.JourneyList}, parameters=[
        *PERSON_PATH, query("campaign_id", "Only the runs of this campaign.", type=OpenApiTypes.INT),
        STATE_FILTER, *PAGING])
    def get(self, request, identifier):
        """The person's runs of every campaign, newest first."""
        paging, id_type = self.paging(), clean_id_type(self.query("id_type"))
        campaign_id = self.query("campaign_id") or None
        if campaign_id is not None:
            if not (campaign_id.isascii() and campaign_id.isdecimal()) or _pk(campaign_id) is None:
                raise InvalidInput("campaign_id", "must be a campaign id")
            campaign_id = int(campaign_id)
        person = people.find_person(self.workspace, id_type, identifier)
        if person is None:
            raise NotFound("Customer not found.")
        return self.journeys_page(paging, campaign_id=campaign_id, profile=person)
