"""The journey canvas's writes and checks (docs/console-journeys.md): the campaign's revision, node
positions, the save with a revision check through `services.update_campaign` (the API's update),
and the check of an edited trigger and workflow without storing anything. The console's endpoints
(campaigns/admin_canvas.py) call these.

Conflicting edits: a save names the **revision** it was based on (the campaign's version number and
a hash of its stored definition); when the stored one differs — someone saved the campaign in
between, through the canvas, the form, the API or `ulak` — it is refused with a 409 and nothing is
stored. The version number alone would not do: a draft's edits rewrite version 1.

Node positions are kept in `Campaign.canvas`, outside the definition: they are saved with the
workflow in the same transaction, and moving a node makes no new version.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math

from django.db import transaction

from campaigns.journeys import services, versions
from campaigns.journeys.definition import MAX_STEPS, STEP_KEY, check_activation, clean_definition
from campaigns.journeys.simulate import simulate
from campaigns.models import Campaign
from core.errors import ApiError, InvalidInput
from profiles.models import Profile

# What the canvas edits; the rest of the definition is kept as stored (the campaign's form edits it).
CANVAS_FIELDS = ("trigger", "workflow")
MAX_COORDINATE = 1_000_000
CONFLICT = ("was changed by someone else since you opened it (version {version}, saved by {author}); reload the "
            "canvas to see the changes: yours were not saved")


def revision_of(campaign: Campaign) -> str:
    """The campaign's version and a hash of its stored definition: any saved change changes it."""
    stored = json.dumps(services.stored_definition(campaign), sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False, default=str)
    return f"{campaign.version}.{hashlib.sha256(stored.encode()).hexdigest()[:24]}"


def _point(value, field: str) -> dict:
    if not isinstance(value, dict) or set(value) != {"x", "y"}:
        raise InvalidInput(field, 'must be {"x": number, "y": number}')
    point = {}
    for axis in ("x", "y"):
        number = value[axis]
        if (isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number)
                or abs(number) > MAX_COORDINATE):
            raise InvalidInput(f"{field}.{axis}", f"must be a number between -{MAX_COORDINATE} and {MAX_COORDINATE}")
        point[axis] = round(float(number), 1)
    return point


