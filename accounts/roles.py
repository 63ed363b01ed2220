"""Membership roles and the workspace permissions each one holds.

Permissions are granted on the Workspace object through django-guardian, so every check is
"may this user do X in this workspace". docs/roles.md shows this table; a test keeps them equal.
"""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    ANALYST = "analyst", "Analyst"
    COMPLIANCE = "compliance", "Compliance"
    DEVELOPER = "developer", "Developer"


# codename -> description; declared as Meta.permissions on Workspace.
WORKSPACE_PERMISSIONS = {
    "view_workspace": "See the workspace and its settings",
    "manage_workspace": "Change workspace settings",
    "view_members": "See members and their roles",
    "manage_members": "Add, remove and change members",
    "manage_owners": "Grant or remove the owner role",
    "view_api_keys": "See API keys (never their secrets)",
    "manage_api_keys": "Create, rotate and revoke API keys",
    "view_people": "See people, events, objects and segments",
    "change_people": "Change people, objects and segments",
    "view_campaigns": "See campaigns, templates, deliveries and inbound messages",
    "change_campaigns": "Change campaigns, templates, broadcasts and subscription topics",
    "view_channels": "See channel configurations",
    "manage_channels": "Change channel configurations and webhooks",
    "view_audit_log": "See and export the audit log and the consent ledger",
    "manage_deletions": "Request deletions, lift deletion suppressions, manage channel suppressions",
    "export_personal_data": "Export a person's data (DSAR)",
}

_ALL = frozenset(WORKSPACE_PERMISSIONS)
_VIEW_ALL = frozenset(p for p in WORKSPACE_PERMISSIONS if p.startswith("view_")) - {"view_audit_log"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL - {"manage_owners"},
    Role.MARKETER: _VIEW_ALL - {"view_api_keys"} | {"change_people", "change_campaigns"},
    Role.ANALYST: _VIEW_ALL - {"view_api_keys"},
    Role.COMPLIANCE: frozenset(
        {"view_workspace", "view_members", "view_people", "view_audit_log",
         "manage_deletions", "export_personal_data"}
    ),
    Role.DEVELOPER: _VIEW_ALL | {"manage_api_keys", "manage_channels"},
}


def permissions_for(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS[Role(role)]


# App API key scope -> the workspace permissions a console user must hold to grant it (create,
# rotate, revoke a key carrying it): every permission the scope reaches through the App API.
# `read` reads the workspace, keys, people, campaigns, deliveries and channels; `write` changes
# all of those, the workspace settings and keys, and channel suppressions; `compliance` exports
# personal data and the audit log and requests deletions. accounts/grants.py applies it;
# docs/roles.md shows it and tests/accounts/test_roles.py keeps the two equal.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"view_workspace", "view_api_keys", "view_people", "view_campaigns", "view_channels"}),
    "write": frozenset({"manage_workspace", "manage_api_keys", "change_people", "change_campaigns",
                        "manage_channels", "manage_deletions"}),
    "compliance": frozenset({"view_audit_log", "export_personal_data", "manage_deletions"}),
}


def scopes_for_permissions(permissions: frozenset[str]) -> frozenset[str]:
    """The App API key scopes a holder of `permissions` holds (and so may grant)."""
    return frozenset(scope for scope, needed in SCOPE_PERMISSIONS.items() if needed <= permissions)
