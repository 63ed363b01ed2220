"""What the console's segment builder reads: the schema of the condition kinds, suggested attribute
and event names, and the checked preview of a definition (docs/console-segments.md).

    schema(workspace) -> {"kinds": [...], "branches": [...]}    every registered kind, in order
    attribute_names(workspace, prefix) -> [str]                 bounded sample of the people
    event_names(workspace, prefix) -> [str]                     loose scan of (workspace, name, ...)
    checked(workspace, tree, segment_id=None) -> dict           normalized, or InvalidFields (every leaf)
    preview(workspace, tree, segment_id=None) -> dict           count and example people

The preview evaluates with the language's own code (conditions.validate, conditions.matching), as
the App API's preview does: the count it shows is the one the App API answers.

**Field specs** (what a kind's `describe(workspace)` gives as its "body"; the builder's front end
renders them, so a kind registered later appears without front-end changes):

| spec | value | shown as |
|---|---|---|
| `{"type": "object", "fields": [field...]}` | an object | its fields in a row; `field`: `{"key", "label", "spec", "optional", "group", "default", "omit_when", "suffix"}` — an optional field can be added (with `default`) and removed; adding one removes the other optional fields of its `group`; `omit_when: {"operator": [...]}` leaves the field out while a sibling has one of those values |
| `{"type": "one_of", "options": [{"key", "label", "spec", "default"}]}` | an object with exactly one of the keys | a choice of the key, then its value |
| `{"type": "text", "suggest": "attributes"\\|"events", "max_length", "placeholder"}` | a string | a text input, with names suggested by the endpoint named |
| `{"type": "integer", "min", "max"}` | a whole number | a number input |
| `{"type": "boolean"}` | true/false | a yes/no choice |
| `{"type": "choice", "choices": [{"value", "label"}]}` | one of the values | a select (a value not offered is kept and shown) |
| `{"type": "list", "item": spec, "item_default", "max", "add_label"}` | a list | one row per item, add and remove |
| `{"type": "filter_value", "list": [ops], "integer": [ops]}` | a filter's value | text; a comma-separated list for the `list` operators; a number for the `integer` ones |
| `{"type": "date_range"}` | `[start, end]` | two date-time inputs (ISO 8601) |
| `{"type": "json"}` | anything | raw JSON (kinds without `describe`) |
"""

from django.db import connection

from core.errors import InvalidFields, InvalidInput
from profiles.models import Event, Profile
from profiles.segments import conditions
from profiles.segments.kinds import TEXT_COLUMNS, validating_segment
from profiles.segments.registry import BRANCHES, condition_kinds

PROFILE_FIELDS = [*TEXT_COLUMNS, "unsubscribed", "created_at"]  # the attribute leaf's profile columns
ATTRIBUTE_SAMPLE = 2000  # people whose attribute keys are read for suggestions
SUGGESTIONS = 50
PREVIEW_PEOPLE = 5
MAX_PREFIX = 150
MAX_LEAF_ERRORS = 50


# --- schema ----------------------------------------------------------------------------------------

def schema(workspace) -> dict:
    """Every registered condition kind, in registration order, as the builder edits it."""
    kinds = []
    for kind in condition_kinds():
        if kind.describe is None:
            kinds.append({"name": kind.name, "label": kind.name.replace("_", " ").capitalize(), "help": "",
                          "body": {"type": "json"}, "default": {}})
        else:
            kinds.append({"name": kind.name, **kind.describe(workspace)})
    return {"branches": list(BRANCHES), "kinds": kinds}


# --- suggestions -----------------------------------------------------------------------------------

def clean_prefix(value) -> str:
    value = value or ""
    if len(value) > MAX_PREFIX:
        raise InvalidInput("q", f"must be at most {MAX_PREFIX} characters")
    return value