def clean_positions(value) -> dict:
    """`{"trigger": {"x", "y"}, "steps": {"<step key>": {"x", "y"}}}` checked (each error naming its path
    under `positions`); null is no positions."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("positions", 'must be {"trigger": {"x", "y"}, "steps": {"<step key>": {"x", "y"}}}')
    for key in value:
        if key not in ("trigger", "steps"):
            raise InvalidInput(f"positions.{key}", "unknown field; use trigger and steps")
    out: dict = {}
    if value.get("trigger") is not None:
        out["trigger"] = _point(value["trigger"], "positions.trigger")
    steps = value.get("steps") or {}
    if not isinstance(steps, dict):
        raise InvalidInput("positions.steps", "must be an object of positions by step key")
    if len(steps) > MAX_STEPS:
        raise InvalidInput("positions.steps", f"at most {MAX_STEPS} steps")
    out["steps"] = {}
    for key, point in steps.items():
        if not STEP_KEY.match(key):
            raise InvalidInput(f"positions.steps.{key}", "a step key is 1 to 64 letters, digits, _ or -")
        out["steps"][key] = _point(point, f"positions.steps.{key}")
    return out


def _edited(campaign: Campaign, changes: dict) -> dict:
    unknown = sorted(set(changes) - set(CANVAS_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field; the canvas saves {' and '.join(CANVAS_FIELDS)}")
    return {**services.stored_definition(campaign), **changes}


@transaction.atomic
def save_canvas(*, campaign: Campaign, revision: str, changes: dict, positions: dict | None,
                publish: dict | None = None) -> Campaign:
    """Save the canvas's trigger and workflow through `services.update_campaign` (the API's update:
    its checks, versions and publish choice) and the node positions, unless the campaign changed
    since `revision` (409, nothing stored). Positions of steps the saved workflow does not have are
    dropped."""
    locked = Campaign.objects.for_workspace(campaign.workspace_id).select_for_update().get(pk=campaign.pk)
    if revision != revision_of(locked):
        saved = versions.find_version(locked, locked.version)
        raise InvalidInput("revision", CONFLICT.format(version=locked.version, author=saved.author if saved else "?"),
                           status=409)
    canvas = clean_positions(positions)
    saved = services.update_campaign(campaign=locked, definition=_edited(locked, changes), publish=publish)
    steps = (saved.workflow or {}).get("steps") or {}
    layout = {"trigger": canvas.get("trigger"), "steps": {key: point for key, point in canvas.get("steps", {}).items()
                                                          if key in steps}}
    if layout["trigger"] is None:
        layout.pop("trigger")
    if layout != saved.canvas:
        saved.canvas = layout
        saved.save(update_fields=["canvas"])
    return saved


def activation_errors(campaign: Campaign) -> list[dict]:
    """What activating the campaign as it is would refuse (a pure read)."""
    try:
        check_activation(campaign)
    except ApiError as exc:
        return exc.errors()
    return []


def check_canvas(*, campaign: Campaign, changes: dict) -> list[dict]:
    """The edited trigger and workflow checked as a save would check them (`definition` errors), then,
    when they pass, as activation would (`activation` errors). Nothing is stored."""
    try:
        values = clean_definition(_edited(campaign, changes), workspace=campaign.workspace)
    except ApiError as exc:
        return [{**error, "kind": "definition"} for error in exc.errors()]
    edited = copy.copy(campaign)
    for name, value in values.items():
        setattr(edited, name, value)
    return [{**error, "kind": "activation"} for error in activation_errors(edited)]


# --- publishing, the diff and the simulation on the canvas --------------------------------------------------

def preview_canvas(*, campaign: Campaign, changes: dict, publish: dict | None = None) -> dict:
    """The dry count of saving the canvas's trigger and workflow (`services.publish_preview`, the
    API's `POST /v1/campaigns/{id}/publish_preview`): the live runs per step and what the new workflow
    does with each, storing nothing. A `publish` given is checked too (its 400s), never required."""
    return services.publish_preview(campaign=campaign, definition=_edited(campaign, changes), publish=publish)


def _version_number(value, field: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise InvalidInput(field, "must be a version number")
    return value


def diff_on_canvas(campaign: Campaign, *, number=None, against=None) -> dict:
    """What changed from version `against` (default: the one before `number`) to version `number`
    (default: the current one): `versions.diff_versions` of their stored definitions, with both
    versions' workflows so the canvas can draw the removed steps. A version the campaign does not
    have is a 404; version 1 without `against`, or a value that is not a number, a 400 naming it."""
    number = campaign.version if number in (None, "") else _version_number(number, "version")
    if against in (None, ""):
        if number == 1:
            raise InvalidInput("against", "version 1 is the first: name a version to compare it with")
        against = number - 1
    else:
        against = _version_number(against, "against")
    rows = {}
    for field, value in (("version", number), ("against", against)):
        row = versions.find_version(campaign, value)
        if row is None:
            raise InvalidInput(field, f"this campaign has no version {value}", status=404)
        rows[value] = row
    new, old = rows[number].definition or {}, rows[against].definition or {}
    return {"version": number, "against": against, **versions.diff_versions(old, new),
            "workflows": {"version": new.get("workflow") or {}, "against": old.get("workflow") or {}}}


MAX_NOTE = 300


def _note(detail: dict) -> str:
    """A step's detail as one short line of JSON (the Simulate page shows it whole)."""
    if not detail:
        return ""
    text = json.dumps(detail, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= MAX_NOTE else f"{text[:MAX_NOTE - 1]}…"


def simulate_on_canvas(*, campaign: Campaign, profile: Profile, event: dict | None, data: dict | None) -> dict:
    """The dry run (`simulate.simulate`: a rolled-back savepoint, nothing written or sent) shaped for
    the canvas: each step the run would take with its outcome, virtual time and a one-line detail;
    each message with its subject and plain text, never its HTML (the Simulate page shows that)."""
    result = simulate(campaign=campaign, profile=profile, event=event, data=data)
    steps = [{"seq": step["seq"], "key": step["key"], "type": step["type"], "at": step["at"],
              "outcome": step["outcome"], "note": _note(step["detail"])} for step in result["steps"]]
    messages = [{"seq": message["seq"], "step": message["step"], "at": message["at"], "variant": message["variant"],
                 "channel": message["channel"], "to": message["to"], "status": message["status"],
                 "reason": message["reason"], "subject": message["subject"],
                 "text": message["text"] if message["channel"] == "email" else message["body"]}
                for message in result["messages"]]
    entry = result["entry"]
    return {"entered": result["entered"], "reason": entry.get("reason", ""), "assumed": entry.get("assumed", []),
            "re_entry": entry.get("re_entry", ""), "steps": steps, "messages": messages, "ended": result["ended"],
            "truncated": result["truncated"]}
