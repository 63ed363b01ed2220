"""Versions of a live campaign (docs/journeys.md "Versions"): a draft's edits rewrite version 1, a
live campaign's make the next one; the publish choice for the runs already in it (stay on their
version's workflow, move by step key with a mapping for removed steps, exit), required when runs
are live and the workflow changed; the dry count; the diff; per-version metrics; the API."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role

from campaigns.journeys import engine, services, versions
from campaigns.journeys.triggers import enter_from_webhook
from campaigns.models import Campaign, CampaignVersion, Journey, JourneyStep
from core.errors import InvalidFields, InvalidInput
from tests.campaigns.journeys.conftest import campaign, step_log, tick
from tests.campaigns.journeys.test_admin import as_owner, as_role, field_errors, form_data
from tests.campaigns.journeys.test_admin import url as admin_url
from tests.helpers import app_client_with_scopes
from tests.support.factories import ProfileFactory

pytestmark = pytest.mark.django_db

HOOK = {"type": "webhook"}
# Version 1: people wait a day at `wait`, then `first` ends their run.
V1 = {"start": "wait", "steps": {
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "first"},
    "first": {"type": "exit"},
}}
# Version 2: an hour at `wait`, then `second`; `first` is gone.
V2 = {"start": "wait", "steps": {
    "wait": {"type": "delay", "duration": {"hours": 1}, "next": "second"},
    "second": {"type": "exit"},
}}


def plan_is(value: str) -> dict:
    return {"attribute": {"field": "plan", "operator": "eq", "value": value}}


# Runs are routed by the person's plan to four waiting steps.
ROUTED = {"start": "route", "steps": {
    "route": {"type": "split", "branches": [{"condition": plan_is("a"), "next": "keep"},
                                            {"condition": plan_is("b"), "next": "gone"},
                                            {"condition": plan_is("c"), "next": "gone2"}], "else": "retype"},
    "keep": {"type": "delay", "duration": {"days": 1}, "next": None},
    "gone": {"type": "delay", "duration": {"days": 1}, "next": None},
    "gone2": {"type": "delay", "duration": {"days": 1}, "next": None},
    "retype": {"type": "delay", "duration": {"days": 1}, "next": None},
}}
# Its next version: `keep` kept, `gone` and `gone2` removed, `retype` now a branch to `landing`.
REROUTED = {"start": "route", "steps": {
    "route": {"type": "split", "branches": [{"condition": plan_is("a"), "next": "keep"},
                                            {"condition": plan_is("b"), "next": "landing"}], "else": "retype"},
    "keep": {"type": "delay", "duration": {"days": 1}, "next": None},
    "retype": {"type": "branch", "condition": plan_is("d"), "yes": "landing", "no": None},
    "landing": {"type": "delay", "duration": {"hours": 1}, "next": None},
}}


def hooked(ws, workflow=V1, **definition):
    return campaign(ws, trigger=HOOK, workflow=workflow, **definition)


def enter(made, person=None) -> Journey:
    body = {"identifiers": {"id": person.external_id}} if person is not None else {}
    run, created = enter_from_webhook(campaign=Campaign.unscoped.get(pk=made.pk), body=body)
    assert created
    return run


def routed_runs(ws, made) -> dict[str, Journey]:
    """One run waiting at each of ROUTED's waiting steps."""
    runs = {}
    for plan, step in (("a", "keep"), ("b", "gone"), ("c", "gone2"), ("d", "retype")):
        runs[step] = enter(made, ProfileFactory(workspace=ws, external_id=f"p-{plan}", attributes={"plan": plan}))
    tick()
    for step, run in runs.items():
        run.refresh_from_db()
        assert (run.state, run.step, run.version) == ("waiting", step, 1)
    return runs


def update(made, workflow, publish=None, **definition):
    body = {"name": made.name, "trigger": HOOK, "workflow": workflow, **definition}
    return services.update_campaign(campaign=made, definition=body, publish=publish)


def version_rows(made) -> list[tuple]:
    return list(CampaignVersion.objects.for_workspace(made.workspace_id).filter(campaign=made).order_by("number")
                .values_list("number", "definition", "author", "published"))


def snapshot(made) -> tuple:
    """Everything a refused publish or a preview must leave as it was."""
    row = Campaign.unscoped.get(pk=made.pk)
    runs = list(Journey.unscoped.filter(campaign=made).order_by("pk").values_list(
        "state", "step", "seq", "version", "wait", "next_run_at", "exit_reason"))
    return (row.version, row.workflow, row.updated_at, runs, version_rows(made),
            JourneyStep.unscoped.filter(campaign=made).count())


# --- numbering --------------------------------------------------------------------------------------------

def test_a_draft_rewrites_version_1_and_a_live_campaign_makes_the_next(tenant_a):
    ws = tenant_a.workspace
    made = hooked(ws, activate=False)
    [(number, definition, author, published)] = version_rows(made)
    assert (number, author, published) == (1, "system", {})
    assert definition == services.stored_definition(made)
    edited = update(made, V2, description="draft edit")
    assert edited.version == 1
    [(number, definition, _, _)] = version_rows(made)
    assert number == 1 and definition["workflow"] == edited.workflow and definition["description"] == "draft edit"
    # Nothing changed: nothing stored.
    assert update(edited, V2, description="draft edit").updated_at == edited.updated_at

    live = services.activate_campaign(campaign=edited)
    assert live.version == 1 and len(version_rows(live)) == 1
    renamed = update(live, V2, description="renamed")  # no run is live: no choice needed
    assert renamed.version == 2
    assert [(n, d["description"], p) for n, d, _, p in version_rows(renamed)] == [
        (1, "draft edit", {}), (2, "renamed", {"runs": None, "removed": {}, "affected": {}})]
    assert update(renamed, V2, description="renamed").version == 2  # the same definition again
    # Stopped, it still keeps its history: the next edit is version 3.
    stopped = services.stop_campaign(campaign=renamed, mode="exit")
    assert update(stopped, V1, description="renamed").version == 3


