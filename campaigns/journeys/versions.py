"""Versions of a campaign and what a publish does with the runs already in it (docs/journeys.md
"Versions").

Every definition a campaign has had since it was first activated is kept (`CampaignVersion`, with
its author and time); a draft's edits rewrite its one version. When an edit of a campaign that has
been live is published, the editor says what happens to the live runs (`publish`):

- `stay`: they keep their version and finish on its workflow (engine.Advance reads it);
- `move`: they go to the new version, each where it stands when its step key still exists (a step
  whose type changed, or a wait_until step that now waits for something else, is run anew: its wait
  is cleared), else to the step `removed` maps its key to (its wait cleared, due now) or out
  (`removed` maps it to null: exit `version_removed_step`);
- `exit`: they all exit (`version_exit`).

The choice is required when runs are live and the workflow changed. `plan` checks it against the
runs where they are (one GROUP BY, or the locked runs themselves for move and exit); `apply` does it
with one UPDATE of the runs and one INSERT of their step-log rows, as stop_campaign does. The dry
count (`preview_json`) is the same plan, read only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Case, Count, F, JSONField, Q, Value, When

from campaigns.journeys import engine
from campaigns.journeys.definition import DEFINITION_FIELDS, Errors
from campaigns.journeys.selectors import ordered_steps
from campaigns.models import LIVE_JOURNEY_STATES, Campaign, CampaignVersion, Journey, JourneyState, JourneyStep
from core.context import current_actor
from core.errors import InvalidInput

RUN_CHOICES = ("stay", "move", "exit")
UNCHANGED, CHANGED, REMOVED = "unchanged", "changed", "removed"


def author() -> str:
    """Who is publishing: the console user's email, the App API key's name, else the source."""
    actor = current_actor()
    if actor is None:
        return "system"
    if actor.user is not None:
        return actor.user.email[:200]
    if actor.api_key is not None:
        return f"API key {actor.api_key.name}"[:200]
    return actor.source


def record(campaign: Campaign, *, number: int, definition: dict, published: dict | None = None) -> CampaignVersion:
    """Write version `number` of the campaign (a draft's edit rewrites it in place)."""
    row, _ = CampaignVersion.objects.for_workspace(campaign.workspace_id).update_or_create(
        campaign=campaign, number=number,
        defaults={"definition": definition, "author": author(), "published": published or {},
                  "created_at": campaign.updated_at})
    return row


# --- reads ------------------------------------------------------------------------------------------------

def campaign_versions(campaign: Campaign) -> list[CampaignVersion]:
    """Newest first, without their definitions (one query)."""
    return list(CampaignVersion.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign)
                .defer("definition").order_by("-number"))


def find_version(campaign: Campaign, number: int) -> CampaignVersion | None:
    if not 0 < number < 2**31:
        return None
    return CampaignVersion.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign,
                                                                               number=number).first()


def workflows_of(campaign: Campaign, numbers, *, current: dict) -> dict[int, dict]:
    """The workflow of each version number (`current` for the campaign's own number): one query."""
    out = {campaign.version: current}
    others = set(numbers) - {campaign.version}
    if others:
        rows = CampaignVersion.objects.for_workspace(campaign.workspace_id).filter(
            campaign=campaign, number__in=others).values_list("number", "definition")
        out.update({number: (definition or {}).get("workflow") or {} for number, definition in rows})
    return out


def diff_versions(old: dict, new: dict) -> dict:
    """What changed from definition `old` to `new`: top-level fields (and the workflow's start) with
    their old and new values; steps added, removed, and per changed step its fields that changed."""
    names = [*DEFINITION_FIELDS, *sorted(set(old) | set(new) - set(DEFINITION_FIELDS))]
    fields = {name: {"old": old.get(name), "new": new.get(name)} for name in names
              if name != "workflow" and old.get(name) != new.get(name)}
    old_flow, new_flow = old.get("workflow") or {}, new.get("workflow") or {}
    if old_flow.get("start") != new_flow.get("start"):
        fields["workflow.start"] = {"old": old_flow.get("start"), "new": new_flow.get("start")}
    before, after = old_flow.get("steps") or {}, new_flow.get("steps") or {}
    changed = {}
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        if a != b:
            changed[key] = {name: {"old": a.get(name), "new": b.get(name)} for name in sorted(set(a) | set(b))
                            if a.get(name) != b.get(name)}
    return {"fields": fields, "steps": {"added": sorted(set(after) - set(before)),
                                        "removed": sorted(set(before) - set(after)), "changed": changed}}


