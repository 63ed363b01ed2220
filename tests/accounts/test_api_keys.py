import base64

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import services
from accounts.authentication import CdpWriteKeyAuthentication
from accounts.models import ApiKey, ApiKeyKind
from accounts.tokens import hash_secret


from tests.helpers import basic_auth as basic


def track_client(site_id: str, key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic(site_id, key))
    return client


REGION = "/api/v1/accounts/region"


def test_secrets_are_stored_only_as_a_digest(tenant_a):
    secrets = (tenant_a.app_key, tenant_a.track_key, tenant_a.cdp_key)
    rows = ApiKey.unscoped.filter(workspace=tenant_a.workspace)
    assert {row.secret_hash for row in rows} == {hash_secret(s) for s in secrets}
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM accounts_apikey k")
        dump = " ".join(r[0] for r in cursor.fetchall())
    for secret in secrets:
        assert secret not in dump


def test_track_basic_auth(tenant_a, tenant_b):
    ok = track_client(tenant_a.site_id, tenant_a.track_key).get(REGION)
    assert ok.status_code == 200
    assert ok.json()["environment_id"] == tenant_a.workspace.pk
    # the right key under another workspace's site id, a wrong key, an App key: all 401
    for site_id, key in [(tenant_b.site_id, tenant_a.track_key), (tenant_a.site_id, "0" * 40),
                         (tenant_a.site_id, tenant_a.app_key)]:
        response = track_client(site_id, key).get(REGION)
        assert response.status_code == 401
        assert response.json()["meta"]["error"]
        assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("header", ["Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Bearer x y"])
def test_malformed_headers_are_401_with_json(tenant_a, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(REGION).status_code == 401
    assert client.get("/v1/workspace").status_code == 401


def test_missing_credentials_are_401(db):
    assert APIClient().get(REGION).status_code == 401
    response = APIClient().get("/v1/workspace")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_app_bearer_auth_and_wrong_kind(tenant_a):
    assert tenant_a.app_client().get("/v1/workspace").status_code == 200
    assert tenant_a.app_client(tenant_a.cdp_key).get("/v1/workspace").status_code == 401
    assert tenant_a.app_client(tenant_a.track_key).get("/v1/workspace").status_code == 401


def test_revoked_key_stops_working_at_once_despite_the_cache(tenant_a, django_capture_on_commit_callbacks):
    client = tenant_a.app_client()
    assert client.get("/v1/workspace").status_code == 200  # now cached
    key = ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.app_key))
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_api_key(api_key=key)
    assert client.get("/v1/workspace").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_revocation_clears_the_cache_on_commit(tenant_a):
    client = tenant_a.app_client()
    assert client.get("/v1/workspace").status_code == 200
    services.revoke_api_key(api_key=ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.app_key)))
    assert client.get("/v1/workspace").status_code == 401


def test_rotation_issues_a_new_secret_and_revokes_the_old(tenant_a):
    old = ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.track_key))
    new, secret = services.rotate_api_key(api_key=old)
    assert secret != tenant_a.track_key and new.kind == ApiKeyKind.TRACK
    old.refresh_from_db()
    assert old.revoked_at is not None and old.replaced_by_id == new.pk
    assert track_client(tenant_a.site_id, tenant_a.track_key).get(REGION).status_code == 401
    assert track_client(tenant_a.site_id, secret).get(REGION).status_code == 200


def test_last_use_is_recorded(tenant_a):
    key = ApiKey.unscoped.get(secret_hash=hash_secret(tenant_a.app_key))
    assert key.last_used_at is None
    tenant_a.app_client().get("/v1/workspace")
    key.refresh_from_db()
    assert key.last_used_at is not None


def _cdp_request(rf, body=None, auth=None):
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request

    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    django_request = rf.post("/cdp/v1/batch", data=body or {}, content_type="application/json", **headers)
    return Request(django_request, parsers=[JSONParser()])


def test_cdp_write_key_from_basic_auth_or_body(tenant_a, rf):
    auth = CdpWriteKeyAuthentication()
    principal, key = auth.authenticate(_cdp_request(rf, auth=basic(tenant_a.cdp_key, "")))
    assert principal.workspace == tenant_a.workspace and key.kind == ApiKeyKind.CDP
    principal, _ = auth.authenticate(_cdp_request(rf, body={"writeKey": tenant_a.cdp_key, "batch": []}))
    assert principal.workspace == tenant_a.workspace
    assert auth.authenticate(_cdp_request(rf, body={"batch": []})) is None


@pytest.mark.parametrize("body", [{"writeKey": "ulk_cdp_wrong"}, {"writeKey": 12}])
def test_cdp_bad_write_keys_fail(tenant_a, rf, body):
    from rest_framework.exceptions import AuthenticationFailed

    with pytest.raises(AuthenticationFailed):
        CdpWriteKeyAuthentication().authenticate(_cdp_request(rf, body=body))
    with pytest.raises(AuthenticationFailed):
        CdpWriteKeyAuthentication().authenticate(_cdp_request(rf, auth=basic(tenant_a.app_key, "")))