# --- stay ------------------------------------------------------------------------------------------------

def test_stay_finishes_old_runs_on_their_version_and_new_runs_enter_the_new_one(tenant_a, clock):
    ws = tenant_a.workspace
    made = hooked(ws)
    old = enter(made)
    tick()
    old.refresh_from_db()
    assert (old.state, old.step, old.version) == ("waiting", "wait", 1)

    made = update(made, V2, publish={"runs": "stay"})
    assert made.version == 2 and "first" not in made.workflow["steps"]
    assert version_rows(made)[-1][3] == {"runs": "stay", "removed": {}, "affected": {"wait": 1}}
    new = enter(made)
    assert new.version == 2
    tick()
    clock.shift(timedelta(hours=2))
    tick()
    new.refresh_from_db()
    old.refresh_from_db()
    assert (new.state, new.exit_reason) == ("exited", "exit_step")
    assert [step for _, step, _ in step_log(new)] == ["wait", "wait", "second"]
    assert (old.state, old.version) == ("waiting", 1)  # v1's day is not over: v2's hour does not apply
    clock.shift(timedelta(days=1))
    tick()
    old.refresh_from_db()
    assert (old.state, old.exit_reason, old.version) == ("exited", "exit_step", 1)
    assert step_log(old) == [(1, "wait", "waiting"), (2, "wait", "waited"), (3, "first", "exited")]


def test_a_batch_reads_each_version_once(tenant_a):
    ws = tenant_a.workspace
    made = hooked(ws)
    runs = [enter(made) for _ in range(3)]
    made = update(made, V2, publish={"runs": "stay"})
    fresh = list(Journey.objects.for_workspace(ws).filter(pk__in=[run.pk for run in runs]).select_related("campaign"))
    batch = engine.Batch([], engine.timezone.now())
    with CaptureQueriesContext(connection) as queries:
        workflows = [batch.workflow_of(run) for run in fresh]
    first = CampaignVersion.objects.for_workspace(ws).get(campaign=made, number=1).definition["workflow"]
    assert len(queries) == 1 and workflows == [first] * 3 and first["steps"].keys() == {"wait", "first"}


# --- move ------------------------------------------------------------------------------------------------

def test_move_keeps_same_keyed_steps_maps_removed_ones_and_reruns_a_changed_type(tenant_a, clock):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    runs = routed_runs(ws, made)
    kept_until = runs["keep"].next_run_at
    made = update(made, REROUTED, publish={"runs": "move", "removed": {"gone": "landing", "gone2": None}})
    assert made.version == 2
    for run in runs.values():
        run.refresh_from_db()
    keep, gone, gone2, retype = runs["keep"], runs["gone"], runs["gone2"], runs["retype"]
    # Same key, same type: it stays, its wait and its time kept.
    assert (keep.version, keep.state, keep.step, keep.next_run_at, keep.seq) == (2, "waiting", "keep", kept_until, 2)
    assert keep.wait["kind"] == "delay"
    # A removed step mapped: at the chosen step, its wait cleared, due now.
    assert (gone.version, gone.state, gone.step, gone.wait) == (2, "active", "landing", {})
    assert gone.next_run_at == engine.timezone.now()
    # A removed step mapped to null: the run exits, on the version it ran.
    assert (gone2.version, gone2.state, gone2.exit_reason, gone2.next_run_at) == (1, "exited", "version_removed_step",
                                                                                  None)
    # A step whose type changed: run anew now.
    assert (retype.version, retype.state, retype.step, retype.wait) == (2, "active", "retype", {})
    assert step_log(gone)[-1] == (3, "gone", "moved") and step_log(gone2)[-1] == (3, "gone2", "exited")
    assert step_log(retype)[-1] == (3, "retype", "moved") and len(step_log(keep)) == 2
    detail = JourneyStep.unscoped.get(journey=gone, seq=3).detail
    assert detail == {"reason": "version_moved", "to": "landing", "from_version": 1, "to_version": 2}
    assert version_rows(made)[-1][3] == {"runs": "move", "removed": {"gone": "landing", "gone2": None},
                                         "affected": {"gone": 1, "gone2": 1, "keep": 1, "retype": 1}}

    tick()
    for run in runs.values():
        run.refresh_from_db()
    assert (gone.state, gone.step, step_log(gone)[-1]) == ("waiting", "landing", (4, "landing", "waiting"))
    assert [outcome for _, _, outcome in step_log(retype)[-3:]] == ["moved", "yes", "waiting"]
    assert retype.step == "landing" and (keep.state, keep.seq) == ("waiting", 2)
    clock.shift(timedelta(hours=2))
    tick()
    gone.refresh_from_db()
    assert gone.state == "completed"


# A wait_until step that waits for a condition, then the same step waiting for an event.
ON_CONDITION = {"start": "w", "steps": {
    "w": {"type": "wait_until", "condition": plan_is("paid"), "within": {"days": 1}, "matched": None,
          "timeout": None}}}
