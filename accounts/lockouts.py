"""Console login lock-outs (docs/security.md): the login throttle (django-axes, config/settings.py)
counts failed logins per account and per client address; an owner may clear the per-account
count of a member of their workspace."""

import unicodedata

from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Membership
from core.audit import record_action


def throttled_username(value: str | None) -> str | None:
    """The name the login throttle counts an attempt under: logins match emails case-insensitively,
    so every spelling of one address shares one count."""
    return unicodedata.normalize("NFKC", value).strip().casefold() if value else None


def counted_login_failures(*, user) -> int:
    """Failed console logins counted against `user`'s account now (within the cool-off)."""
    attempts = AccessAttempt.objects.filter(username=throttled_username(user.email))
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


@transaction.atomic
def clear_login_lockout(*, membership: Membership) -> int:
    """Forget the failed logins counted against the member's account, so its lock-out ends now.

    The attempts go with their share of each address's count (the member's own mistyped attempts
    lock their address too); other accounts' attempts from an address stay, so a locked address may
    still refuse the member until its cool-off ends. Audited in the membership's workspace with the
    number of failures cleared, never the address or the name typed. Returns that number.
    """
    attempts = AccessAttempt.objects.filter(username=throttled_username(membership.user.email))
    failures = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
    attempts.delete()
    record_action(target=membership, action="login_lockout_cleared", workspace=membership.workspace,
                  details={"failures_cleared": failures})
    return failures
