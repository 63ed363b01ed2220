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
from campaigns.models import Campaign
from core.errors import ApiError, InvalidInput

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