ON_EVENT = {"start": "w", "steps": {
    "w": {"type": "wait_until", "event": {"name": "paid"}, "within": {"days": 1}, "matched": None,
          "timeout": None}}}


def test_move_reruns_a_wait_until_step_that_now_waits_for_something_else(tenant_a, clock):
    """The run's wait is of the old step's kind (a condition): kept under a step that waits for an
    event it would be resumed against a step without a condition. It runs the new step anew."""
    ws = tenant_a.workspace
    made = hooked(ws, workflow=ON_CONDITION)
    run = enter(made, ProfileFactory(workspace=ws, external_id="p-w", attributes={"plan": "free"}))
    tick()
    run.refresh_from_db()
    assert (run.state, run.wait["kind"]) == ("waiting", "condition")
    preview = services.publish_preview(campaign=made, definition={"name": made.name, "trigger": HOOK,
                                                                  "workflow": ON_EVENT})
    assert preview["steps"] == [{"key": "w", "runs": 1, "change": "changed", "type_changed": True}]
    made = update(made, ON_EVENT, publish={"runs": "move"})
    run.refresh_from_db()
    assert (run.version, run.state, run.step, run.wait) == (2, "active", "w", {})
    assert step_log(run)[-1] == (2, "w", "moved")
    tick()
    run.refresh_from_db()
    assert (run.state, run.wait["kind"], run.wait["name"]) == ("waiting", "event", "paid")
    clock.shift(timedelta(days=2))
    tick()
    run.refresh_from_db()
    assert (run.state, run.exit_reason, step_log(run)[-1]) == ("completed", "", (4, "w", "timeout"))


def test_move_needs_a_target_for_every_removed_step_where_runs_are(tenant_a):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    routed_runs(ws, made)
    before = snapshot(made)
    cases = [
        (None, {"publish"}),
        ({"runs": "move"}, {"publish.removed.gone", "publish.removed.gone2"}),
        ({"runs": "move", "removed": {"gone": "nowhere", "gone2": None}}, {"publish.removed.gone"}),
        ({"runs": "move", "removed": {"gone": "landing", "gone2": None, "keep": "landing"}}, {"publish.removed.keep"}),
        # A key that is no removed step (a typo) is refused, not ignored.
        ({"runs": "move", "removed": {"gone": "landing", "gone2": None, "gnoe": None}}, {"publish.removed.gnoe"}),
        ({"runs": "later"}, {"publish.runs"}),
        ({"removed": {}}, {"publish.runs"}),
        ({"runs": "stay", "removed": {"gone": "landing"}}, {"publish.removed"}),
        ({"runs": "move", "removed": ["gone"]}, {"publish.removed"}),
        ({"runs": "move", "removed": {"gone": "landing", "gone2": None}, "when": "now"}, {"publish.when"}),
        ("move", {"publish"}),
    ]
    for publish, fields in cases:
        with pytest.raises((InvalidInput, InvalidFields)) as refused:
            update(made, REROUTED, publish=publish)
        assert {error["field"] for error in refused.value.errors()} == fields, publish
        assert snapshot(made) == before, publish
    # The workflow unchanged (a rename): no choice needed, the runs stay where they are.
    renamed = update(made, ROUTED, description="renamed")
    assert renamed.version == 2
    assert version_rows(renamed)[-1][3]["runs"] == "stay"
    assert set(Journey.unscoped.filter(campaign=made).values_list("version", flat=True)) == {1}


def test_removed_names_steps_the_new_workflow_removes_and_nothing_else(tenant_a):
    """`removed` keys: the current workflow's steps the new one drops, and steps the new one lacks where
    live runs of an older version are (here version 1's `gone` and `gone2`, kept there by a stay; the
    current workflow no longer has them). Any other key is refused, whatever it maps to."""
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    runs = routed_runs(ws, made)
    made = update(made, REROUTED, publish={"runs": "stay"})
    assert made.version == 2 and not {"gone", "gone2"} & set(made.workflow["steps"])
    before = snapshot(made)
    for publish, fields in (
            ({"runs": "move"}, {"publish.removed.gone", "publish.removed.gone2"}),
            ({"runs": "move", "removed": {"gone": "landing", "gone2": None, "first": None}}, {"publish.removed.first"}),
            ({"runs": "move", "removed": {"gone": "landing", "gone2": None, "": "landing"}}, {"publish.removed."}),
    ):
        with pytest.raises((InvalidInput, InvalidFields)) as refused:
            update(made, REROUTED, publish=publish, description="third")
        assert {error["field"] for error in refused.value.errors()} == fields, publish
        assert snapshot(made) == before, publish
    with pytest.raises(InvalidFields) as refused:
        services.publish_preview(campaign=made, definition={"name": made.name, "trigger": HOOK, "workflow": REROUTED},
                                 publish={"runs": "move", "removed": {"gone": "landing", "gone2": None, "first": None}})
    assert refused.value.errors() == [{"field": "publish.removed.first", "message": (
        "is not a step the new workflow removes (nor one where live runs of an older version are)")}]

    made = update(made, REROUTED, publish={"runs": "move", "removed": {"gone": "landing", "gone2": None}},
                  description="third")
    assert made.version == 3
    for run in runs.values():
        run.refresh_from_db()
    assert (runs["gone"].version, runs["gone"].state, runs["gone"].step) == (3, "active", "landing")
    assert (runs["gone2"].version, runs["gone2"].state, runs["gone2"].exit_reason) == (1, "exited",
                                                                                       "version_removed_step")
    assert (runs["keep"].version, runs["keep"].state, runs["keep"].step) == (3, "waiting", "keep")


