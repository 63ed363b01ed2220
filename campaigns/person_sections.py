"""What campaigns shows on the person page (profiles/person_sections.py): the person's journeys
(runs), each with its campaign, version, state and step; the newest few drawn on a small read-only
canvas (frontend/src/journey-canvas/path.jsx, the `journey-path` bundle): the workflow of the run's
version, the steps it passed through in order from its step log (JourneyStep) with each visit's
outcome and time, and the step it is at now.

Registered by CampaignsConfig.ready().
"""

import json

from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import dateformat, timezone

from profiles.person_sections import register_person_section

from campaigns.journeys.schema import definition_schema
from campaigns.models import CampaignVersion, Journey, JourneyState, JourneyStep

JOURNEYS = 20
DRAWN = 5  # the newest runs drawn; the table lists the others
VISITS = 100  # the latest step executions drawn per run
LIVE = (JourneyState.ACTIVE, JourneyState.WAITING)


def _when(value) -> str:
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i T") if value else ""


def _note(detail) -> str:
    """The visit's reason (`unmatched`, a failure's reason), never the detail's personal data."""
    reason = detail.get("reason") if isinstance(detail, dict) else None
    return reason if isinstance(reason, str) else ""


def drawn_journeys(workspace, runs: list[Journey]) -> list[dict]:
    """Each run with its version's trigger and workflow and its latest VISITS step executions, oldest
    first. Two queries whatever the number of runs: the versions, and the step log (the latest
    VISITS per run by a window over the (workspace, journey, seq) unique index)."""
    if not runs:
        return []
    wanted = Q()
    for run in runs:
        wanted |= Q(campaign_id=run.campaign_id, number=run.version)
    definitions = {(row.campaign_id, row.number): row.definition for row in
                   CampaignVersion.objects.for_workspace(workspace).filter(wanted).only("campaign_id", "number", "definition")}
    visits: dict[int, list[JourneyStep]] = {run.pk: [] for run in runs}
    more: set[int] = set()
    steps = (JourneyStep.objects.for_workspace(workspace).filter(journey_id__in=list(visits))
             .annotate(latest=Window(RowNumber(), partition_by=[F("journey_id")], order_by=F("seq").desc()))
             .filter(latest__lte=VISITS + 1).only("journey_id", "seq", "step", "type", "outcome", "detail", "created_at"))
    for row in steps:
        if row.latest > VISITS:
            more.add(row.journey_id)
        else:
            visits[row.journey_id].append(row)
    out = []
    for run in runs:
        campaign = run.campaign
        definition = definitions.get((campaign.pk, run.version))
        if definition is None:  # no stored version (older data): the campaign's current definition
            definition = {"trigger": campaign.trigger, "workflow": campaign.workflow}
        log = sorted(visits[run.pk], key=lambda row: row.seq)
        out.append({
            "id": run.pk, "version": run.version, "state": run.state, "state_label": run.get_state_display(),
            "exit_reason": run.exit_reason, "converted": run.converted_at is not None,
            "current": run.step if run.state in LIVE and run.step else None,
            "next_run_at": _when(run.next_run_at), "entered_at": _when(run.entered_at), "ended_at": _when(run.ended_at),
            "campaign": {"id": campaign.pk, "name": campaign.name,
                         "url": reverse("admin:campaigns_campaign_change", args=[campaign.pk])},
            "url": reverse("admin:campaigns_journey_change", args=[run.pk]),
            "definition": {"trigger": definition.get("trigger") or {}, "workflow": definition.get("workflow") or {}},
            "visits": [{"seq": row.seq, "key": row.step, "type": row.type, "outcome": row.outcome,
                        "at": row.created_at.isoformat(), "when": _when(row.created_at), "note": _note(row.detail)}
                       for row in log],
            "earlier": run.pk in more,
        })
    return out


def journeys_section(request, person):
    """The person's newest runs, with their campaign (one query; journey_person leads with
    (workspace, profile)); the newest DRAWN of them drawn (two queries more, drawn_journeys)."""
    rows = list(
        Journey.objects.for_workspace(request.workspace).filter(profile=person).select_related("campaign")
        .only("campaign__name", "campaign__type", "campaign__trigger", "campaign__workflow", "version", "state",
              "exit_reason", "step", "entered_at", "ended_at", "converted_at", "next_run_at")
        .order_by("-entered_at", "-pk")[: JOURNEYS + 1]
    )
    all_url = f"{reverse('admin:campaigns_journey_changelist')}?person={person.pk}"
    drawn = drawn_journeys(request.workspace, rows[:DRAWN])
    paths = {"schema": definition_schema(), "runs": drawn, "drawn": DRAWN, "more": len(rows) > DRAWN,
             "all_url": all_url} if drawn else None
    return "admin/campaigns/person/journeys.html", {
        "journeys": rows[:JOURNEYS], "more": len(rows) > JOURNEYS, "shown": JOURNEYS, "all_url": all_url,
        # The drawing's data in an attribute (escaped by the template): the page has no inline <script>.
        "paths": paths, "paths_json": json.dumps(paths, separators=(",", ":")) if paths else "",
    }


def register() -> None:
    register_person_section("journeys", "Journeys", "view_campaigns", 50, journeys_section)
