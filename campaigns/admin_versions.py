"""The console's side of campaign versions (docs/journeys.md "Versions"): the versions list on a
campaign's page, the diff page of a version against the one before it, and the publish choice.

Editing a campaign that has been live asks what happens to the runs already in it (stay, move with a
mapping for removed steps, exit), and shows the dry count first: when runs are live and the workflow
changed (or the choice is move or exit), the first submit of a workflow is refused with the runs per
step counted below the form (and a hidden fingerprint of that count); a submit with the choice and
the same fingerprint saves.
No script (CSP): the page's own forms do it. The services decide everything (versions.py); this
module only renders and routes their answers. The campaign's page also shows the totals of the runs on
each version (selectors.version_totals, as GET .../metrics answers them).
"""

from __future__ import annotations

import hashlib
import json

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse

from campaigns.journeys import selectors, services, versions
from core.errors import ApiError
from profiles.admin import PrettyJSONFormField, pretty_json

PUBLISH_FIELDS = ("publish_runs", "publish_removed", "publish_seen")
RUN_CHOICES = [("", "— (needed when runs are live and the workflow changed)"),
               ("stay", "Stay: they finish on the version they are on"),
               ("move", "Move: to the new version, at the same step (removed steps: as mapped below)"),
               ("exit", "Exit: every live run ends now")]


def publish_runs_field() -> forms.ChoiceField:
    return forms.ChoiceField(required=False, choices=RUN_CHOICES, label="Runs already in the campaign")


def publish_removed_field() -> PrettyJSONFormField:
    return PrettyJSONFormField(
        required=False, label="Removed steps (move)",
        help_text='With Move: {"<removed step>": "<step of the new workflow>" or null (its runs exit)}, for every '
                  "removed step where runs are (counted below); a removed step with runs left out refuses the save.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 100, "class": "ulak-json"}))


def publish_seen_field() -> forms.CharField:
    return forms.CharField(required=False, widget=forms.HiddenInput)


def publishing_fieldset() -> tuple:
    return ("Publishing", {"fields": list(PUBLISH_FIELDS), "description": (
        "This campaign has been live: saving makes a new version. Say what happens to the runs already in it; "
        "the runs at each step are counted before anything is saved.")})


def versioned(campaign) -> bool:
    return campaign is not None and campaign.pk is not None and campaign.activated_at is not None


# --- the form's side ------------------------------------------------------------------------------------

def choice_of(data: dict) -> dict | None:
    """The `publish` of the service from the form's fields (None when neither was filled in)."""
    runs, removed = data.get("publish_runs") or None, data.get("publish_removed")
    if runs is None and not removed:
        return None
    return {"runs": runs, "removed": removed}


def dry_count(form) -> dict | None:
    """The dry count of the submitted definition (services.publish_preview), for a campaign that has
    been live; None otherwise or when the definition does not check out (its errors show anyway)."""
    if not versioned(form.instance):
        return None
    try:
        return services.publish_preview(campaign=form.instance, definition=form.definition)
    except ApiError:
        return None


def fingerprint(preview: dict, definition: dict) -> str:
    text = json.dumps([preview, definition.get("workflow")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def acts_on_runs(form, preview: dict) -> bool:
    """Whether the submit would move or end live runs: a choice is required (runs are live and the
    workflow changed), or one was given that acts on them even with the workflow unchanged (move,
    exit). A submit that changes nothing stores nothing and leaves the runs alone."""
    runs = (getattr(form, "publish", None) or {}).get("runs")
    if not preview["changed"]:
        return False
    return bool(preview["publish_required"] or (preview["live_runs"] and runs in ("move", "exit")))


def require_seen(form, preview: dict | None) -> None:
    """A publish that moves or ends live runs saves only once the dry count of this very workflow
    (and these counts) was shown: else the submit is refused with the count below the form, and the
    page carries its fingerprint for the next submit."""
    if not preview or not acts_on_runs(form, preview):
        return
    seen = fingerprint(preview, form.definition)
    if form.data.get("publish_seen") != seen and "publish_runs" not in form.errors:
        form.add_error("publish_runs", "Check the runs counted below, choose what happens to them, then save again.")
    data = form.data.copy()
    data["publish_seen"] = seen
    form.data = data


def publish_error_field(field: str | None) -> str | None:
    """The form field that shows a service error on `publish...`, else None."""
    if field == "publish" or (field or "").startswith("publish.runs"):
        return "publish_runs"
    if (field or "").startswith("publish."):
        return "publish_removed"
    return None


# --- the pages ---------------------------------------------------------------------------------------------

def version_rows(campaign, url_name: str) -> list[dict]:
    """The campaign's versions, newest first, each with a link to its diff against the one before."""
    rows = []
    for row in versions.campaign_versions(campaign):
        published = row.published or {}
        rows.append({"row": row, "current": row.number == campaign.version,
                     "runs": published.get("runs"), "removed": published.get("removed") or {},
                     "affected": sorted((published.get("affected") or {}).items()),
                     "diff_url": reverse(url_name, args=[campaign.pk, row.number]) if row.number > 1 else None})
    return rows


def version_metric_rows(campaign) -> list[dict]:
    """The totals of the runs on each version, as GET /v1/campaigns/{id}/metrics answers them in
    `versions` (only versions that have runs), each with a link to its runs; none (and no query)
    for a campaign that has only ever had one version. One GROUP BY, whatever the number of runs."""
    if campaign.version <= 1:
        return []
    journeys = reverse("admin:campaigns_journey_changelist")
    return [{"number": int(number), "current": int(number) == campaign.version, **counts,
             "runs_url": f"{journeys}?campaign={campaign.pk}&version={number}"}
            for number, counts in selectors.version_totals(campaign).items()]


def diff_view(model_admin, request, object_id, number: int):
    """A version against the one before: fields and steps that changed, each old and new value."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    campaign = model_admin.get_object(request, object_id)
    if campaign is None:  # missing, or another workspace's
        raise Http404
    row = versions.find_version(campaign, number)
    previous = versions.find_version(campaign, number - 1) if row is not None and number > 1 else None
    if previous is None:
        raise Http404
    diff = versions.diff_versions(previous.definition, row.definition)
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request), "opts": opts, "original": campaign,
        "title": f"{campaign}: version {row.number} against {previous.number}", "version": row,
        "previous": previous, "has_view_permission": True,
        "campaign_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[campaign.pk]),
        "fields": [(name, pretty_json(change["old"]), pretty_json(change["new"]))
                   for name, change in diff["fields"].items()],
        "added": diff["steps"]["added"], "removed": diff["steps"]["removed"],
        "changed": [(key, [(name, pretty_json(change["old"]), pretty_json(change["new"]))
                           for name, change in fields.items()]) for key, fields in diff["steps"]["changed"].items()],
    }
    return TemplateResponse(request, "admin/campaigns/campaign/version_diff.html", context)