# --- the plan of a publish ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """Live runs of one version at one step, and how the new workflow treats that step."""

    version: int
    step: str
    runs: int
    change: str  # unchanged, changed, removed
    type_changed: bool  # under move, the run runs the new step anew (its wait cleared)


def waits_alike(old: dict, new: dict) -> bool:
    """Whether a run's wait at step `old` still fits step `new`: the same type and, for wait_until,
    the same thing waited for (a condition, or an event of the same name; the engine resumes a
    condition wait against the step's condition and an event wait against its event)."""
    if old.get("type") != new.get("type"):
        return False
    if new.get("type") == "wait_until":
        return ("event" in old, (old.get("event") or {}).get("name")) == \
            ("event" in new, (new.get("event") or {}).get("name"))
    return True


def change_of(step_key: str, old_steps: dict, new_steps: dict) -> tuple[str, bool]:
    """How the new workflow treats `step_key`, and whether a run there must run the new step anew
    (reported as `type_changed`: its type changed, or a wait_until step waits for something else)."""
    if not step_key:
        return UNCHANGED, False  # a run done with its last step: it completes
    if step_key not in new_steps:
        return REMOVED, False
    old = old_steps.get(step_key)
    if old == new_steps[step_key]:
        return UNCHANGED, False
    return CHANGED, old is None or not waits_alike(old, new_steps[step_key])


@dataclass
class Plan:
    campaign: Campaign
    current_workflow: dict
    new_workflow: dict
    groups: list[Group]
    choice: dict | None
    locked: list[tuple] | None = None  # (pk, seq, version, step) of the live runs, for move and exit
    workflows: dict[int, dict] = field(default_factory=dict)

    @property
    def live(self) -> int:
        return sum(group.runs for group in self.groups)

    @property
    def workflow_changed(self) -> bool:
        return (self.current_workflow or {}) != (self.new_workflow or {})

    def affected(self) -> dict[str, int]:
        counts: Counter = Counter()
        for group in self.groups:
            counts[group.step] += group.runs
        return dict(sorted(counts.items()))


def plan(campaign: Campaign, *, current_workflow: dict, new_workflow: dict, publish, live: bool,
         required: bool, lock: bool = False) -> Plan:
    """The runs the publish acts on and the choice checked against them (InvalidInput/InvalidFields
    naming `publish...`, nothing changed). `live`: read the runs (False for a campaign never
    activated: its version is rewritten, nobody moves). `required`: a missing choice is an error
    when runs are live and the workflow changed. `lock`: for move and exit, lock the live runs and
    group them (the tick skips locked runs, so the counts stay true until the commit)."""
    choice_runs = publish.get("runs") if isinstance(publish, dict) else None
    locked = None
    if not live:
        counts: Counter = Counter()
    elif lock and choice_runs in ("move", "exit"):
        locked = list(_live_runs(campaign).select_for_update().order_by("pk").values_list("pk", "seq", "version",
                                                                                          "step"))
        counts = Counter((version, step) for _, _, version, step in locked)
    else:
        counts = Counter({(version, step): n for version, step, n in _live_runs(campaign).values_list(
            "version", "step").annotate(n=Count("pk")).order_by()})
    workflows = workflows_of(campaign, {version for version, _ in counts}, current=current_workflow)
    new_steps = (new_workflow or {}).get("steps") or {}
    groups = []
    for (version, step), n in sorted(counts.items()):
        old_steps = (workflows.get(version) or current_workflow or {}).get("steps") or {}
        change, type_changed = change_of(step, old_steps, new_steps)
        groups.append(Group(version, step, n, change, type_changed))
    result = Plan(campaign, current_workflow, new_workflow, groups, None, locked, workflows)
    result.choice = clean_choice(publish, result, required=required)
    return result


def _live_runs(campaign: Campaign):
    return Journey.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign,
                                                                       state__in=LIVE_JOURNEY_STATES)


