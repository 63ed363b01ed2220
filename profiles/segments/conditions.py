"""The segment condition language: validate a JSON tree, compile it to one SQL query, list what it
depends on. See docs/segments.md ("Condition language") for the full grammar and the edge cases.

    validate(tree) -> dict              normalized tree, or InvalidInput naming the bad node's path
    matching(workspace, tree, now=None) -> QuerySet[Profile]   one query, no per-person Python
    evaluate_for(workspace, tree, profile_id) -> bool         one query, for one person
    depends_on(tree) -> set[str]        "attributes", "events:<name>", "objects", "channels",
                                        "topics:<key>", "messages", "segments:<id>", "time"

The branches `and`, `or`, `not` are walked here; every leaf is a registered condition kind
(profiles/segments/registry.py): attribute, event, object and segment (profiles/segments/kinds.py),
channel (channels/conditions.py), message (campaigns/conditions.py).

Semantics in brief (profiles/segments/reference.py is the executable specification the tests
compare against):
- Every leaf is two-valued: a missing key (or JSON null) is "no value"; it satisfies only `neq`,
  `not_exists` (and the negation of anything). Nothing raises at query time: text is turned into a
  number or a time only after a regular expression has vetted it, inside a CASE.
- Numbers: JSON numbers and numeric strings ("42", "-1.5") compare numerically.
- Times: Unix seconds (numbers or numeric strings) or ISO 8601 text (`YYYY-MM-DD`, optional
  `THH:MM[:SS[.f]]`, optional `Z`/`±HH[:MM]`; naive means UTC). Relative dates use UTC.
- `not_performed` with a window matches people with no such event in the window, however young
  they are (nothing is assumed about the time before they were created).
"""

from django.db.models import Q
from django.utils import timezone

from core.context import current_workspace_or_none
from core.errors import InvalidInput
from profiles.models import Profile
from profiles.segments.base import ValidationContext
from profiles.segments.kinds import FEW_PEOPLE
from profiles.segments.registry import condition_kind, condition_kinds

MAX_NODES = 200
MAX_DEPTH = 12


# --- validation ---------------------------------------------------------------------------------

def validate(tree, *, workspace=None) -> dict:
    """Check a condition tree and return it normalized (defaults filled in). Raises InvalidInput
    whose field is the path of the bad node, e.g. `conditions.and.1.event.within.unit`.

    Topic keys and transactional message ids must exist in `workspace` (default: the workspace in
    scope). With no workspace at all only their form is checked; compiling never checks (a topic
    deleted after the segment was saved makes its leaf false, not the recompute fail)."""
    return _normalized(tree, ValidationContext(workspace if workspace is not None else current_workspace_or_none()))


def _normalized(tree, context: ValidationContext) -> dict:
    if not isinstance(tree, dict) or not tree:
        raise InvalidInput("conditions", "a data segment needs a condition tree, e.g. {\"and\": [...]}")
    counter = [0]
    return _node(tree, "conditions", 0, counter, context)


def _one_key_message() -> str:
    names = [kind.name for kind in condition_kinds()]
    listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)
    return f"each condition is an object with exactly one key: and, or, not, {listed}"


def _node(node, path, depth, counter, context):
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise InvalidInput(path, f"too many conditions (at most {MAX_NODES})")
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"conditions nest too deeply (at most {MAX_DEPTH} levels)")
    if not isinstance(node, dict) or len(node) != 1:
        raise InvalidInput(path, _one_key_message())
    (name, body), = node.items()
    sub = f"{path}.{name}"
    if name in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise InvalidInput(sub, f"`{name}` takes a non-empty list of conditions")
        return {name: [_node(child, f"{sub}.{i}", depth + 1, counter, context) for i, child in enumerate(body)]}
    if name == "not":
        return {"not": _node(body, sub, depth + 1, counter, context)}
    kind = condition_kind(name)
    if kind is None:
        renamed = next((kind for kind in condition_kinds() if name in kind.renamed_from), None)
        raise InvalidInput(sub, renamed.renamed_hint if renamed else f"unknown condition `{name}`")
    if not isinstance(body, dict):
        raise InvalidInput(sub, "must be an object")
    return {name: kind.validate(body, sub, context)}


# --- dependencies --------------------------------------------------------------------------------

def depends_on(tree) -> set[str]:
    """What can change the result: attributes, events:<name>, objects, channels, topics:<key>,
    messages, segments:<id>, time."""
    out = set()
    _collect(tree, out)
    return out


def _collect(node, out):
    (name, body), = node.items()
    if name in ("and", "or"):
        for child in body:
            _collect(child, out)
    elif name == "not":
        _collect(body, out)
    else:
        out |= _kind(name).depends_on(body)


def _kind(name):
    """The kind of a leaf of a validated tree."""
    kind = condition_kind(name)
    if kind is None:
        raise InvalidInput("conditions", f"unknown condition `{name}`")
    return kind


# --- compilation ---------------------------------------------------------------------------------

def _compile(workspace, node, now):
    (name, body), = node.items()
    if name in ("and", "or"):
        q = Q() if name == "and" else None
        for child in body:
            part = _compile(workspace, child, now)
            q = part if q is None else (q & part if name == "and" else q | part)
        return q
    if name == "not":
        return ~_compile(workspace, body, now)
    return _kind(name).compile(workspace, body, now)


def to_q(workspace, tree, *, now=None) -> Q:
    """The whole tree as one Q over Profile (the tree is validated first, in form only)."""
    return _compile(workspace, _normalized(tree, ValidationContext()), now or timezone.now())


def matching(workspace, tree, *, now=None, profile_ids=None):
    """The workspace's people the tree matches (among `profile_ids` when given): one SQL query."""
    people = Profile.objects.for_workspace(workspace)
    if profile_ids is None:
        return people.filter(to_q(workspace, tree, now=now))
    token = FEW_PEOPLE.set(True)
    try:
        return people.filter(pk__in=profile_ids).filter(to_q(workspace, tree, now=now))
    finally:
        FEW_PEOPLE.reset(token)


def evaluate_for(workspace, tree, profile_id, *, now=None) -> bool:
    """Whether the workspace's person `profile_id` matches the tree now (or at `now`): one SQL
    query. A person of another workspace never matches."""
    return matching(workspace, tree, now=now, profile_ids=[profile_id]).exists()
