"""The admin's workspace: chosen in the session among the user's memberships, never from input."""

import zoneinfo

from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from accounts.permissions import workspace_permissions
from accounts.selectors import memberships_of
from core.context import Actor, acting_as, request_ip, workspace_scope

SESSION_KEY = "ulak_workspace_id"


def select_membership(request, memberships):
    wanted = request.session.get(SESSION_KEY)
    for membership in memberships:
        if membership.workspace_id == wanted:
            return membership
    return memberships[0] if memberships else None


class AdminWorkspaceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.workspace = None
        request.membership = None
        request.memberships = []
        request.workspace_perms = frozenset()
        user = getattr(request, "user", None)
        if not request.path.startswith("/admin/") or user is None or not user.is_authenticated:
            return self.get_response(request)

        request.memberships = memberships_of(user)
        membership = select_membership(request, request.memberships)
        if membership is None:
            return self.get_response(request)
        request.membership = membership
        request.workspace = membership.workspace
        request.workspace_perms = SimpleLazyObject(lambda: workspace_permissions(user, membership.workspace))
        actor = Actor(source="admin", user=user, remote_addr=request_ip(request))
        # The console shows dates and times in the workspace's time zone (and reads typed ones in it).
        timezone.activate(zoneinfo.ZoneInfo(membership.workspace.time_zone))
        try:
            with workspace_scope(membership.workspace), acting_as(actor):
                return self.get_response(request)
        finally:
            timezone.deactivate()
