"""Workspace-level permission checks (django-guardian grants on the Workspace object)."""

from guardian.core import ObjectPermissionChecker

from accounts.roles import WORKSPACE_PERMISSIONS


def workspace_permissions(user, workspace) -> frozenset[str]:
    """The codenames `user` holds on `workspace`; empty for inactive or anonymous users."""
    if workspace is None or user is None or not getattr(user, "is_active", False):
        return frozenset()
    if user.is_superuser:
        return frozenset(WORKSPACE_PERMISSIONS)
    return frozenset(ObjectPermissionChecker(user).get_perms(workspace))


def has_workspace_perm(user, workspace, codename: str) -> bool:
    if codename not in WORKSPACE_PERMISSIONS:
        raise ValueError(f"unknown workspace permission {codename!r}")
    return codename in workspace_permissions(user, workspace)
