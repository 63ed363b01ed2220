"""Provider endpoints a channel configuration names (Twilio, WhatsApp, FCM and APNs `base_url`,
FCM's `token_url`, an ESP's `api_url`, an SMTP `host`, an HTTP SMS gateway's `url`) are checked by
the SSRF policy (channels/safe_http.py) when the configuration is saved, through the App API and
the admin, and again at every send."""

import json

import pytest
from django.urls import reverse

from channels.deliveries import queue_delivery
from channels.models import ChannelConfig
from channels.sending import deliver
from core.context import workspace_scope
from tests.helpers import app_client_with_scopes
from tests.support.factories import ChannelConfigFactory, ProfileFactory, make_member

pytestmark = pytest.mark.django_db

C = "/v1/channels"
BLOCKED = ["http://169.254.169.254/latest/meta-data", "http://10.0.0.7/", "http://[::1]:8080/",
           "http://[::ffff:a9fe:a9fe]/", "http://2130706434/", "http://localhost:9000/"]
CONFIGS = {
    # name: (a valid body; the endpoint setting; the other settings it needs)
    "twilio": ({"type": "sms", "provider": "twilio", "name": "SMS", "sender": "+15550001111",
                "secrets": {"auth_token": "t"}}, "base_url", {"account_sid": "AC1"}),
    "whatsapp": ({"type": "whatsapp", "provider": "whatsapp_cloud", "name": "WA",
                  "secrets": {"access_token": "t", "app_secret": "s", "verify_token": "v"}},
                 "base_url", {"phone_number_id": "1"}),
    "fcm": ({"type": "push", "provider": "fcm", "name": "FCM", "secrets": {"service_account": json.dumps(
        {"client_email": "x@y.test", "private_key": "k"})}}, "base_url", {}),
    "fcm_token": ({"type": "push", "provider": "fcm", "name": "FCM", "secrets": {"service_account": json.dumps(
        {"client_email": "x@y.test", "private_key": "k"})}}, "token_url", {}),
    "apns": ({"type": "push", "provider": "apns", "name": "APNs", "secrets": {"private_key": "k"}}, "base_url",
             {"team_id": "T", "key_id": "K", "bundle_id": "b"}),
    "esp": ({"type": "email", "provider": "anymail", "name": "ESP", "sender": "news@acme.test",
             "secrets": {"server_token": "t"}}, "api_url", {"esp": "postmark"}),
    "http_sms": ({"type": "sms", "provider": "http_sms", "name": "Gateway", "sender": "+15550001111"}, "url", {}),
}


@pytest.fixture
def no_allowlist(settings):
    settings.ULAK_SSRF_ALLOWLIST = []  # the tests' loopback fakes are allowed otherwise


def body_with(kind: str, url: str) -> dict:
    body, name, others = CONFIGS[kind]
    return {**body, "settings": {**others, name: url}}


@pytest.mark.parametrize("url", BLOCKED)
@pytest.mark.parametrize("kind", CONFIGS)
def test_a_blocked_endpoint_is_a_400_when_created(tenant_a, no_allowlist, kind, url):
    response = tenant_a.app_client().post(C, body_with(kind, url), format="json")
    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == [f"settings.{CONFIGS[kind][1]}"]
    assert not ChannelConfig.unscoped.exists()


@pytest.mark.parametrize("kind", CONFIGS)
def test_a_public_endpoint_is_saved(tenant_a, kind):
    response = tenant_a.app_client().post(C, body_with(kind, "https://api.provider.example/v1"), format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("url", ["ftp://files.example/", "not a url", "//api.example/"])
def test_an_endpoint_that_is_not_an_http_url_is_a_400(tenant_a, url):
    response = tenant_a.app_client().post(C, body_with("twilio", url), format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "settings.base_url", "message": "Must be an http(s) URL."}]
    response = tenant_a.app_client().post(C, body_with("apns", 5), format="json")
    assert response.json()["errors"] == [{"field": "settings.base_url", "message": "Must be an http(s) URL."}]


def test_an_update_to_a_blocked_endpoint_changes_nothing(tenant_a, no_allowlist):
    client = tenant_a.app_client()
    created = client.post(C, body_with("twilio", "https://api.twilio.example"), format="json").json()["channel"]
    response = client.patch(f"{C}/{created['id']}", {"settings": {"base_url": "http://169.254.169.254/"}},
                            format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "settings.base_url"
    assert ChannelConfig.unscoped.get(pk=created["id"]).settings["base_url"] == "https://api.twilio.example"


def test_another_workspaces_configuration_is_not_found_and_a_reader_may_not_write(two_tenants):
    tenant_a, tenant_b = two_tenants
    theirs = ChannelConfigFactory(workspace=tenant_b.workspace, type="sms", provider="twilio", name="Theirs",
                                  settings={"account_sid": "AC1"})
    response = tenant_a.app_client().patch(f"{C}/{theirs.pk}", {"settings": {"base_url": "http://10.0.0.7/"}},
                                           format="json")
    assert response.status_code == 404
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.post(C, body_with("twilio", "http://10.0.0.7/"), format="json").status_code == 403
    assert ChannelConfig.unscoped.get(pk=theirs.pk).settings == {"account_sid": "AC1"}


def test_the_admin_form_refuses_a_blocked_endpoint(client, tenant_a, no_allowlist):
    client.force_login(tenant_a.owner)
    response = client.post(reverse("admin:channels_channelconfig_add"), {
        "name": "SMS", "type": "sms", "provider": "twilio", "sender": "+15550001111",
        "settings": json.dumps({"account_sid": "AC1", "base_url": "http://169.254.169.254/"}),
        "secrets": json.dumps({"auth_token": "t"}), "rate_limit_per_second": "", "tracking_enabled": "on",
        "active": "on"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "base_url: This URL may not be called" in str(errors["settings"])
    assert not ChannelConfig.unscoped.exists()


def test_the_admin_is_closed_to_roles_without_channel_rights(client, tenant_a):
    client.force_login(make_member(tenant_a.workspace, "analyst"))
    response = client.post(reverse("admin:channels_channelconfig_add"), {"name": "SMS"})
    assert response.status_code == 403


def test_a_blocked_endpoint_saved_before_the_check_still_fails_at_send(tenant_a, no_allowlist):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", name="Old", is_default=True,
                         sender="+15550001111", settings={"account_sid": "AC1", "base_url": "http://169.254.169.254"},
                         secrets={"auth_token": "t"})
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada", phone="+905551112233")
    delivery, _ = queue_delivery(tenant_a.workspace, channel="sms", source="transactional", profile=person,
                                 content={"body": "Hi"})
    with workspace_scope(tenant_a.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    assert outcome.result == "failed" and "not allowed" in delivery.failure_reason
