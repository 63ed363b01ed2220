"""App API /v1/channels: configurations with write-only secrets, provider checks, webhook URLs,
defaults, deletion guarded by use, test sends; isolation, scopes, bad input.
"""

import json

import pytest
from django.test import override_settings

from channels.configs import read_secrets
from channels.deliveries import queue_delivery
from channels.models import ChannelConfig, Delivery
from core.models import AuditEntry
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.helpers import app_client_with_scopes, warm

pytestmark = pytest.mark.django_db

C = "/v1/channels"
SMTP = {"type": "email", "provider": "smtp", "name": "Mail", "sender": "Acme <hello@acme.test>",
        "settings": {"host": "smtp.acme.test", "port": 587, "use_tls": True, "username": "acme"},
        "secrets": {"password": "s3cret-pass"}, "rate_limit_per_second": 10}


def create(client, **overrides):
    response = client.post(C, {**SMTP, **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["channel"]


def test_create_keeps_secrets_write_only_and_encrypted(tenant_a):
    client = tenant_a.app_client()
    channel = create(client)
    assert channel["secrets_set"] == ["password"]
    assert channel["settings"] == SMTP["settings"] and channel["rate_limit_per_second"] == 10
    assert channel["public_id"] and channel["webhook_urls"] == {}
    assert channel["is_default"] is False and channel["active"] is True and channel["tracking_enabled"] is True
    config = ChannelConfig.unscoped.get(pk=channel["id"])
    assert read_secrets(config) == {"password": "s3cret-pass"}
    assert "s3cret-pass" not in config.secrets_encrypted
    for response in (client.get(C), client.get(f"{C}/{config.pk}"), client.get(f"{C}/{config.pk}/")):
        assert response.status_code == 200
        assert b"s3cret-pass" not in response.content and b"password" in response.content
    # The change is in the audit log with its actor (the API key), and the secret is not.
    entries = AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk, object_pk=str(config.pk),
                                        content_type__model="channelconfig")
    assert entries.exists() and all(entry.api_key_id and entry.source == "api" for entry in entries)
    assert "s3cret-pass" not in json.dumps([entry.changes for entry in entries], default=str)


def test_list_is_ordered_and_constant_in_queries(tenant_a, django_assert_max_num_queries):
    client = warm(tenant_a.app_client())
    for index in range(6):
        ChannelConfigFactory(workspace=tenant_a.workspace, name=f"inbox {index}", secrets={"x": "y"})
    create(client)
    with django_assert_max_num_queries(3):
        channels = client.get(C).json()["channels"]
    assert [c["type"] for c in channels] == ["email"] + ["in_app"] * 6
    assert channels[1]["secrets_set"] == ["x"]


@pytest.mark.parametrize("overrides, field", [
    ({"type": "fax"}, "type"),
    ({"type": None}, "type"),
    ({"provider": "twilio"}, "provider"),  # an SMS provider for an email configuration
    ({"provider": "carrier-pigeon"}, "provider"),
    ({"name": ""}, "name"),
    ({"name": "x" * 151}, "name"),
    ({"sender": 5.5}, "sender"),
    ({"settings": ["host"]}, "settings"),
    ({"settings": {"port": 25}}, "settings.host"),  # required by the SMTP provider
    ({"settings": {"host": "h", "colour": "red"}}, "settings.colour"),
    ({"settings": {"host": "h", "port": "twenty-five"}}, "settings.port"),
    ({"secrets": "password"}, "secrets"),
    ({"secrets": {"api_key": "k"}}, "secrets.api_key"),
    ({"rate_limit_per_second": 0}, "rate_limit_per_second"),
    ({"rate_limit_per_second": "10"}, "rate_limit_per_second"),
    ({"tracking_enabled": "yes"}, "tracking_enabled"),
    ({"is_default": 1}, "is_default"),
    ({"active": None}, "active"),
    ({"colour": "red"}, "colour"),
])
def test_create_bad_input_names_the_field(tenant_a, overrides, field):
    response = tenant_a.app_client().post(C, {**SMTP, **overrides}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in [error["field"] for error in body["errors"]] and body["meta"]["error"]
    assert not ChannelConfig.unscoped.exists()


def test_create_refuses_a_body_that_is_not_an_object_and_a_taken_name(tenant_a):
    client = tenant_a.app_client()
    assert client.post(C, ["x"], format="json").status_code == 400
    create(client)
    response = client.post(C, SMTP, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"
    assert ChannelConfig.unscoped.count() == 1


def test_anymail_validation_and_webhook_url(tenant_a, settings):
    settings.ULAK_PUBLIC_URL = "https://ulak.example.com/"
    client = tenant_a.app_client()
    bad = client.post(C, {"type": "email", "provider": "anymail", "name": "ESP", "settings": {"esp": "postmark"}},
                      format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "secrets.server_token"
    channel = create(client, provider="anymail", name="ESP", settings={"esp": "postmark"},
                     secrets={"server_token": "tok", "webhook_secret": "u:p"})
    assert channel["secrets_set"] == ["server_token", "webhook_secret"]
    assert channel["webhook_urls"] == {
        "tracking": f"https://ulak.example.com/hooks/anymail/{channel['public_id']}/postmark/tracking/"}


def test_webhook_urls_name_the_public_id(tenant_a, settings):
    settings.ULAK_PUBLIC_URL = "https://ulak.example.com"
    twilio = ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", name="Twilio")
    whatsapp = ChannelConfigFactory(workspace=tenant_a.workspace, type="whatsapp", provider="whatsapp_cloud",
                                    name="WA")
    client = tenant_a.app_client()
    assert client.get(f"{C}/{twilio.pk}").json()["channel"]["webhook_urls"] == {
        "status_callback": f"https://ulak.example.com/hooks/twilio/{twilio.public_id}/status",
        "inbound": f"https://ulak.example.com/hooks/twilio/{twilio.public_id}/inbound"}
    assert client.get(f"{C}/{whatsapp.pk}").json()["channel"]["webhook_urls"] == {
        "webhook": f"https://ulak.example.com/hooks/whatsapp/{whatsapp.public_id}"}


def test_patch_merges_settings_and_secrets(tenant_a):
    client = tenant_a.app_client()
    channel = create(client)
    url = f"{C}/{channel['id']}"
    response = client.patch(url, {"name": "Mail 2", "settings": {"port": 2525, "use_tls": None},
                                  "secrets": {"password": "new-pass"}, "rate_limit_per_second": None},
                            format="json")
    assert response.status_code == 200, response.content
    updated = response.json()["channel"]
    assert updated["name"] == "Mail 2" and updated["rate_limit_per_second"] is None
    assert updated["settings"] == {"host": "smtp.acme.test", "port": 2525, "username": "acme"}
    config = ChannelConfig.unscoped.get(pk=channel["id"])
    assert read_secrets(config) == {"password": "new-pass"}
    # Only the name changes: settings and secrets stay.
    assert client.patch(url, {"sender": "other@acme.test"}, format="json").status_code == 200
    config.refresh_from_db()
    assert read_secrets(config) == {"password": "new-pass"} and config.sender == "other@acme.test"


def test_stored_credentials_never_follow_a_new_destination(tenant_a):
    # Whoever may change a configuration must not be able to send its stored password to a host of
    # their choosing (and read it there with a test send): a new host needs the password again.
    client = tenant_a.app_client()
    url = f"{C}/{create(client)['id']}"
    response = client.patch(url, {"settings": {"host": "mail.attacker.test"}}, format="json")
    assert response.status_code == 400 and [e["field"] for e in response.json()["errors"]] == ["secrets.password"]
    config = ChannelConfig.unscoped.get(pk=url.rsplit("/", 1)[1])
    assert config.settings["host"] == "smtp.acme.test" and read_secrets(config) == {"password": "s3cret-pass"}
    response = client.patch(url, {"settings": {"port": 2525}}, format="json")  # the port is part of the destination
    assert response.status_code == 400
    response = client.patch(url, {"settings": {"host": "mail2.acme.test"}, "secrets": {"password": "s3cret-pass"}},
                            format="json")
    assert response.status_code == 200, response.content
    config.refresh_from_db()
    assert config.settings["host"] == "mail2.acme.test" and read_secrets(config) == {"password": "s3cret-pass"}


@pytest.mark.parametrize("body, field", [
    ({"type": "sms"}, "type"),
    ({"provider": "anymail"}, "provider"),
    ({"settings": {"host": None}}, "settings.host"),
    ({"secrets": {"password": None}}, "secrets.password"),  # the username still needs it
    ({"secrets": {"token": "x"}}, "secrets.token"),
    ({"name": ""}, "name"),
    ({"active": "no"}, "active"),
])
def test_patch_bad_input_changes_nothing(tenant_a, body, field):
    client = tenant_a.app_client()
    channel = create(client)
    response = client.patch(f"{C}/{channel['id']}", body, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    config = ChannelConfig.unscoped.get(pk=channel["id"])
    assert config.type == "email" and config.provider == "smtp" and config.settings == SMTP["settings"]
    assert read_secrets(config) == {"password": "s3cret-pass"} and config.name == "Mail" and config.active


def test_patch_name_taken(tenant_a):
    client = tenant_a.app_client()
    create(client)
    other = create(client, name="Other")
    response = client.patch(f"{C}/{other['id']}", {"name": "Mail"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"


def test_is_default_moves_between_configurations(tenant_a):
    client = tenant_a.app_client()
    first = create(client, is_default=True)
    second = create(client, name="Second", is_default=True)
    assert second["is_default"] is True
    assert client.get(f"{C}/{first['id']}").json()["channel"]["is_default"] is False
    response = client.patch(f"{C}/{first['id']}", {"is_default": True}, format="json")
    assert response.json()["channel"]["is_default"] is True
    assert client.get(f"{C}/{second['id']}").json()["channel"]["is_default"] is False
    assert client.patch(f"{C}/{first['id']}", {"is_default": False}, format="json").json()["channel"][
        "is_default"] is False


def test_delete_unused_and_refuse_used(tenant_a):
    client = tenant_a.app_client()
    unused = create(client, name="Unused")
    assert client.delete(f"{C}/{unused['id']}").status_code == 204
    assert not ChannelConfig.unscoped.filter(pk=unused["id"]).exists()

    used = ChannelConfigFactory(workspace=tenant_a.workspace, is_default=True)
    person = ProfileFactory(workspace=tenant_a.workspace)
    queue_delivery(tenant_a.workspace, channel="in_app", source="campaign", profile=person, content={"body": "x"})
    response = client.delete(f"{C}/{used.pk}")
    assert response.status_code == 409
    assert "1 deliveries" in response.json()["meta"]["error"] and "active=false" in response.json()["meta"]["error"]
    assert ChannelConfig.unscoped.filter(pk=used.pk).exists()


def test_another_workspace_configuration_is_not_found(two_tenants):
    tenant_a, tenant_b = two_tenants
    config = ChannelConfigFactory(workspace=tenant_a.workspace, name="Mine")
    client = tenant_b.app_client()
    for response in (client.get(f"{C}/{config.pk}"), client.patch(f"{C}/{config.pk}", {"name": "x"}, format="json"),
                     client.delete(f"{C}/{config.pk}"),
                     client.post(f"{C}/{config.pk}/test", {"to": "x"}, format="json"),
                     client.get(f"{C}/99999999999999999999")):
        assert response.status_code == 404, response.content
        assert response.json()["meta"]["error"]
    assert client.get(C).json()["channels"] == []
    config.refresh_from_db()
    assert config.name == "Mine"


def test_scopes(tenant_a):
    reader = app_client_with_scopes(tenant_a, "read")
    assert reader.get(C).status_code == 200
    response = reader.post(C, SMTP, format="json")
    assert response.status_code == 403 and response.json()["meta"]["error"]
    config = ChannelConfigFactory(workspace=tenant_a.workspace)
    assert reader.patch(f"{C}/{config.pk}", {"name": "x"}, format="json").status_code == 403
    assert reader.delete(f"{C}/{config.pk}").status_code == 403
    assert reader.post(f"{C}/{config.pk}/test", {"to": "x"}, format="json").status_code == 403
    writer = app_client_with_scopes(tenant_a, "write")
    assert writer.get(C).status_code == 403
    assert tenant_a.app_client("not-a-key").get(C).status_code in (401, 403)
    assert not ChannelConfig.unscoped.exclude(pk=config.pk).exists()


def test_test_send_queues_a_test_delivery(tenant_a):
    client = tenant_a.app_client()
    channel = create(client, active=False)  # a configuration can be tried before it is switched on
    response = client.post(f"{C}/{channel['id']}/test", {"to": "Ops <OPS@acme.test>", "subject": "Hi"},
                           format="json")
    assert response.status_code == 202, response.content
    delivery = Delivery.unscoped.get(public_id=response.json()["delivery_id"])
    assert delivery.source == "test" and delivery.recipient == "ops@acme.test"
    assert delivery.channel_config_id == channel["id"] and delivery.content["subject"] == "Hi"
    assert "Mail" in delivery.content["body"] and delivery.profile is None
    assert response.json()["queued_at"] == int(delivery.created_at.timestamp())


@pytest.mark.parametrize("body", [{}, {"to": "not-an-email"}, {"to": 5}, {"to": "a@b.test", "colour": 1},
                                  {"to": "a@b.test", "subject": ["x"]}])
def test_test_send_bad_input(tenant_a, body):
    client = tenant_a.app_client()
    channel = create(client)
    response = client.post(f"{C}/{channel['id']}/test", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] in ("to", "colour", "subject")
    assert not Delivery.unscoped.exists()


def test_test_send_in_app_needs_a_known_person(tenant_a):
    config = ChannelConfigFactory(workspace=tenant_a.workspace)
    client = tenant_a.app_client()
    response = client.post(f"{C}/{config.pk}/test", {"to": "nobody"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "to"
    person = ProfileFactory(workspace=tenant_a.workspace)
    response = client.post(f"{C}/{config.pk}/test", {"to": person.cio_id}, format="json")
    assert response.status_code == 202
    assert Delivery.unscoped.get().profile_id == person.pk


@override_settings(ULAK_PUBLIC_URL="http://127.0.0.1:8000")
def test_sms_test_send_normalises_the_number(tenant_a):
    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="sms", provider="twilio", name="SMS")
    client = tenant_a.app_client()
    response = client.post(f"{C}/{config.pk}/test", {"to": "+90 555 123 45 67"}, format="json")
    assert response.status_code == 202, response.content
    assert Delivery.unscoped.get().recipient == "+905551234567"
    assert client.post(f"{C}/{config.pk}/test", {"to": "12"}, format="json").status_code == 400