# --- exit ------------------------------------------------------------------------------------------------

def test_exit_ends_every_live_run(tenant_a):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    runs = routed_runs(ws, made)
    made = update(made, REROUTED, publish={"runs": "exit"})
    for step, run in runs.items():
        run.refresh_from_db()
        assert (run.state, run.exit_reason, run.version, run.next_run_at, run.wait) == ("exited", "version_exit", 1,
                                                                                        None, {})
        assert step_log(run)[-1] == (3, step, "exited")
    assert version_rows(made)[-1][3]["runs"] == "exit"
    details = list(JourneyStep.unscoped.filter(campaign=made, outcome="exited").values_list("detail", flat=True))
    assert details == [{"reason": "version_exit", "version": 1}] * 4


# --- the dry count ---------------------------------------------------------------------------------------

def test_the_preview_counts_what_the_publish_then_affects_and_writes_nothing(tenant_a):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    routed_runs(ws, made)
    extra = enter(made, ProfileFactory(workspace=ws, external_id="p-e", attributes={"plan": "a"}))
    engine.tick()
    extra.refresh_from_db()
    assert extra.step == "keep"
    before = snapshot(made)
    with CaptureQueriesContext(connection) as queries:
        preview = services.publish_preview(campaign=made, definition={"name": made.name, "trigger": HOOK,
                                                                      "workflow": REROUTED})
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == [] and snapshot(made) == before
    assert preview == {
        "version": 1, "next_version": 2, "changed": True, "live_runs": 5, "workflow_changed": True,
        "publish_required": True,
        "steps": [{"key": "route", "runs": 0, "change": "changed", "type_changed": False},  # in reading order
                  {"key": "retype", "runs": 1, "change": "changed", "type_changed": True},
                  {"key": "keep", "runs": 2, "change": "unchanged", "type_changed": False},
                  {"key": "gone", "runs": 1, "change": "removed", "type_changed": False},
                  {"key": "gone2", "runs": 1, "change": "removed", "type_changed": False}],
        "added": ["landing"]}
    # A choice given to the preview is checked as the update checks it, but may be left out.
    with pytest.raises(InvalidFields) as refused:
        services.publish_preview(campaign=made, definition={"name": made.name, "trigger": HOOK, "workflow": REROUTED},
                                 publish={"runs": "move"})
    assert {e["field"] for e in refused.value.errors()} == {"publish.removed.gone", "publish.removed.gone2"}
    made = update(made, REROUTED, publish={"runs": "move", "removed": {"gone": "landing", "gone2": None}})
    affected = version_rows(made)[-1][3]["affected"]
    assert affected == {row["key"]: row["runs"] for row in preview["steps"] if row["runs"]}
    # A draft: its version is rewritten, nobody moves.
    draft = hooked(ws, activate=False, key="draft")
    assert services.publish_preview(campaign=draft, definition={"name": "x", "trigger": HOOK, "workflow": V2}) == {
        "version": 1, "next_version": 1, "changed": True, "live_runs": 0, "workflow_changed": True,
        "publish_required": False,
        "steps": [{"key": "wait", "runs": 0, "change": "changed", "type_changed": False},
                  {"key": "first", "runs": 0, "change": "removed", "type_changed": False}],
        "added": ["second"]}


def test_the_preview_of_an_update_that_changes_nothing_says_so_as_the_update_does_it(tenant_a):
    """The same definition again: the update stores nothing, makes no version and does not act on the
    runs even when told to (exit); the preview answers that, not the next version."""
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    routed_runs(ws, made)
    same = {"name": made.name, "trigger": HOOK, "workflow": ROUTED}
    before = snapshot(made)
    preview = services.publish_preview(campaign=made, definition=same, publish={"runs": "exit"})
    assert {name: preview[name] for name in ("version", "next_version", "changed", "live_runs", "workflow_changed",
                                             "publish_required")} == {
        "version": 1, "next_version": 1, "changed": False, "live_runs": 4, "workflow_changed": False,
        "publish_required": False}
    assert update(made, ROUTED, publish={"runs": "exit"}).version == 1
    assert snapshot(made) == before  # no version, no run exited
    # The choice is still checked, by both.
    for call in (lambda: services.publish_preview(campaign=made, definition=same, publish={"runs": "later"}),
                 lambda: update(made, ROUTED, publish={"runs": "later"})):
        with pytest.raises(InvalidFields) as refused:
            call()
        assert [error["field"] for error in refused.value.errors()] == ["publish.runs"]
    # Any other field changed: the next version, as the update then makes it.
    renamed = services.publish_preview(campaign=made, definition={**same, "description": "renamed"})
    assert (renamed["next_version"], renamed["changed"]) == (2, True)
    assert update(made, ROUTED, description="renamed").version == 2
    # Through the API, with the same answer.
    answer = tenant_a.app_client().post(f"/v1/campaigns/{made.pk}/publish_preview",
                                        {**same, "description": "renamed"}, format="json")
    assert answer.status_code == 200, answer.content
    assert {name: answer.json()["preview"][name] for name in ("version", "next_version", "changed")} == {
        "version": 2, "next_version": 2, "changed": False}


