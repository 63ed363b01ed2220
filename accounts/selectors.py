"""Reads for accounts. Cross-workspace lookups here are deliberate and use `unscoped`."""

from accounts.models import Membership, Workspace


def memberships_of(user) -> list[Membership]:
    if user is None or not user.is_authenticated:
        return []
    return list(
        Membership.unscoped.filter(user=user).select_related("workspace").order_by("workspace__name")
    )


def workspaces_of(user):
    return Workspace.objects.filter(
        pk__in=Membership.unscoped.filter(user=user).values("workspace_id")
    )
