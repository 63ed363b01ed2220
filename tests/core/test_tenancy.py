import pytest

from accounts.models import ApiKey, Membership
from core.context import NoWorkspaceInScope, current_workspace_or_none, workspace_scope
from tests.support.factories import ProfileFactory
from profiles.models import Profile


def test_default_manager_fails_closed_without_a_workspace(tenant_a):
    ProfileFactory(workspace=tenant_a.workspace)
    with pytest.raises(NoWorkspaceInScope):
        list(Profile.objects.all())
    with pytest.raises(NoWorkspaceInScope):
        Membership.objects.count()


def test_scope_limits_queries_to_its_workspace(two_tenants):
    a, b = two_tenants
    mine = ProfileFactory(workspace=a.workspace)
    theirs = ProfileFactory(workspace=b.workspace)
    with workspace_scope(a.workspace):
        assert list(Profile.objects.values_list("pk", flat=True)) == [mine.pk]
        assert not Profile.objects.filter(pk=theirs.pk).exists()
        assert ApiKey.objects.filter(workspace=b.workspace).count() == 0
    with workspace_scope(b.workspace):
        assert list(Profile.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_scope_is_reset_after_the_block_even_on_error(tenant_a, tenant_b):
    with pytest.raises(RuntimeError):
        with workspace_scope(tenant_a.workspace):
            raise RuntimeError("boom")
    assert current_workspace_or_none() is None
    with workspace_scope(tenant_a.workspace):
        with workspace_scope(tenant_b.workspace):
            assert current_workspace_or_none() == tenant_b.workspace
        assert current_workspace_or_none() == tenant_a.workspace
    assert current_workspace_or_none() is None


def test_unscoped_manager_is_explicit_and_sees_every_workspace(two_tenants):
    a, b = two_tenants
    ProfileFactory(workspace=a.workspace)
    ProfileFactory(workspace=b.workspace)
    assert Profile.unscoped.count() == 2


def test_reverse_relations_follow_the_scope(two_tenants):
    a, b = two_tenants
    profile = ProfileFactory(workspace=a.workspace)
    with workspace_scope(b.workspace):
        # A related manager is built on the scoped manager, so it cannot reach across either.
        assert profile.events.count() == 0
