"""The console login throttle (django-axes): failed logins counted per account and per address,
429 while locked (even for the right password), audited without the name typed; an owner clears a
member's lock-out in their own workspace only (docs/security.md)."""

import json
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User
from accounts.roles import Role
from core.models import AuditEntry
from tests.support.factories import make_member

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # UserFactory's
LIMIT = settings.AXES_FAILURE_LIMIT
ATTACKER = "198.51.100.66"


def attempt(client, email, password, address=ATTACKER):
    return client.post("/admin/login/", {"username": email, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address)


def fail(email, times, address=ATTACKER):
    return [attempt(Client(), email, f"wrong-{i}", address).status_code for i in range(times)]


def logs_in(email, address="192.0.2.10") -> bool:
    client = Client()
    response = attempt(client, email, PASSWORD, address)
    return response.status_code == 302 and client.get("/admin/").status_code == 200


def last_entry_id() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def clear_url(membership) -> str:
    return reverse("admin:accounts_membership_clear_login_lockout", args=[membership.pk])


def test_the_settings_default_to_five_failures_and_fifteen_minutes():
    assert (settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME) == (5, timedelta(minutes=15))
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]


def test_thirty_wrong_passwords_lock_the_account_and_even_the_right_one_is_refused(tenant_a):
    email = tenant_a.owner.email
    client = Client()

    codes = [attempt(client, email, f"guess-{i}").status_code for i in range(30)]

    assert codes == [200] * (LIMIT - 1) + [429] * (30 - LIMIT + 1)
    response = attempt(client, email, PASSWORD)
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302  # not logged in
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert email not in page
    assert response["Retry-After"] == "900"
    assert response["Content-Type"].startswith("text/html")


def test_the_account_lock_holds_from_every_address_and_every_spelling(tenant_a):
    email = tenant_a.owner.email
    spellings = [email, email.upper(), f"  {email.title()} "]
    # One failure per address, so no address reaches the limit: the account does.
    codes = [attempt(Client(), spellings[i % len(spellings)], "wrong", f"203.0.113.{i + 1}").status_code
             for i in range(LIMIT)]

    assert codes == [200] * (LIMIT - 1) + [429]
    assert attempt(Client(), email, PASSWORD, "192.0.2.200").status_code == 429
    assert not logs_in(email)


def test_the_address_lock_holds_for_every_account(two_tenants):
    a, b = two_tenants
    for i in range(LIMIT):  # a different (unknown) account each time: no account reaches the limit
        attempt(Client(), f"nobody{i}@example.test", "wrong")

    assert attempt(Client(), b.owner.email, PASSWORD, ATTACKER).status_code == 429
    assert logs_in(a.owner.email, address="192.0.2.11")  # from elsewhere, nothing is locked


def test_without_the_address_rule_only_accounts_are_locked(two_tenants, settings):
    settings.AXES_LOCKOUT_PARAMETERS = ["username"]  # ULAK_LOGIN_LOCK_BY_ADDRESS=0, behind a proxy
    a, b = two_tenants
    for i in range(LIMIT):
        attempt(Client(), f"nobody{i}@example.test", "wrong")

    assert logs_in(b.owner.email, address=ATTACKER)
    assert fail(a.owner.email, LIMIT) == [200] * (LIMIT - 1) + [429]
    assert not logs_in(a.owner.email, address="192.0.2.12")


def test_a_successful_login_from_the_address_resets_no_count(two_tenants):
    victim, attacker = two_tenants[0].owner, two_tenants[1].owner
    fail(victim.email, LIMIT - 1)
    assert logs_in(attacker.email, address=ATTACKER)  # the attacker's own account, same address

    assert fail(victim.email, 1, address="203.0.113.99") == [429]
    assert not logs_in(victim.email)


def test_the_lock_ends_after_the_cool_off(tenant_a):
    email = tenant_a.owner.email
    fail(email, LIMIT)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=14))
    assert not logs_in(email)

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=2))
    assert logs_in(email)


def test_failures_and_lock_outs_are_audited_without_what_was_typed(tenant_a):
    email, typed = tenant_a.owner.email, "Typed-Secret-Qz9"
    before = last_entry_id()

    client = Client()
    codes = [attempt(client, email, typed).status_code for _ in range(LIMIT)]
    codes.append(attempt(client, email, PASSWORD).status_code)  # refused, password not even checked

    assert codes == [200] * (LIMIT - 1) + [429, 429]
    entries = list(AuditEntry.objects.filter(pk__gt=before).order_by("pk"))
    actions = [e.changes["action"] for e in entries]
    # One entry per attempt, and the failure that reached the limit is also a lock-out.
    assert actions.count("login_failed") == LIMIT and actions.count("login_locked_out") == 2
    assert "login" not in actions
    user_type = ContentType.objects.get_for_model(User)
    for entry in entries:
        assert entry.changes in ({"action": "login_failed", "reason": "invalid_credentials"},
                                 {"action": "login_locked_out", "reason": "too_many_failures"})
        assert (entry.content_type, entry.object_pk, entry.actor_id, entry.workspace_id) == (user_type, "", None, None)
        assert (entry.source, entry.remote_addr) == ("admin", ATTACKER)
        stored = json.dumps([entry.changes, entry.object_repr, entry.serialized_data, entry.actor_email,
                             entry.changes_text])
        assert email not in stored and typed not in stored
    # What the throttle itself keeps: the counted name and address, never a password.
    attempt_row = AccessAttempt.objects.get()
    assert attempt_row.username == email.casefold() and attempt_row.failures_since_start == LIMIT
    assert typed not in attempt_row.post_data and PASSWORD not in attempt_row.post_data


