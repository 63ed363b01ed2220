import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.models import Membership
from accounts.permissions import has_workspace_perm, workspace_permissions
from accounts.grants import scopes_of_role
from accounts.models import AppScope
from accounts.roles import ROLE_PERMISSIONS, SCOPE_PERMISSIONS, WORKSPACE_PERMISSIONS, Role, permissions_for
from tests.support.factories import UserFactory, make_member

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def doc_table() -> dict[str, frozenset[str]]:
    text = DOC.read_text().split("## API key scopes")[0]
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    header = next(line for line in text.splitlines() if line.startswith("| permission |"))
    roles = [cell.strip() for cell in header.strip("|").split("|")][2:]
    table = {role: set() for role in roles}
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        codename = re.sub(r"`", "", cells[0])
        for role, mark in zip(roles, cells[2:], strict=True):
            if mark == "✓":
                table[role].add(codename)
    return {role: frozenset(perms) for role, perms in table.items()}


def test_docs_table_equals_the_code():
    assert doc_table() == {role.value: perms for role, perms in ROLE_PERMISSIONS.items()}
    assert set().union(*ROLE_PERMISSIONS.values()) == set(WORKSPACE_PERMISSIONS)


def doc_scope_table() -> dict[str, frozenset[str]]:
    """docs/roles.md's "| scope | needs every one of |" table."""
    text = DOC.read_text().split("## Who may grant what")[1]
    lines = text.split("| scope | needs every one of |")[1].split("\n\n")[0].splitlines()
    table = {}
    for line in lines:
        if line.startswith("| `"):
            scope, needs = [cell.strip() for cell in line.strip("|").split("|")]
            table[scope.strip("`")] = frozenset(re.findall(r"`([a-z_]+)`", needs))
    return table


def test_docs_scope_table_equals_the_code():
    assert doc_scope_table() == SCOPE_PERMISSIONS
    assert set(SCOPE_PERMISSIONS) == set(AppScope.values)
    assert set().union(*SCOPE_PERMISSIONS.values()) <= set(WORKSPACE_PERMISSIONS)


def test_the_scopes_each_role_holds():
    """docs/roles.md: owners and admins hold every scope, developers `read`, compliance officers
    `compliance` (they still cannot manage keys), marketers and analysts none."""
    assert {role: scopes_of_role(role) for role in Role.values} == {
        Role.OWNER: {"read", "write", "compliance"}, Role.ADMIN: {"read", "write", "compliance"},
        Role.DEVELOPER: {"read"}, Role.COMPLIANCE: {"compliance"}, Role.MARKETER: set(), Role.ANALYST: set(),
    }


@pytest.mark.parametrize("role", Role.values)
def test_each_role_holds_exactly_its_permissions_through_guardian(tenant_a, tenant_b, role):
    user = make_member(tenant_a.workspace, role)
    assert workspace_permissions(user, tenant_a.workspace) == permissions_for(role)
    assert workspace_permissions(user, tenant_b.workspace) == frozenset()  # nothing elsewhere
    for codename in WORKSPACE_PERMISSIONS:
        assert has_workspace_perm(user, tenant_a.workspace, codename) == (codename in permissions_for(role))


def test_role_change_and_removal_resync_grants(tenant_a):
    user = make_member(tenant_a.workspace, Role.ANALYST)
    membership = Membership.unscoped.get(user=user, workspace=tenant_a.workspace)
    services.change_member_role(membership=membership, role=Role.DEVELOPER)
    assert workspace_permissions(user, tenant_a.workspace) == permissions_for(Role.DEVELOPER)
    services.remove_member(membership=membership)
    assert workspace_permissions(user, tenant_a.workspace) == frozenset()
    assert not Membership.unscoped.filter(pk=membership.pk).exists()


def test_last_owner_cannot_be_removed_or_demoted(tenant_a):
    owner_membership = Membership.unscoped.get(user=tenant_a.owner, workspace=tenant_a.workspace)
    with pytest.raises(ValidationError):
        services.remove_member(membership=owner_membership)
    with pytest.raises(ValidationError):
        services.change_member_role(membership=owner_membership, role=Role.ADMIN)
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER
    second = make_member(tenant_a.workspace, Role.OWNER)
    services.change_member_role(membership=owner_membership, role=Role.ADMIN)  # now allowed
    assert has_workspace_perm(second, tenant_a.workspace, "manage_owners")


def test_only_owners_grant_the_owner_role(tenant_a):
    admin = make_member(tenant_a.workspace, Role.ADMIN)
    newcomer = UserFactory()
    with pytest.raises(PermissionDenied):
        services.add_member(workspace=tenant_a.workspace, email=newcomer.email, role=Role.OWNER, acting_user=admin)
    services.add_member(workspace=tenant_a.workspace, email=newcomer.email, role=Role.MARKETER, acting_user=admin)
    membership = Membership.unscoped.get(user=newcomer)
    with pytest.raises(PermissionDenied):
        services.change_member_role(membership=membership, role=Role.OWNER, acting_user=admin)
    services.change_member_role(membership=membership, role=Role.OWNER, acting_user=tenant_a.owner)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_members_without_manage_members_cannot_manage(tenant_a):
    marketer = make_member(tenant_a.workspace, Role.MARKETER)
    with pytest.raises(PermissionDenied):
        services.add_member(workspace=tenant_a.workspace, email="x@example.test", role=Role.ANALYST,
                            acting_user=marketer)
    assert not Membership.unscoped.filter(user__email="x@example.test").exists()


def test_unknown_role_and_duplicate_member_are_rejected(tenant_a):
    with pytest.raises(ValidationError) as exc:
        services.add_member(workspace=tenant_a.workspace, email="y@example.test", role="god")
    assert "role" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.add_member(workspace=tenant_a.workspace, email=tenant_a.owner.email, role=Role.ANALYST)
    assert "email" in exc.value.message_dict