# --- the diff --------------------------------------------------------------------------------------------

def test_diff_names_changed_fields_and_steps():
    old = {"name": "Welcome", "description": "", "exit": {"events": []}, "workflow": V1}
    new = {"name": "Welcome 2", "description": "", "exit": {"events": ["left"]},
           "workflow": {"start": "second", "steps": {**V2["steps"], "wait": {**V2["steps"]["wait"], "name": "Pause"}}}}
    assert versions.diff_versions(old, new) == {
        "fields": {"name": {"old": "Welcome", "new": "Welcome 2"},
                   "exit": {"old": {"events": []}, "new": {"events": ["left"]}},
                   "workflow.start": {"old": "wait", "new": "second"}},
        "steps": {"added": ["second"], "removed": ["first"], "changed": {"wait": {
            "duration": {"old": {"days": 1}, "new": {"hours": 1}},
            "name": {"old": None, "new": "Pause"},
            "next": {"old": "first", "new": "second"}}}}}
    assert versions.diff_versions(old, old) == {"fields": {}, "steps": {"added": [], "removed": [], "changed": {}}}


# --- per-version metrics ---------------------------------------------------------------------------------

def test_metrics_per_version(tenant_a, clock):
    ws = tenant_a.workspace
    made = hooked(ws)
    old = enter(made)
    tick()
    made = update(made, V2, publish={"runs": "stay"})
    new = [enter(made), enter(made)]
    tick()
    clock.shift(timedelta(hours=2))
    tick()
    client = tenant_a.app_client()
    url = f"/v1/campaigns/{made.pk}/metrics"
    metrics = client.get(url).json()["metrics"]
    assert metrics["versions"] == {
        "1": {"entered": 1, "live": 1, "completed": 0, "exited": 0, "failed": 0, "converted": 0},
        "2": {"entered": 2, "live": 0, "completed": 0, "exited": 2, "failed": 0, "converted": 0}}
    assert metrics["totals"] == {"entered": 3, "live": 1, "completed": 0, "exited": 2, "failed": 0, "converted": 0}
    assert [step["id"] for step in metrics["steps"]] == ["wait", "second"]

    first = client.get(url, {"version": 1}).json()["metrics"]
    assert first["totals"] == metrics["versions"]["1"] and first["versions"] == metrics["versions"]
    assert [(step["id"], step["entered"], step["waiting"]) for step in first["steps"]] == [("wait", 1, 1),
                                                                                         ("first", 0, 0)]
    second = client.get(url, {"version": 2}).json()["metrics"]
    assert [(step["id"], step["entered"], step["exited"]) for step in second["steps"]] == [("wait", 2, 0),
                                                                                          ("second", 2, 2)]
    assert old.pk not in {run.pk for run in new}
    for bad in ("3", "0", "x", "1" * 40):
        response = client.get(url, {"version": bad})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "version", bad


def page_queries(client, made) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(admin_url(Campaign, "change", made.pk))
    assert page.status_code == 200
    return len(queries), page


def test_the_campaign_page_shows_the_runs_per_version_in_bounded_queries(client, tenant_a):
    ws = tenant_a.workspace
    made = hooked(ws)
    enter(made)
    as_role(client, tenant_a, Role.ANALYST)
    _, page = page_queries(client, made)
    assert page.context["version_metrics"] == [] and 'id="campaign-version-metrics"' not in page.content.decode()

    made = update(made, V2, publish={"runs": "stay"})
    enter(made)
    few, page = page_queries(client, made)
    api = tenant_a.app_client().get(f"/v1/campaigns/{made.pk}/metrics").json()["metrics"]["versions"]
    rows = page.context["version_metrics"]
    assert [(row["number"], row["current"]) for row in rows] == [(1, False), (2, True)]
    names = ("entered", "live", "completed", "exited", "failed", "converted")
    assert {str(row["number"]): {name: row[name] for name in names} for row in rows} == api
    content = page.content.decode()
    assert 'id="campaign-version-metrics"' in content and content.count('class="version-metric-row"') == 2
    # Each version's entered count links to the journey list of that campaign and version.
    listed = client.get(rows[0]["runs_url"])
    assert listed.status_code == 200
    assert {(run.campaign_id, run.version) for run in listed.context["cl"].result_list} == {(made.pk, 1)}

    # More versions, more runs on each (one exited by a publish): the same number of queries.
    for n in (3, 4):
        made = update(made, V1 if n % 2 else V2, publish={"runs": "exit" if n == 4 else "stay"})
        for _ in range(3):
            enter(made)
    many, page = page_queries(client, made)
    assert many == few
    rows = page.context["version_metrics"]
    assert [(row["number"], row["entered"], row["live"], row["exited"]) for row in rows] == [
        (1, 1, 0, 1), (2, 1, 0, 1), (3, 3, 0, 3), (4, 3, 3, 0)]