def test_a_member_without_a_workspace_is_refused_but_not_counted(db):
    from tests.support.factories import UserFactory

    loner = UserFactory()
    codes = [attempt(Client(), loner.email, PASSWORD).status_code for _ in range(LIMIT + 2)]
    assert codes == [200] * (LIMIT + 2)  # the right password: refused by the form, not a failure


# --- an owner clears a member's lock-out ------------------------------------------------------------


def test_an_owner_clears_the_lock_out_of_a_member_of_their_workspace(tenant_a):
    member = make_member(tenant_a.workspace, Role.MARKETER)
    membership = Membership.unscoped.get(workspace=tenant_a.workspace, user=member)
    fail(member.email, LIMIT, address="192.0.2.10")  # the member mistyped, from their own address
    assert not logs_in(member.email)
    owner = Client()
    owner.force_login(tenant_a.owner)
    page = owner.get(reverse("admin:accounts_membership_change", args=[membership.pk]))
    assert f"Locked out: {LIMIT} failed logins counted" in page.content.decode()
    assert clear_url(membership) in page.content.decode()
    before = last_entry_id()

    response = owner.post(clear_url(membership), REMOTE_ADDR="192.0.2.50")

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:accounts_membership_change", args=[membership.pk])
    assert logs_in(member.email)
    entry = AuditEntry.objects.get(pk__gt=before, changes__action="login_lockout_cleared")
    assert entry.changes == {"action": "login_lockout_cleared", "failures_cleared": LIMIT}
    assert (entry.workspace_id, entry.object_pk) == (tenant_a.workspace.pk, str(membership.pk))
    assert (entry.source, entry.actor_id, entry.remote_addr) == ("admin", tenant_a.owner.pk, "192.0.2.50")
    assert member.email not in json.dumps([entry.changes, entry.object_repr])


def test_an_owner_cannot_clear_a_lock_out_in_another_workspace(two_tenants):
    a, b = two_tenants
    member_of_b = make_member(b.workspace, Role.ANALYST)
    membership = Membership.unscoped.get(workspace=b.workspace, user=member_of_b)
    fail(member_of_b.email, LIMIT)
    owner = Client()
    owner.force_login(a.owner)
    before = last_entry_id()

    assert owner.post(clear_url(membership)).status_code == 404
    assert owner.get(reverse("admin:accounts_membership_change", args=[membership.pk])).status_code == 404

    assert not logs_in(member_of_b.email)
    assert AccessAttempt.objects.filter(username=member_of_b.email).exists()
    assert not AuditEntry.objects.filter(pk__gt=before, changes__action="login_lockout_cleared").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MARKETER])
def test_only_owners_clear_lock_outs(tenant_a, role):
    someone = make_member(tenant_a.workspace, role)
    locked = make_member(tenant_a.workspace, Role.ANALYST)
    membership = Membership.unscoped.get(workspace=tenant_a.workspace, user=locked)
    fail(locked.email, LIMIT)
    client = Client()
    client.force_login(someone)

    assert client.post(clear_url(membership)).status_code == 403
    page = client.get(reverse("admin:accounts_membership_change", args=[membership.pk]))
    assert page.status_code == 200 and clear_url(membership) not in page.content.decode()
    assert not logs_in(locked.email)


def test_clearing_is_a_post_to_a_member_of_the_workspace(tenant_a):
    membership = Membership.unscoped.get(workspace=tenant_a.workspace, user=tenant_a.owner)
    owner = Client()
    owner.force_login(tenant_a.owner)
    before = last_entry_id()

    assert owner.get(clear_url(membership)).status_code == 405
    assert owner.post(clear_url(membership).replace(f"/{membership.pk}/", "/not-a-number/")).status_code == 404
    assert owner.post(clear_url(membership).replace(f"/{membership.pk}/", "/999999/")).status_code == 404
    assert Client().post(clear_url(membership)).status_code == 302  # not logged in: to the login page
    assert not AuditEntry.objects.filter(pk__gt=before, changes__action="login_lockout_cleared").exists()
