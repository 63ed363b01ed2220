import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Workspace
from accounts.permissions import workspace_permissions
from accounts.roles import Role, permissions_for
from tests.helpers import basic_auth


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_workspace_json_prints_one_object_with_working_keys():
    output = run("create_workspace", "Acme Shop", "--owner-email", "Owner@Example.test", "--password", "s3cret-pass!", "--json")
    data = json.loads(output)  # exactly one JSON object, nothing else
    assert set(data) == {"workspace_id", "site_id", "track_api_key", "app_api_key", "cdp_write_key"}
    workspace = Workspace.objects.get(pk=data["workspace_id"])
    owner = Membership.unscoped.get(workspace=workspace).user
    assert owner.email == "owner@example.test" and owner.check_password("s3cret-pass!")
    assert workspace_permissions(owner, workspace) == permissions_for(Role.OWNER)
    app = ApiKey.unscoped.get(workspace=workspace, kind="app")
    assert sorted(app.scopes) == ["compliance", "read", "write"]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {data['app_api_key']}")
    assert client.get("/v1/workspace").json()["site_id"] == data["site_id"]
    client.credentials(HTTP_AUTHORIZATION=basic_auth(data["site_id"], data["track_api_key"]))
    assert client.get("/api/v1/accounts/region").status_code == 200


@pytest.mark.django_db
def test_create_workspace_rejects_bad_input_and_stores_nothing():
    with pytest.raises(CommandError, match="time_zone"):
        run("create_workspace", "X", "--owner-email", "a@example.test", "--time-zone", "Nowhere/City", "--json")
    assert not Workspace.objects.exists() and not ApiKey.unscoped.exists()


@pytest.mark.django_db
def test_create_workspace_generates_a_password_for_a_new_owner():
    output = run("create_workspace", "Y", "--owner-email", "new@example.test")
    assert "password:" in output and "app_api_key" in output


def test_add_member_and_change_role(tenant_a):
    slug = tenant_a.workspace.slug
    run("add_member", slug, "dev@example.test", "--role", "developer")
    membership = Membership.unscoped.get(user__email="dev@example.test")
    assert membership.role == Role.DEVELOPER
    run("add_member", slug, "dev@example.test", "--role", "analyst")
    membership.refresh_from_db()
    assert membership.role == Role.ANALYST
    with pytest.raises(CommandError):
        run("add_member", "no-such-workspace", "x@example.test", "--role", "analyst")


def test_api_key_command_rotates_and_revokes(tenant_a):
    slug = tenant_a.workspace.slug
    created = json.loads(run("api_key", "create", slug, "--kind", "app", "--name", "ci", "--scope", "read"))
    rotated = json.loads(run("api_key", "rotate", slug, "--key", str(created["id"])))
    assert rotated["revoked"] == created["id"] and rotated["secret"] != created["secret"]
    run("api_key", "revoke", slug, "--key", str(rotated["id"]))
    assert ApiKey.unscoped.get(pk=rotated["id"]).revoked_at is not None
    listing = run("api_key", "list", slug)
    assert "revoked" in listing and created["secret"] not in listing
    with pytest.raises(CommandError):
        run("api_key", "create", slug, "--kind", "app", "--name", "no scopes")