def clean_choice(publish, result: Plan, *, required: bool) -> dict | None:
    """`publish` checked: {"runs": "stay" | "move" | "exit", "removed": {"<old step>": "<new step>" | null}}."""
    if publish is None:
        if required and result.live and result.workflow_changed:
            raise InvalidInput("publish", f"is required: {result.live} runs are live and the workflow changed; say "
                                          "what happens to them: {\"runs\": \"stay\" | \"move\" | \"exit\"} "
                                          "(POST /v1/campaigns/{id}/publish_preview counts them by step)")
        return None
    if not isinstance(publish, dict):
        raise InvalidInput("publish", "must be an object: {\"runs\": \"stay\" | \"move\" | \"exit\", \"removed\": {...}}")
    errors = Errors()
    for key in publish:
        if key not in ("runs", "removed"):
            errors.add(f"publish.{key}", "unknown field; use runs and removed")
    runs = publish.get("runs")
    if runs not in RUN_CHOICES:
        errors.add("publish.runs", "is required: stay, move or exit" if runs is None else "must be stay, move or exit")
    removed = publish.get("removed")
    removed = {} if removed is None else removed
    new_steps = (result.new_workflow or {}).get("steps") or {}
    if not isinstance(removed, dict):
        errors.add("publish.removed", "must be an object: {\"<removed step key>\": \"<new step key>\" | null}")
        removed = {}
    elif removed and runs in ("stay", "exit"):
        errors.add("publish.removed", "maps removed steps for runs: move only")
    else:
        # The steps a mapping may name: the current workflow's that the new one drops, and any other
        # step the new workflow lacks where live runs (of an older version) are.
        removable = set((result.current_workflow or {}).get("steps") or {}) - set(new_steps)
        removable |= {group.step for group in result.groups if group.change == REMOVED}
        for key, target in removed.items():
            if key in new_steps:
                errors.add(f"publish.removed.{key}", "is a step of the new workflow: its runs stay at it")
            elif key not in removable:
                errors.add(f"publish.removed.{key}", "is not a step the new workflow removes (nor one where live "
                                                     "runs of an older version are)")
            elif target is not None and (not isinstance(target, str) or target not in new_steps):
                errors.add(f"publish.removed.{key}", f"names no step of the new workflow: {target!r}")
        if runs == "move":
            stranded: Counter = Counter()
            for group in result.groups:
                if group.change == REMOVED and group.step not in removed:
                    stranded[group.step] += group.runs
            for key, n in sorted(stranded.items()):
                errors.add(f"publish.removed.{key}", f"{n} runs are at this step, which the new workflow removes: "
                                                     "name a step of the new workflow for them, or null (they exit)")
    errors.raise_if_any()
    return {"runs": runs, "removed": dict(removed)}


def preview_json(result: Plan, *, versioned: bool, changed: bool = True) -> dict:
    """The dry count: live runs per step (of the current workflow, in reading order, then any other
    step where runs sit) and what the new workflow does with that step; one row per step, or one
    per kind of change when runs of older versions sit at a step that differs between them.
    `changed`: whether the update changes the definition at all (if not, it stores nothing: no next
    version, and a choice given is not done)."""
    rows: dict[tuple, int] = {}
    for group in result.groups:
        key = (group.step, group.change, group.type_changed)
        rows[key] = rows.get(key, 0) + group.runs
    current_steps = (result.current_workflow or {}).get("steps") or {}
    new_steps = (result.new_workflow or {}).get("steps") or {}
    order = [key for key, _ in ordered_steps(result.current_workflow or {})]
    order += sorted({step for step, _, _ in rows} - set(order))
    steps = []
    for key in order:
        found = [(change, type_changed, n) for (step, change, type_changed), n in rows.items() if step == key]
        if not found:
            change, type_changed = change_of(key, current_steps, new_steps)
            found = [(change, type_changed, 0)]
        steps.extend({"key": key, "runs": n, "change": change, "type_changed": type_changed}
                     for change, type_changed, n in found)
    number = result.campaign.version
    return {"version": number, "next_version": number + 1 if versioned and changed else number, "changed": changed,
            "live_runs": result.live, "workflow_changed": result.workflow_changed,
            "publish_required": bool(versioned and result.live and result.workflow_changed),
            "steps": steps, "added": sorted(set(new_steps) - set(current_steps))}