def test_each_run_shows_its_version_in_the_api_and_the_console(client, tenant_a):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    runs = routed_runs(ws, made)
    update(made, REROUTED, publish={"runs": "move", "removed": {"gone": "landing", "gone2": None}})
    expected = {run.pk: (2 if step != "gone2" else 1) for step, run in runs.items()}
    api = tenant_a.app_client()
    listed = api.get(f"/v1/campaigns/{made.pk}/journeys").json()["journeys"]
    assert {run["id"]: run["version"] for run in listed} == expected
    gone2 = runs["gone2"]
    one = api.get(f"/v1/journeys/{gone2.pk}").json()["journey"]
    assert (one["version"], one["state"], one["exit_reason"]) == (1, "exited", "version_removed_step")
    theirs = api.get("/v1/customers/p-a/journeys").json()["journeys"]
    assert [(run["id"], run["version"]) for run in theirs] == [(runs["keep"].pk, 2)]

    as_role(client, tenant_a, Role.ANALYST)
    journey_list = client.get(admin_url(Journey), {"campaign": made.pk})
    assert "column-version" in journey_list.content.decode()
    assert {run.pk: run.version for run in journey_list.context["cl"].result_list} == expected
    page = client.get(admin_url(Journey, "change", gone2.pk)).content.decode()
    assert re.search(r'field-version.*?<div class="readonly">1</div>', page, re.S)
    person = client.get(reverse("admin:profiles_profile_change", args=[gone2.profile_id])).content.decode()
    assert re.search(r'<tr class="journey-row">.*?<td>1</td>', person, re.S)
    assert "<th>Version</th>" in person


# --- the App API ------------------------------------------------------------------------------------------

def put(client, made, workflow, publish=None, *, envelope=False, **definition):
    body = {"name": made.name, "trigger": HOOK, "workflow": workflow, **definition}
    body = {"campaign": body} if envelope else body
    if publish is not None:
        body["publish"] = publish
    return client.put(f"/v1/campaigns/{made.pk}", body, format="json")