def attribute_names(workspace, prefix: str = "", limit: int = SUGGESTIONS) -> list[str]:
    """The profile's columns, then the distinct top-level attribute keys of a bounded sample of the
    workspace's people (the first ATTRIBUTE_SAMPLE read through a workspace index), starting with
    `prefix`: one query, whatever the number of people."""
    columns = [name for name in PROFILE_FIELDS if name.startswith(prefix)]
    table = connection.ops.quote_name(Profile._meta.db_table)
    sql = f"""
        SELECT DISTINCT key FROM (
            SELECT attributes FROM {table} WHERE workspace_id = %s AND jsonb_typeof(attributes) = 'object' LIMIT %s
        ) AS sample, jsonb_object_keys(sample.attributes) AS key
        WHERE starts_with(key, %s) ORDER BY key LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, ATTRIBUTE_SAMPLE, prefix, limit + len(PROFILE_FIELDS)])
        keys = [key for (key,) in cursor.fetchall() if key not in PROFILE_FIELDS]
    return (columns + keys)[:limit]


def event_names(workspace, prefix: str = "", limit: int = SUGGESTIONS) -> list[str]:
    """The workspace's distinct event names starting with `prefix`, in order: a loose scan of the
    (workspace, name, -timestamp) index that reads one entry per name and stops after `limit`."""
    table = connection.ops.quote_name(Event._meta.db_table)
    sql = f"""
        WITH RECURSIVE names(name) AS (
            (SELECT name FROM {table} WHERE workspace_id = %s AND name >= %s ORDER BY name LIMIT 1)
            UNION ALL
            SELECT (SELECT e.name FROM {table} e WHERE e.workspace_id = %s AND e.name > names.name
                    ORDER BY e.name LIMIT 1)
            FROM names WHERE names.name IS NOT NULL AND starts_with(names.name, %s)
        )
        SELECT name FROM names WHERE name IS NOT NULL AND starts_with(name, %s) LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, prefix, workspace.pk, prefix, prefix, limit])
        return [name for (name,) in cursor.fetchall()]


# --- checking and preview --------------------------------------------------------------------------

def checked(workspace, tree, *, segment_id: int | None = None) -> dict:
    """The tree normalized (conditions.validate against `workspace`, as the conditions of segment
    `segment_id`, which they may not name). When it is invalid, raises InvalidFields naming every
    leaf that is wrong on its own (each path from `conditions`), besides the first error the
    whole-tree validation met, so the builder can show each on its node."""
    with validating_segment(segment_id):
        try:
            return conditions.validate(tree, workspace=workspace)
        except InvalidInput as exc:
            first = {"field": exc.field, "message": exc.message}
        errors: list[dict] = []
        _leaf_errors(workspace, tree, "conditions", errors, [0])
    if all(error["field"] != first["field"] for error in errors):
        errors.insert(0, first)
    raise InvalidFields(errors)


def _leaf_errors(workspace, node, path, errors, visited, depth=0):
    """Validate each leaf of `node` on its own (and each branch's own shape), collecting every error
    under the path of the node it concerns; at most the language's MAX_NODES nodes are visited."""
    visited[0] += 1
    if len(errors) >= MAX_LEAF_ERRORS or depth > conditions.MAX_DEPTH or visited[0] > conditions.MAX_NODES:
        return
    if isinstance(node, dict) and len(node) == 1:
        (name, body), = node.items()
        if name in ("and", "or") and isinstance(body, list) and body:
            for i, child in enumerate(body):
                _leaf_errors(workspace, child, f"{path}.{name}.{i}", errors, visited, depth + 1)
            return
        if name == "not":
            _leaf_errors(workspace, body, f"{path}.not", errors, visited, depth + 1)
            return
    try:  # a leaf, an empty branch or a node of the wrong shape: the language's own message
        conditions.validate(node, workspace=workspace)
    except InvalidInput as exc:
        field = exc.field or "conditions"
        errors.append({"field": path + field.removeprefix("conditions"), "message": exc.message})


def preview(workspace, tree, *, segment_id: int | None = None, sample: int = PREVIEW_PEOPLE) -> dict:
    """How many of the workspace's people the (checked) tree matches now, and the first `sample`
    of them by id: the App API preview's evaluation (conditions.matching), two queries."""
    normalized = checked(workspace, tree, segment_id=segment_id)
    people = conditions.matching(workspace, normalized)
    shown = list(people.order_by("pk")[:sample])
    count = len(shown) if len(shown) < sample else people.count()
    return {"conditions": normalized, "count": count, "people": shown}