# --- doing it ---------------------------------------------------------------------------------------------

def apply(result: Plan, *, number: int, now) -> dict:
    """Do the plan's choice to the live runs (`number`: the new version) and answer what to record
    as the version's `published`."""
    affected = result.affected()
    choice = result.choice
    runs = choice["runs"] if choice else ("stay" if affected else None)
    if affected and runs == "exit":
        _exit_all(result, now)
    elif affected and runs == "move":
        _move(result, number, now)
    return {"runs": runs, "removed": choice["removed"] if choice else {}, "affected": affected}


def _log(result: Plan, rows: list[tuple], now) -> None:
    """Step-log rows (journey pk, seq, step, outcome, detail) in one INSERT."""
    campaign = result.campaign
    JourneyStep.objects.for_workspace(campaign.workspace_id).bulk_create([
        JourneyStep(workspace_id=campaign.workspace_id, journey_id=pk, campaign=campaign, seq=seq, step=step or "",
                    type="", outcome=outcome, detail=detail, created_at=now)
        for pk, seq, step, outcome, detail in rows])


def _exit_all(result: Plan, now) -> None:
    _log(result, [(pk, seq + 1, step, "exited", {"reason": "version_exit", "version": version})
                  for pk, seq, version, step in result.locked], now)
    _live_runs(result.campaign).update(state=JourneyState.EXITED, exit_reason="version_exit", ended_at=now,
                                       next_run_at=None, wait={}, seq=F("seq") + 1, updated_at=now)


def _move(result: Plan, number: int, now) -> None:
    """Every live run to version `number`, in one UPDATE whose CASEs follow the (version, step)
    groups: kept where it stands, run anew (type changed), sent to a mapped step, or exited."""
    removed = result.choice["removed"]
    by_group = {(group.version, group.step): group for group in result.groups}
    logs = []
    for pk, seq, version, step in result.locked:
        group = by_group[(version, step)]
        moves = {"from_version": version, "to_version": number}
        if group.change == REMOVED and removed[step] is None:
            logs.append((pk, seq + 1, step, "exited", {"reason": "version_removed_step", "version": version}))
        elif group.change == REMOVED:
            logs.append((pk, seq + 1, step, "moved", {"reason": "version_moved", "to": removed[step], **moves}))
        elif group.type_changed:
            logs.append((pk, seq + 1, step, "moved", {"reason": "version_step_changed", "to": step, **moves}))
    _log(result, logs, now)

    exits = _any(Q(step=key) for key, target in removed.items() if target is None)
    mapped = [(key, target) for key, target in removed.items() if target is not None]
    restarted = _any(Q(version=group.version, step=group.step) for group in result.groups
                     if group.change == CHANGED and group.type_changed)
    moved = _any([*(Q(step=key) for key, _ in mapped), *([restarted] if restarted is not None else [])])
    touched = _any([q for q in (exits, moved) if q is not None])

    def case(name, *whens, default=None):
        """`name` = the first value whose condition holds, else `default` (else unchanged)."""
        whens = [When(condition, then=value) for condition, value in whens if condition is not None]
        default = F(name) if default is None else default
        return Case(*whens, default=default, output_field=Journey._meta.get_field(name)) if whens else default

    _live_runs(result.campaign).update(
        version=case("version", (exits, F("version")), default=Value(number)),
        state=case("state", (exits, Value(JourneyState.EXITED)), (moved, Value(JourneyState.ACTIVE))),
        exit_reason=case("exit_reason", (exits, Value("version_removed_step"))),
        ended_at=case("ended_at", (exits, Value(now))),
        next_run_at=case("next_run_at", (exits, Value(None)), (moved, Value(now))),
        wait=case("wait", (touched, Value({}, output_field=JSONField()))),
        step=case("step", *((Q(step=key), Value(target)) for key, target in mapped)),
        seq=case("seq", (touched, F("seq") + 1)),
        updated_at=now)
    if moved is not None:
        engine.advance_soon()


def _any(conditions) -> Q | None:
    out = None
    for condition in conditions:
        out = condition if out is None else out | condition
    return out