def test_publish_versions_and_diff_through_the_api(tenant_a):
    ws = tenant_a.workspace
    client = tenant_a.app_client()
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    routed_runs(ws, made)
    url = f"/v1/campaigns/{made.pk}"
    before = snapshot(made)
    for publish, field in ((None, "publish"), ({"runs": "move"}, "publish.removed.gone"), ("exit", "publish"),
                           ({"runs": "move", "removed": {"gone": "x", "gone2": None}}, "publish.removed.gone"),
                           ({"runs": "move", "removed": {"gone": "landing", "gone2": None, "typo": "landing"}},
                            "publish.removed.typo")):
        response = put(client, made, REROUTED, publish)
        assert response.status_code == 400 and field in {e["field"] for e in response.json()["errors"]}, publish
    # A publish inside the envelope is not the envelope's: an unknown field of the definition.
    response = client.put(url, {"campaign": {"name": "x", "trigger": HOOK, "workflow": REROUTED,
                                             "publish": {"runs": "exit"}}}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "publish"
    assert snapshot(made) == before

    preview = client.post(f"{url}/publish_preview", {"campaign": {"name": made.name, "trigger": HOOK,
                                                                  "workflow": REROUTED}}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["preview"]["live_runs"] == 4 and snapshot(made) == before
    bad = client.post(f"{url}/publish_preview", {"name": made.name, "trigger": HOOK,
                                                 "workflow": {"start": "x", "steps": {"x": {"type": "delay"}}}},
                      format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "workflow.steps.x.duration"

    moved = put(client, made, REROUTED, {"runs": "move", "removed": {"gone": "landing", "gone2": None}},
                envelope=True)
    assert moved.status_code == 200, moved.content
    assert moved.json()["campaign"]["version"] == 2
    renamed = client.patch(url, {"description": "later"}, format="json")  # the workflow unchanged: no choice
    assert renamed.status_code == 200 and renamed.json()["campaign"]["version"] == 3

    listed = client.get(f"{url}/versions").json()["versions"]
    assert [(v["number"], v["author"], v["current"]) for v in listed] == [
        (3, "API key app", True), (2, "API key app", False), (1, "system", False)]
    assert listed[1]["published"] == {"runs": "move", "removed": {"gone": "landing", "gone2": None},
                                      "affected": {"gone": 1, "gone2": 1, "keep": 1, "retype": 1}}
    assert listed[0]["published"] == {"runs": "stay", "removed": {},
                                      "affected": {"keep": 1, "landing": 1, "retype": 1}}  # (no tick since)
    assert listed[2]["published"] is None and isinstance(listed[0]["created"], int)
    one = client.get(f"{url}/versions/1").json()["version"]
    assert one["number"] == 1 and set(one["definition"]["workflow"]["steps"]) == set(ROUTED["steps"])
    diff = client.get(f"{url}/versions/2/diff").json()["diff"]
    assert (diff["version"], diff["against"], diff["fields"]) == (2, 1, {})
    assert diff["steps"]["added"] == ["landing"] and diff["steps"]["removed"] == ["gone", "gone2"]
    assert set(diff["steps"]["changed"]) == {"route", "retype"}
    assert diff["steps"]["changed"]["retype"]["type"] == {"old": "delay", "new": "branch"}
    back = client.get(f"{url}/versions/3/diff", {"against": 1}).json()["diff"]
    assert back["against"] == 1 and back["fields"] == {"description": {"old": "", "new": "later"}}
    for path, query, status, field in ((f"{url}/versions/1/diff", {}, 400, "against"),
                                       (f"{url}/versions/2/diff", {"against": "x"}, 400, "against"),
                                       (f"{url}/versions/2/diff", {"against": "9"}, 404, None),
                                       (f"{url}/versions/9", {}, 404, None), (f"{url}/versions/0", {}, 404, None),
                                       (f"{url}/versions/{'9' * 30}", {}, 404, None)):
        response = client.get(path, query)
        assert response.status_code == status, (path, query, response.content)
        if field:
            assert response.json()["errors"][0]["field"] == field


def test_another_workspaces_versions_are_not_found_and_scopes_apply(two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = hooked(tenant_b.workspace)
    before = snapshot(theirs)
    client = tenant_a.app_client()
    url = f"/v1/campaigns/{theirs.pk}"
    body = {"name": "Mine", "trigger": HOOK, "workflow": V2}
    answers = [client.get(f"{url}/versions"), client.get(f"{url}/versions/1"), client.get(f"{url}/versions/1/diff",
                                                                                           {"against": 1}),
               client.post(f"{url}/publish_preview", body, format="json"),
               client.get(f"{url}/metrics", {"version": 1}),
               client.put(url, {**body, "publish": {"runs": "exit"}}, format="json")]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert snapshot(theirs) == before

    mine = hooked(tenant_a.workspace)
    url = f"/v1/campaigns/{mine.pk}"
    reader = app_client_with_scopes(tenant_a, "read")
    for path in (f"{url}/versions", f"{url}/versions/1", f"{url}/versions/1/diff?against=1"):
        assert reader.get(path).status_code == 200, path
    # The dry count stores nothing: `read` is enough; without it, a 403.
    assert reader.post(f"{url}/publish_preview", body, format="json").status_code == 200
    assert reader.put(url, {**body, "publish": {"runs": "stay"}}, format="json").status_code == 403
    writer = app_client_with_scopes(tenant_a, "write")
    refused = [writer.get(f"{url}/versions"), writer.get(f"{url}/versions/1"),
               writer.get(f"{url}/versions/1/diff?against=1"),
               writer.post(f"{url}/publish_preview", body, format="json")]
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert len(version_rows(mine)) == 1


# --- the console -----------------------------------------------------------------------------------------

def admin_form(workflow, **extra) -> dict:
    return {**form_data(trigger=HOOK, workflow=workflow), **extra}


def test_the_console_asks_for_the_choice_after_showing_the_dry_count(client, tenant_a):
    ws = tenant_a.workspace
    made = campaign(ws, trigger=HOOK, workflow=ROUTED)
    routed_runs(ws, made)
    before = snapshot(made)
    as_owner(client, tenant_a)
    page = client.get(admin_url(Campaign, "change", made.pk))
    assert 'name="publish_runs"' in page.content.decode() and page.context["publish_preview"] is None

    # No choice: refused, with the runs per step counted and the fingerprint of that count.
    first = client.post(admin_url(Campaign, "change", made.pk), admin_form(REROUTED))
    assert first.status_code == 200
    assert field_errors(first, "publish_runs")[0].startswith("is required: 4 runs are live")
    preview = first.context["publish_preview"]
    assert (preview["live_runs"], preview["next_version"]) == (4, 2)
    assert {row["key"]: row["runs"] for row in preview["steps"] if row["runs"]} == {
        "keep": 1, "gone": 1, "gone2": 1, "retype": 1}
    content = first.content.decode()
    assert 'id="publish-preview"' in content and "<style" not in content and "<script>" not in content
    # A removed step's runs exit only when mapped to null; left unmapped under Move, the save is refused.
    assert "or they exit" not in content and content.count("left unmapped, the save is refused") == 2
    assert "a removed step with runs left out refuses the save" in content
    seen = first.context["adminform"].form.data["publish_seen"]
    assert seen and f'value="{seen}"' in content
    assert snapshot(made) == before

    # A choice given before the count was shown for this workflow: shown first, nothing saved.
    choice = {"publish_runs": "move", "publish_removed": json.dumps({"gone": "landing", "gone2": None})}
    blind = client.post(admin_url(Campaign, "change", made.pk), admin_form(REROUTED, **choice))
    assert blind.status_code == 200 and field_errors(blind, "publish_runs")[0].startswith("Check the runs counted")
    assert snapshot(made) == before
    # A mapping that leaves runs stranded: on its field, with the step named.
    stranded = client.post(admin_url(Campaign, "change", made.pk), admin_form(
        REROUTED, publish_runs="move", publish_removed=json.dumps({"gone": "landing"}), publish_seen=seen))
    assert field_errors(stranded, "publish_removed")[0].startswith("publish.removed.gone2: 1 runs are at this step")
    assert snapshot(made) == before
    typo = client.post(admin_url(Campaign, "change", made.pk), admin_form(
        REROUTED, publish_runs="move", publish_removed=json.dumps({"gone": "landing", "gone2": None, "gnoe": None}),
        publish_seen=seen))
    assert typo.status_code == 200
    assert field_errors(typo, "publish_removed") == [
        "publish.removed.gnoe: is not a step the new workflow removes (nor one where live runs of an older version "
        "are)"]
    assert snapshot(made) == before

    saved = client.post(admin_url(Campaign, "change", made.pk), admin_form(REROUTED, publish_seen=seen, **choice))
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    made.refresh_from_db()
    assert made.version == 2
    (number, _, author, published) = version_rows(made)[-1]
    assert (number, author, published["runs"], published["removed"]) == (2, tenant_a.owner.email, "move",
                                                                          {"gone": "landing", "gone2": None})
    assert set(Journey.unscoped.filter(campaign=made, state="exited").values_list("exit_reason", flat=True)) == {
        "version_removed_step"}

    # The page lists the versions, each after the first with its diff against the one before.
    page = client.get(admin_url(Campaign, "change", made.pk))
    rows = page.context["versions"]
    assert [(row["row"].number, row["current"], row["runs"]) for row in rows] == [(2, True, "move"), (1, False, None)]
    diff_url = reverse("admin:campaigns_campaign_version_diff", args=[made.pk, 2])
    assert rows[0]["diff_url"] == diff_url and diff_url in page.content.decode() and rows[1]["diff_url"] is None
    diff = client.get(diff_url)
    assert diff.status_code == 200
    assert diff.context["added"] == ["landing"] and diff.context["removed"] == ["gone", "gone2"]
    assert [key for key, _ in diff.context["changed"]] == ["retype", "route"]
    assert "<script>" not in diff.content.decode()
    assert client.get(reverse("admin:campaigns_campaign_version_diff", args=[made.pk, 1])).status_code == 404
    assert client.get(reverse("admin:campaigns_campaign_version_diff", args=[made.pk, 3])).status_code == 404


def test_a_draft_or_an_unchanged_workflow_asks_nothing_in_the_console(client, tenant_a):
    ws = tenant_a.workspace
    draft = hooked(ws, activate=False)
    as_owner(client, tenant_a)
    assert 'name="publish_runs"' not in client.get(admin_url(Campaign, "change", draft.pk)).content.decode()
    response = client.post(admin_url(Campaign, "change", draft.pk), admin_form(V2))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.version == 1 and version_rows(draft)[0][2] == tenant_a.owner.email
    live = campaign(ws, trigger=HOOK, workflow=ROUTED, key="live")
    routed_runs(ws, live)
    response = client.post(admin_url(Campaign, "change", live.pk), admin_form(ROUTED, description="renamed",
                                                                              key="live"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    live.refresh_from_db()
    assert live.version == 2 and version_rows(live)[-1][3]["runs"] == "stay"


def test_the_console_counts_the_runs_before_an_exit_or_move_of_an_unchanged_workflow(client, tenant_a):
    """The workflow unchanged, no choice is required; but a choice that acts on the live runs
    (exit, move) is saved only once their count was shown."""
    ws = tenant_a.workspace
    live = campaign(ws, trigger=HOOK, workflow=ROUTED, key="live")
    routed_runs(ws, live)
    before = snapshot(live)
    as_owner(client, tenant_a)
    form = admin_form(ROUTED, description="renamed", key="live", publish_runs="exit")
    first = client.post(admin_url(Campaign, "change", live.pk), form)
    assert first.status_code == 200
    assert field_errors(first, "publish_runs")[0].startswith("Check the runs counted")
    assert first.context["publish_preview"]["live_runs"] == 4 and 'id="publish-preview"' in first.content.decode()
    assert snapshot(live) == before
    seen = first.context["adminform"].form.data["publish_seen"]
    saved = client.post(admin_url(Campaign, "change", live.pk), {**form, "publish_seen": seen})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    live.refresh_from_db()
    assert live.version == 2 and version_rows(live)[-1][3]["runs"] == "exit"
    assert set(Journey.unscoped.filter(campaign=live).values_list("state", "exit_reason")) == {
        ("exited", "version_exit")}


def test_the_console_saves_an_unchanged_definition_at_once_and_leaves_the_runs(client, tenant_a):
    """Nothing changed: the save stores nothing and does nothing to the runs, whatever the choice, so it
    is not held back for a count (and the count, when shown, says so)."""
    ws = tenant_a.workspace
    live = campaign(ws, trigger=HOOK, workflow=ROUTED, key="live")
    routed_runs(ws, live)
    before = snapshot(live)
    as_owner(client, tenant_a)
    saved = client.post(admin_url(Campaign, "change", live.pk), admin_form(ROUTED, key="live", publish_runs="exit"))
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert snapshot(live) == before
    # With another error on the form, the count is shown: no version is made, the runs stay.
    shown = client.post(admin_url(Campaign, "change", live.pk), admin_form(ROUTED, key="live", publish_runs="exit",
                                                                           publish_removed='{"gone": "landing"}'))
    assert shown.status_code == 200
    assert (shown.context["publish_preview"]["changed"], shown.context["publish_preview"]["next_version"]) == (False, 1)
    assert "nothing changed: saving stores nothing, the version stays 1" in shown.content.decode()
    assert snapshot(live) == before


@pytest.mark.parametrize("role, status", [(Role.ANALYST, 200), (Role.MARKETER, 200), (Role.COMPLIANCE, 403)])
def test_the_diff_page_follows_the_role(client, tenant_a, role, status):
    made = hooked(tenant_a.workspace)
    update(made, V2, description="second")
    as_role(client, tenant_a, role)
    assert client.get(reverse("admin:campaigns_campaign_version_diff", args=[made.pk, 2])).status_code == status
    page = client.get(admin_url(Campaign, "change", made.pk))
    if status == 200:
        assert len(page.context["versions"]) == 2
        # Only an editor is asked the publish choice.
        assert ('name="publish_runs"' in page.content.decode()) == (role == Role.MARKETER)


def test_another_workspaces_versions_are_not_found_in_the_console(client, two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = hooked(tenant_b.workspace)
    update(theirs, V2, description="second")
    as_owner(client, tenant_a)
    assert client.get(reverse("admin:campaigns_campaign_version_diff", args=[theirs.pk, 2])).status_code == 404
    before = snapshot(theirs)
    assert client.post(admin_url(Campaign, "change", theirs.pk), admin_form(
        V1, publish_runs="exit")).status_code == 404
    assert snapshot(theirs) == before
