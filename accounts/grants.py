"""Who may grant what: the one rule behind every API key and membership change.

Nobody can hand out more than they hold. A grantor — a console user acting in a workspace, an App
API key, or a management command run with `--actor-email` (the named user's rights apply) — may
create, rotate or revoke only keys whose scopes it holds itself, and may give, change or take
away only roles whose permissions it holds itself. A management command run without
`--actor-email` is the installation's trusted operator and may do anything (`acting_user` and
`acting_key` both None).

What a user "holds" in scopes follows from the workspace permissions of their role
(`accounts.roles.SCOPE_PERMISSIONS`); a key holds its scopes. Track and CDP keys carry no scopes:
any grantor allowed to manage keys at all (`manage_api_keys`, or an App key with `write`) may
create, rotate and revoke them. Keys are never edited: their kind and scopes are fixed at creation.

accounts/services.py calls these checks in every key and membership write, so the admin, the App
API and the management commands all answer to the same rule. A refusal is `GrantRefused`, a
Django `PermissionDenied`: 403 on the API, an error message in the admin, a CommandError in the CLI.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from accounts.models import ApiKey, ApiKeyKind, AppScope, User, Workspace
from accounts.permissions import workspace_permissions
from accounts.roles import Role, permissions_for, scopes_for_permissions


class GrantRefused(PermissionDenied):
    """The grantor may not make this change: it would grant (or take away) more than it holds."""


def _workspace_id(workspace) -> int:
    return getattr(workspace, "pk", workspace)


def _workspace(workspace) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.objects.get(pk=workspace)


def scopes_of_role(role: str) -> frozenset[str]:
    """The App API key scopes a member with `role` holds, and so may grant."""
    return scopes_for_permissions(permissions_for(role))


def _fmt(scopes) -> str:
    return ", ".join(sorted(scopes))


def check_may_manage_key(
    *, workspace, kind: str, scopes, action: str, acting_user: User | None = None,
    acting_key: ApiKey | None = None,
) -> None:
    """May the grantor `action` ("create", "rotate", "revoke") a key of `kind` carrying `scopes`?

    Raises GrantRefused unless the grantor may manage keys of the workspace at all and holds every
    scope of the key.
    """
    if acting_user is not None and acting_key is not None:
        raise ValueError("a key change has one grantor: a user or a key, not both")
    wanted = frozenset(scopes or ()) if kind == ApiKeyKind.APP else frozenset()
    if acting_key is not None:
        if (acting_key.workspace_id != _workspace_id(workspace) or acting_key.kind != ApiKeyKind.APP
                or acting_key.revoked_at is not None or AppScope.WRITE not in acting_key.scopes):
            raise GrantRefused("This API key may not manage the workspace's keys (it needs the write scope).")
        missing = wanted - frozenset(acting_key.scopes)
        if missing:
            raise GrantRefused(f"A key cannot {action} a key with scopes it does not hold itself: {_fmt(missing)}.")
        return
    if acting_user is not None:
        permissions = workspace_permissions(acting_user, _workspace(workspace))
        if "manage_api_keys" not in permissions:
            raise GrantRefused("You may not manage the API keys of this workspace.")
        missing = wanted - scopes_for_permissions(permissions)
        if missing:
            raise GrantRefused(
                f"You cannot {action} a key with scopes your role does not hold: {_fmt(missing)}.")


def check_may_assign_roles(*, workspace, roles, acting_user: User | None = None) -> None:
    """May `acting_user` give or take away each of `roles` in the workspace?

    Needs `manage_members`, and every permission of each role: only an owner grants or removes the
    owner role, and no one grants a role that can do more than they can.
    """
    if acting_user is None:  # the trusted operator: a management command without --actor-email
        return
    permissions = workspace_permissions(acting_user, _workspace(workspace))
    if "manage_members" not in permissions:
        raise GrantRefused("You may not manage members of this workspace.")
    for role in sorted(roles):
        excess = permissions_for(role) - permissions
        if not excess:
            continue
        if role == Role.OWNER:
            raise GrantRefused("Only an owner may grant or remove the owner role.")
        raise GrantRefused(
            f"You cannot grant or remove the {Role(role).label} role: it holds permissions you do not "
            f"({_fmt(excess)}).")


def require_key_scopes(*, api_key: ApiKey, scopes, what: str) -> None:
    """For credentials other services mint for an App API key (e.g. a person's inbox token): the
    key must hold every scope the credential reaches."""
    missing = frozenset(scopes) - frozenset(getattr(api_key, "scopes", ()) or ())
    if missing:
        raise GrantRefused(f"This API key cannot obtain {what}: it needs the scope(s) {_fmt(missing)}.")
