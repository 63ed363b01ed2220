"""Irreversible console actions ask first (core.admin.confirm_first): the first POST shows what
will happen to which rows and changes nothing; only the confirmed POST acts."""

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import ApiKey, ApiKeyKind
from compliance.deletion import request_deletion, run_deletion
from profiles.models import SuppressedIdentifier


def keys(tenant, n):
    return [services.create_api_key(workspace=tenant.workspace, kind=ApiKeyKind.TRACK, name=f"k{i}")[0] for i in range(n)]


@pytest.mark.parametrize("action", ["revoke_keys", "rotate_keys"])
def test_key_actions_ask_before_acting(client, tenant_a, action):
    chosen = keys(tenant_a, 2)
    client.force_login(tenant_a.owner)
    url = reverse("admin:accounts_apikey_changelist")
    post = {"action": action, "_selected_action": [k.pk for k in chosen], "index": "0"}
    page = client.post(url, post)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert page.context["count"] == 2
    assert {value for name, value in page.context["hidden"] if name == "_selected_action"} == {str(k.pk) for k in chosen}
    assert ApiKey.unscoped.filter(pk__in=[k.pk for k in chosen], revoked_at__isnull=True).count() == 2
    done = client.post(url, {**post, "confirmed": "yes"})
    assert done.status_code == 302
    assert not ApiKey.unscoped.filter(pk__in=[k.pk for k in chosen], revoked_at__isnull=True).exists()


def test_the_confirmation_page_posts_back_what_it_was_given(client, tenant_a):
    [key] = keys(tenant_a, 1)
    client.force_login(tenant_a.owner)
    page = client.post(reverse("admin:accounts_apikey_changelist"),
                       {"action": "revoke_keys", "_selected_action": [key.pk], "index": "0"}).content.decode()
    for field in ('name="action" value="revoke_keys"', f'name="_selected_action" value="{key.pk}"',
                  'name="confirmed" value="yes"', 'name="index" value="0"'):
        assert field in page


def test_lifting_a_suppression_asks_first(client, tenant_a):
    run_deletion(request_deletion(workspace=tenant_a.workspace, identifiers={"email": "gone@example.com"},
                                  source="api"))
    suppression = SuppressedIdentifier.unscoped.filter(workspace=tenant_a.workspace).first()
    client.force_login(tenant_a.owner)
    url = reverse("admin:profiles_suppressedidentifier_changelist")
    post = {"action": "lift", "_selected_action": [suppression.pk], "index": "0"}
    assert "created anew" in client.post(url, post).content.decode()
    suppression.refresh_from_db()
    assert suppression.lifted_at is None
    client.post(url, {**post, "confirmed": "yes"})
    suppression.refresh_from_db()
    assert suppression.lifted_at is not None


def test_another_workspaces_rows_are_never_listed_or_acted_on(client, tenant_a, tenant_b):
    [theirs] = keys(tenant_b, 1)
    client.force_login(tenant_a.owner)
    url = reverse("admin:accounts_apikey_changelist")
    client.post(url, {"action": "revoke_keys", "_selected_action": [theirs.pk], "index": "0", "confirmed": "yes"})
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
