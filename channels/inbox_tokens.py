"""Tokens that let one person's app read that person's in-app inbox (/inbox/v1/...).

A token is a Django signature (SECRET_KEY, its own salt) of {workspace id, cio_id, expiry}: it
names nobody but by Ulak's own ids, cannot be forged or pointed at another person or workspace,
and expires. The App API mints them (`POST /v1/customers/{identifier}/inbox_token`) for the
tenant's backend, which hands them to its app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

SALT = "ulak.inbox.token"
DEFAULT_TTL_SECONDS = 24 * 3600
MAX_TTL_SECONDS = 30 * 24 * 3600


class InvalidInboxToken(Exception):
    pass


@dataclass(frozen=True)
class InboxGrant:
    workspace_id: int
    cio_id: str
    expires_at: int


def mint(workspace, profile, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> tuple[str, int]:
    """(token, expires_at in Unix seconds) for `profile`'s inbox."""
    expires_at = int(time.time()) + ttl_seconds
    token = signing.dumps({"w": workspace.pk, "p": profile.cio_id, "e": expires_at}, salt=SALT, compress=True)
    return token, expires_at


def verify(token: str) -> InboxGrant:
    """The grant a token carries; raises InvalidInboxToken when forged, malformed or expired."""
    try:
        value = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise InvalidInboxToken("the inbox token is not valid") from exc
    try:
        grant = InboxGrant(workspace_id=int(value["w"]), cio_id=str(value["p"]), expires_at=int(value["e"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInboxToken("the inbox token is not valid") from exc
    if grant.expires_at <= time.time():
        raise InvalidInboxToken("the inbox token has expired")
    return grant
