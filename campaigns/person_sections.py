"""What campaigns shows on the person page (profiles/person_sections.py): the person's journeys
(runs), each with its campaign, version, state and step.

Registered by CampaignsConfig.ready().
"""

from django.urls import reverse

from profiles.person_sections import register_person_section

from campaigns.models import Journey

JOURNEYS = 20


def journeys_section(request, person):
    """The person's newest runs, with their campaign (one query; journey_person leads with
    (workspace, profile))."""
    rows = list(
        Journey.objects.for_workspace(request.workspace).filter(profile=person).select_related("campaign")
        .only("campaign__name", "campaign__type", "version", "state", "exit_reason", "step", "entered_at",
              "ended_at", "converted_at", "next_run_at")
        .order_by("-entered_at", "-pk")[: JOURNEYS + 1]
    )
    return "admin/campaigns/person/journeys.html", {
        "journeys": rows[:JOURNEYS], "more": len(rows) > JOURNEYS, "shown": JOURNEYS,
        "all_url": f"{reverse('admin:campaigns_journey_changelist')}?person={person.pk}",
    }


def register() -> None:
    register_person_section("journeys", "Journeys", "view_campaigns", 50, journeys_section)
