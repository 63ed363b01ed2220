"""Definition files: what `export` writes and `apply` reads (docs/cli.md).

A campaign file holds the fields POST/PUT /v1/campaigns take (`CAMPAIGN_FIELDS`); a segment file
those of /v1/segments (`SEGMENT_FIELDS`). Export writes them in a fixed order — top-level fields as
listed, workflow steps in reading order from the start step, `type` first in each step, every
other object's keys sorted — so that exporting the same definition twice gives the same bytes and
a review in git shows only what changed.
"""

from __future__ import annotations

import json
import sys

from ulak_cli.client import UsageError

CAMPAIGN_FIELDS = ("key", "name", "description", "type", "trigger", "audience", "re_entry", "exit", "goal",
                   "journey_key", "workflow")
# What GET /v1/campaigns/{id} answers besides the definition; a file made from that answer
# (`ulak campaigns get ID --json`) is accepted, these are dropped (the server drops them too).
CAMPAIGN_READ_ONLY = ("id", "state", "active", "created", "updated", "activated", "stopped", "actions", "version",
                      "webhook_url")
SEGMENT_FIELDS = ("name", "description", "type", "conditions")
SEGMENT_READ_ONLY = ("id", "state", "progress", "member_count", "computed_at")


def read_json(path: str):
    """The JSON of `path` (`-`: standard input)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None


def read_lines(path: str) -> list[str]:
    """One value a line; blank lines and lines starting with # are skipped."""
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _unwrap(data, envelope: str, path: str) -> dict:
    if isinstance(data, dict) and set(data) == {envelope} and isinstance(data[envelope], dict):
        data = data[envelope]
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object (a {envelope} definition)")
    return data


def campaign_file(path: str) -> dict:
    """The definition in a campaign file; it must have a `key` (what `apply` matches on)."""
    data = _unwrap(read_json(path), "campaign", path)
    definition = {name: value for name, value in data.items() if name not in CAMPAIGN_READ_ONLY}
    key = definition.get("key")
    if not isinstance(key, str) or not key.strip():
        raise UsageError(f"{path} has no \"key\": apply finds the campaign to create or update by it; add a stable "
                         "one, e.g. \"key\": \"welcome-series\"")
    return definition


def segment_file(path: str) -> dict:
    """The definition in a segment file; it must have a `name` (what `apply` matches on)."""
    data = _unwrap(read_json(path), "segment", path)
    definition = {name: value for name, value in data.items() if name not in SEGMENT_READ_ONLY}
    # The segments API ignores fields it does not know: a misspelt "condition" would make a manual
    # segment of a data one without a word, so the file is refused here instead.
    unknown = sorted(set(definition) - set(SEGMENT_FIELDS))
    if unknown:
        raise UsageError(f"{path}: unknown field {unknown[0]!r}; a segment file has {', '.join(SEGMENT_FIELDS)}")
    name = definition.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{path} has no \"name\": apply finds the segment to create or update by it")
    return definition


def _sorted(value):
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _step(step):
    if not isinstance(step, dict):
        return step
    first = [key for key in ("type", "name") if key in step]
    return {**{key: _sorted(step[key]) for key in first},
            **{key: _sorted(step[key]) for key in sorted(step) if key not in first}}


def campaign_definition(campaign: dict) -> dict:
    """A campaign of the API's answer → its definition in the file format and order. The steps
    follow the answer's `actions` (reading order from the start step), then any the server did not
    list."""
    definition = {name: campaign.get(name) for name in CAMPAIGN_FIELDS}
    workflow = definition.get("workflow")
    if isinstance(workflow, dict) and isinstance(workflow.get("steps"), dict):
        steps = workflow["steps"]
        order = [action.get("id") for action in campaign.get("actions") or () if isinstance(action, dict)]
        keys = [key for key in order if key in steps] + [key for key in steps if key not in order]
        definition["workflow"] = {"start": workflow.get("start"), "steps": {key: _step(steps[key]) for key in keys}}
    for name in CAMPAIGN_FIELDS:
        if name != "workflow":
            definition[name] = _sorted(definition[name])
    return definition


def segment_definition(segment: dict) -> dict:
    return {name: _sorted(segment.get(name)) for name in SEGMENT_FIELDS}


def dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
