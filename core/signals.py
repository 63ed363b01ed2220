"""Login auditing: successful and failed console logins go into the audit log.

Login entries carry no workspace: a user may belong to several, and a login is to the console,
not to one of them. They are therefore not part of any workspace's audit-log export; operators
read them with `AuditEntry.objects.filter(workspace__isnull=True)`.

One entry per attempt, never with the name typed (docs/security.md):
- `login`: logged in;
- `login_failed` (`invalid_credentials`): the password was checked and was wrong (or no such
  account); `no_workspace` is recorded by the login form itself;
- `login_locked_out`: answered 429 by the login throttle (django-axes): the failure that reached
  the limit (recorded as `login_failed` too) and every attempt refused while the lock lasts, whose
  password is not even checked.

Connected on import (`dispatch_uid` keeps it to one connection however often it is imported).
"""

from contextlib import contextmanager

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from core.audit import record_action
from core.context import Actor, acting_as, enter_workspace, exit_workspace, request_ip


@contextmanager
def _outside_any_workspace():
    # A login POST by someone already signed in runs inside their session's workspace scope.
    token = enter_workspace(None)
    try:
        yield
    finally:
        exit_workspace(token)


def _address(request) -> str | None:
    return request_ip(request) if request is not None else None


@receiver(user_logged_in, dispatch_uid="compliance.audit_login", weak=False)
def record_login(sender, request, user, **kwargs):
    with _outside_any_workspace(), acting_as(Actor(source="admin", user=user, remote_addr=_address(request))):
        record_action(target=user, action="login")


def _refused_by_throttle(request) -> bool:
    # django-axes' backend flags an attempt it refuses before any password is checked (with
    # AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off); the failure that reaches the limit is
    # flagged only after it was counted, so it still is a `login_failed`, whichever receiver runs first.
    flagged = bool(getattr(request, "axes_locked_out", False))
    return flagged and getattr(request, "axes_failures_since_start", None) is None


@receiver(user_login_failed, dispatch_uid="compliance.audit_login_failed", weak=False)
def record_login_failed(sender, credentials, request=None, **kwargs):
    if _refused_by_throttle(request):
        return  # recorded as `login_locked_out`
    # The attempted username is personal data (and often a mistyped password): never recorded.
    with _outside_any_workspace(), acting_as(Actor(source="admin", remote_addr=_address(request))):
        record_action(target=get_user_model(), action="login_failed", details={"reason": "invalid_credentials"})


@receiver(user_locked_out, dispatch_uid="core.audit_login_locked_out", weak=False)
def record_login_locked_out(sender, request=None, **kwargs):
    # The signal names the attempted username and the address: only the address is kept, as the
    # entry's remote address like every entry's.
    with _outside_any_workspace(), acting_as(Actor(source="admin", remote_addr=_address(request))):
        record_action(target=get_user_model(), action="login_locked_out", details={"reason": "too_many_failures"})
