import pytest

from accounts import services
from accounts.models import ApiKey, ApiKeyKind, AppScope, Workspace
from tests.helpers import app_client_with_scopes


def test_get_workspace_is_the_keys_own(two_tenants):
    a, b = two_tenants
    body = a.app_client().get("/v1/workspace").json()
    assert body["id"] == a.workspace.pk and body["site_id"] == a.site_id
    assert b.app_client().get("/v1/workspace").json()["id"] == b.workspace.pk


def test_patch_workspace_changes_only_allowed_fields(tenant_a):
    response = tenant_a.app_client().patch(
        "/v1/workspace", {"name": "Renamed", "time_zone": "Europe/Istanbul", "slug": "hijack", "id": 999},
        format="json",
    )
    assert response.status_code == 200, response.content
    workspace = Workspace.objects.get(pk=tenant_a.workspace.pk)
    assert (workspace.name, workspace.time_zone) == ("Renamed", "Europe/Istanbul")
    assert workspace.slug == tenant_a.workspace.slug  # read-only fields are ignored


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"time_zone": "Mars/Olympus"}, "time_zone"), ({"event_retention_days": -1}, "event_retention_days"),
     ({"event_retention_days": 0}, "event_retention_days"),
     ({"name": ""}, "name"), ({"event_retention_days": "soon"}, "event_retention_days")],
)
def test_patch_workspace_bad_input_names_the_field_and_changes_nothing(tenant_a, payload, field):
    response = tenant_a.app_client().patch("/v1/workspace", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert field in body["meta"]["error"]
    workspace = Workspace.objects.get(pk=tenant_a.workspace.pk)
    assert (workspace.name, workspace.time_zone, workspace.event_retention_days) == ("Acme", "UTC", 365)


def test_malformed_json_is_a_400_json_error(tenant_a):
    response = tenant_a.app_client().generic("PATCH", "/v1/workspace", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["meta"]["error"]


def test_list_api_keys_is_scoped_paged_and_query_bounded(two_tenants, django_assert_max_num_queries):
    a, b = two_tenants
    for i in range(30):
        services.create_api_key(workspace=a.workspace, kind=ApiKeyKind.CDP, name=f"cdp {i}")
    client = a.app_client()
    client.get("/v1/workspace")  # warm the key cache, as in steady state
    with django_assert_max_num_queries(3):
        body = client.get("/v1/api_keys?limit=20").json()
    assert len(body["results"]) == 20 and body["next"]
    second = client.get(body["next"]).json()
    ids = [k["id"] for k in body["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 33
    b_ids = set(ApiKey.unscoped.filter(workspace=b.workspace).values_list("pk", flat=True))
    assert not b_ids & set(ids)
    assert all("secret" not in k and "secret_hash" not in k for k in body["results"])
    assert {k["kind"] for k in client.get("/v1/api_keys?kind=track").json()["results"]} == {"track"}


def test_another_workspaces_key_is_404(two_tenants):
    a, b = two_tenants
    b_key = ApiKey.unscoped.filter(workspace=b.workspace).first()
    client = a.app_client()
    for method, path in [("get", f"/v1/api_keys/{b_key.pk}"), ("post", f"/v1/api_keys/{b_key.pk}/revoke"),
                         ("post", f"/v1/api_keys/{b_key.pk}/rotate")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert response.json() == {"meta": {"error": "No ApiKey matches the given query."},
                                   "errors": [{"field": None, "message": "No ApiKey matches the given query."}]}
    b_key.refresh_from_db()
    assert b_key.revoked_at is None


def test_create_rotate_revoke_through_the_api(tenant_a):
    client = tenant_a.app_client()
    created = client.post("/v1/api_keys", {"kind": "app", "name": "ci", "scopes": ["read"]}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert tenant_a.app_client(secret).get("/v1/workspace").status_code == 200
    rotated = client.post(f"/v1/api_keys/{created.json()['id']}/rotate").json()
    assert tenant_a.app_client(rotated["secret"]).get("/v1/workspace").status_code == 200
    assert tenant_a.app_client(secret).get("/v1/workspace").status_code == 401
    revoked = client.post(f"/v1/api_keys/{rotated['id']}/revoke").json()
    assert revoked["revoked_at"]
    assert tenant_a.app_client(rotated["secret"]).get("/v1/workspace").status_code == 401


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"kind": "app", "name": "x", "scopes": []}, "scopes"), ({"kind": "app", "name": "x", "scopes": ["root"]}, "scopes.0"),
     ({"kind": "track", "name": "x", "scopes": ["read"]}, "scopes"), ({"kind": "magic", "name": "x"}, "kind"),
     ({"kind": "cdp"}, "name")],
)
def test_create_key_bad_input(tenant_a, payload, field):
    before = ApiKey.unscoped.count()
    response = tenant_a.app_client().post("/v1/api_keys", payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert ApiKey.unscoped.count() == before


def test_scopes_gate_methods_and_cannot_be_escalated(tenant_a):
    reader = app_client_with_scopes(tenant_a, AppScope.READ)
    assert reader.get("/v1/api_keys").status_code == 200
    assert reader.patch("/v1/workspace", {"name": "x"}, format="json").status_code == 403
    writer = app_client_with_scopes(tenant_a, AppScope.WRITE)
    assert writer.get("/v1/workspace").status_code == 403
    response = writer.post("/v1/api_keys", {"kind": "app", "name": "x", "scopes": ["compliance"]}, format="json")
    assert response.status_code == 403
    assert "compliance" in response.json()["meta"]["error"]
