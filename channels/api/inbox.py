"""The in-app inbox API (/inbox/v1/...): what one person's app calls to show that person's
in-app messages and report what they did with them.

Authenticated by an inbox token (channels/inbox_tokens.py) as `Authorization: Bearer <token>`,
minted by the tenant's backend through `POST /v1/customers/{identifier}/inbox_token`. The token
names one person of one workspace: another person's message is a 404, a bad or expired token a
401 JSON error.

    GET  /inbox/v1/messages                      the person's in-app messages, newest first
                                                 (?limit, ?start; dismissed ones with ?include_dismissed=true)
    POST /inbox/v1/messages/{id}/opened          first open moves the status to opened
    POST /inbox/v1/messages/{id}/clicked         {"href"?}; moves the status to clicked
    POST /inbox/v1/messages/{id}/dismissed       hides it from the list (an event, not a status)
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Workspace
from channels import selectors
from channels.api.serializers import inbox_message_json
from channels.feedback import record_delivery_event
from channels.inbox_tokens import InvalidInboxToken, verify
from accounts.api.base import WorkspaceScopedViewMixin
from profiles.api.app_filters import clean_limit, decode_cursor, next_cursor
from profiles.ingest.operations import clean_bool, clean_str, require_dict
from profiles.models import Profile



class InboxPrincipal:
    """`request.user` of the inbox API: the person the token names, and their workspace."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False

    def __init__(self, workspace: Workspace, profile: Profile):
        self.workspace = workspace
        self.profile = profile


class InboxTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Expected `Authorization: Bearer <inbox token>`.")
        try:
            grant = verify(parts[1].decode("ascii", "replace"))
        except InvalidInboxToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        profile = (Profile.objects.for_workspace(grant.workspace_id).select_related("workspace")
                   .filter(cio_id=grant.cio_id).first())
        if profile is None:
            raise exceptions.AuthenticationFailed("the person this token names no longer exists")
        return InboxPrincipal(profile.workspace, profile), None

    def authenticate_header(self, request):
        return 'Bearer realm="inbox"'


class IsInboxPerson(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, InboxPrincipal)


class InboxView(WorkspaceScopedViewMixin, APIView):
    authentication_classes = [InboxTokenAuthentication]
    permission_classes = [IsInboxPerson]
    schema = None  # not part of the App API's OpenAPI document; see docs/messaging-api.md


    @property
    def profile(self) -> Profile:
        return self.request.user.profile


class InboxMessagesView(InboxView):
    def get(self, request):
        params = request.query_params
        limit, after = clean_limit(params.get("limit")), decode_cursor(params.get("start"))
        include_dismissed = clean_bool(params.get("include_dismissed") or "false", "include_dismissed")
        rows = selectors.inbox_messages(self.workspace, self.profile, include_dismissed=include_dismissed,
                                        after=after, limit=limit)
        rows, cursor = next_cursor(rows, limit, lambda row: (row.pk,))
        return Response({"messages": [inbox_message_json(row) for row in rows], "next": cursor})


class InboxMessageActionView(InboxView):
    def post(self, request, delivery_id, action):
        body = require_dict(request.data if request.data is not None else {}, None)
        data = {"source": "inbox"}
        if action == "clicked" and body.get("href") is not None:
            data["href"] = clean_str(body["href"], "href", max_length=2000)
        delivery = selectors.find_inbox_message(self.workspace, self.profile, delivery_id)
        if delivery is None:
            raise NotFound("Message not found.")
        # A repeated open or dismissal records nothing more (apps call them on every render); every
        # click is recorded.
        already = (action == "opened" and delivery.opened_at is not None) or (action == "dismissed" and delivery.dismissed)
        if not already:
            record_delivery_event(delivery, action, data=data)
        delivery = selectors.find_inbox_message(self.workspace, self.profile, delivery_id)
        return Response({"message": inbox_message_json(delivery)})
