"""Login auditing: successful and failed console logins go into the audit log.

Login entries carry no workspace: a user may belong to several, and a login is to the console,
not to one of them. They are therefore not part of any workspace's audit-log export; operators
read them with `AuditEntry.objects.filter(workspace__isnull=True)`.

Connected on import (`dispatch_uid` keeps it to one connection however often it is imported).
"""

from contextlib import contextmanager

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


@receiver(user_login_failed, dispatch_uid="compliance.audit_login_failed", weak=False)
def record_login_failed(sender, credentials, request=None, **kwargs):
    # The attempted username is personal data (and often a mistyped password): never recorded.
    with _outside_any_workspace(), acting_as(Actor(source="admin", remote_addr=_address(request))):
        record_action(target=get_user_model(), action="login_failed", details={"reason": "invalid_credentials"})
