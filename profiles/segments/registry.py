"""The condition kinds the segment language knows, in registration order.

profiles' own kinds (attribute, event, object, segment) are registered when this module is
imported; higher layers add theirs from their AppConfig.ready(): channels the `channel` kind
(channels/conditions.py), campaigns the `message` kind (campaigns/conditions.py). `and`, `or` and
`not` are built into the tree walks and are not kinds.
"""

from profiles.segments.base import ConditionKind
from profiles.segments.kinds import PROFILE_KINDS

BRANCHES = ("and", "or", "not")

_KINDS: dict[str, ConditionKind] = {}


def register_condition_kind(kind: ConditionKind) -> None:
    """Add `kind` to the language (registering the same kind again changes nothing)."""
    if kind.name in BRANCHES or _KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"a condition kind named {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def unregister_condition_kind(name: str) -> None:
    """Remove a kind (tests that register their own)."""
    del _KINDS[name]


def condition_kind(name: str) -> ConditionKind | None:
    return _KINDS.get(name)


def condition_kinds() -> tuple[ConditionKind, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS.values())


for _kind in PROFILE_KINDS:
    register_condition_kind(_kind)
