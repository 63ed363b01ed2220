"""Transactional sends (POST /v1/send/<channel>, Customer.io's wire format): what a delivery is
made of, people created or refused, scheduling, idempotency, isolation, scopes, bad input."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.services import create_transactional_message
from channels.models import Delivery, SubscriptionTopic
from compliance.deletion import request_deletion
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from profiles.models import Device, Profile
from tests.helpers import app_client_with_scopes

pytestmark = pytest.mark.django_db

EMAIL = "/v1/send/email"


@pytest.fixture
def configs(tenant_a):
    ws = tenant_a.workspace
    return {
        "email": ChannelConfigFactory(workspace=ws, type="email", provider="smtp", name="Mail", is_default=True,
                                      sender="hello@acme.test", settings={"host": "127.0.0.1"}),
        "sms": ChannelConfigFactory(workspace=ws, type="sms", provider="twilio", name="SMS", sender="+15550001111"),
        "whatsapp": ChannelConfigFactory(workspace=ws, type="whatsapp", provider="whatsapp_cloud", name="WA"),
        "push": ChannelConfigFactory(workspace=ws, type="push", provider="fcm", name="Push"),
        "in_app": ChannelConfigFactory(workspace=ws, type="in_app", provider="inbox", name="Inbox"),
    }


@pytest.fixture
def welcome(tenant_a, configs):
    topic = SubscriptionTopic.unscoped.create(workspace=tenant_a.workspace, key="account", name="Account")
    return create_transactional_message(
        workspace=tenant_a.workspace, name="welcome", channel="email", subject="Hi {{ customer.id }}",
        body="<p>Welcome {{ trigger.plan }}</p>", topic=topic, send_to_unsubscribed=False, tracked=False)


@pytest.fixture
def ada(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", email="ada@example.com",
                          phone="+905551234567")


def send(client, channel, body, **headers):
    return client.post(f"/v1/send/{channel}", body, format="json", **headers)


def ok(response) -> Delivery:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"delivery_id", "queued_at"} and isinstance(body["queued_at"], int)
    return Delivery.unscoped.get(public_id=body["delivery_id"])


def error_fields(response) -> list:
    body = response.json()
    assert body["meta"]["error"]
    return [error["field"] for error in body["errors"]]


def test_send_a_transactional_message_by_id_and_by_name(tenant_a, welcome, ada):
    client = tenant_a.app_client()
    delivery = ok(send(client, "email", {"transactional_message_id": welcome.pk, "identifiers": {"id": "ada"},
                                         "message_data": {"plan": "pro"}, "subject": "Override"}))
    assert delivery.source == "transactional" and delivery.transactional_message_id == welcome.pk
    assert delivery.source_id == str(welcome.pk) and delivery.topic_id == welcome.topic_id
    assert delivery.profile_id == ada.pk and delivery.recipient == "ada@example.com"
    assert delivery.message_data == {"trigger": {"plan": "pro"}}
    assert delivery.content == {"subject": "Override"}  # inline fields override the template's
    assert delivery.send_to_unsubscribed is False and delivery.tracked is False  # the message's own settings
    assert delivery.retain_content is True and delivery.send_at is None and delivery.status == "queued"
    assert delivery.channel_config.name == "Mail"

    by_name = ok(send(client, "email", {"transactional_message_id": "welcome", "identifiers": {"email": "ADA@example.com"},
                                        "to": "Ada Lovelace <ada+1@example.com>", "send_to_unsubscribed": True,
                                        "tracked": True, "disable_message_retention": True}))
    assert by_name.transactional_message_id == welcome.pk and by_name.profile_id == ada.pk
    assert by_name.recipient == "ada+1@example.com"
    assert by_name.send_to_unsubscribed and by_name.tracked and not by_name.retain_content
    assert by_name.message_data == {}


def test_inline_email_creates_the_person_as_customerio_does(tenant_a, configs):
    client = tenant_a.app_client()
    delivery = ok(send(client, "email", {
        "identifiers": {"email": "New@Example.com"}, "from": "Acme <team@acme.test>", "subject": "Hello",
        "body": "<p>Hi</p>", "plaintext_body": "Hi", "reply_to": "help@acme.test", "preheader": "pre",
        "headers": {"X-Campaign": "spring"}, "language": "tr", "body_amp": "<amp/>", "fake_bcc": False,
        "disable_css_preprocessing": True, "queue_draft": False}))
    person = Profile.unscoped.get(workspace=tenant_a.workspace, email="new@example.com")
    assert delivery.profile_id == person.pk and delivery.recipient == "new@example.com"
    assert delivery.content == {"subject": "Hello", "body": "<p>Hi</p>", "body_plain": "Hi",
                                "from": "Acme <team@acme.test>", "reply_to": "help@acme.test", "preheader": "pre",
                                "headers": {"X-Campaign": "spring"}}
    assert delivery.send_to_unsubscribed is True and delivery.transactional_message_id is None  # transactional default

    by_id = ok(send(client, "email", {"identifiers": {"id": 42}, "to": "x@example.com", "subject": "S", "body": "B",
                                      "body_plain": "plain"}))
    assert Profile.unscoped.get(workspace=tenant_a.workspace, external_id="42").pk == by_id.profile_id
    assert by_id.content["body_plain"] == "plain"


def test_cio_id_must_name_an_existing_person(tenant_a, configs, ada):
    client = tenant_a.app_client()
    response = send(client, "email", {"identifiers": {"cio_id": "nobody"}, "subject": "S", "body": "B",
                                      "to": "x@example.com"})
    assert response.status_code == 400 and error_fields(response) == ["identifiers.cio_id"]
    assert Profile.unscoped.count() == 1
    assert ok(send(client, "email", {"identifiers": {"cio_id": ada.cio_id}, "subject": "S", "body": "B"})).profile_id \
        == ada.pk


def test_person_without_an_address_needs_to(tenant_a, configs):
    ProfileFactory(workspace=tenant_a.workspace, external_id="noemail", email=None)
    response = send(tenant_a.app_client(), "email", {"identifiers": {"id": "noemail"}, "subject": "S", "body": "B"})
    assert response.status_code == 400 and error_fields(response) == ["to"]
    assert "no email address" in response.json()["meta"]["error"]
    # A person created for the send is not kept when the send is refused.
    response = send(tenant_a.app_client(), "email", {"identifiers": {"id": "fresh"}, "subject": "S", "body": "B"})
    assert response.status_code == 400 and error_fields(response) == ["to"]
    assert not Delivery.unscoped.exists() and not Profile.unscoped.filter(external_id="fresh").exists()


def test_message_of_another_channel_names_transactional_message_id(tenant_a, welcome, ada):
    response = send(tenant_a.app_client(), "sms", {"transactional_message_id": welcome.pk, "identifiers": {"id": "ada"}})
    assert response.status_code == 400 and error_fields(response) == ["transactional_message_id"]
    assert "/v1/send/email" in response.json()["meta"]["error"]
    assert not Delivery.unscoped.exists()


def test_another_workspace_message_is_unknown(two_tenants, welcome):
    tenant_a, tenant_b = two_tenants
    ChannelConfigFactory(workspace=tenant_b.workspace, type="email", provider="smtp", name="B")
    for ref in (welcome.pk, "welcome"):
        response = send(tenant_b.app_client(), "email", {"transactional_message_id": ref, "identifiers": {"id": "x"}})
        assert response.status_code == 400 and error_fields(response) == ["transactional_message_id"]
    assert not Delivery.unscoped.exists() and not Profile.unscoped.filter(workspace=tenant_b.workspace).exists()


@pytest.mark.parametrize("body, field", [
    ({}, "identifiers"),
    ({"identifiers": "ada"}, "identifiers"),
    ({"identifiers": {}}, "identifiers"),
    ({"identifiers": {"id": "a", "email": "a@example.com"}}, "identifiers"),
    ({"identifiers": {"email": "not-an-email"}}, "identifiers.email"),
    ({"identifiers": {"phone": "+905551234567"}}, "identifiers"),
    ({"transactional_message_id": True}, "transactional_message_id"),
    ({"transactional_message_id": 0}, "transactional_message_id"),
    ({"transactional_message_id": ["x"]}, "transactional_message_id"),
    ({"transactional_message_id": "nope"}, "transactional_message_id"),
    ({"subject": None}, "subject"),  # inline content needs a subject...
    ({"body": ""}, "body"),  # ...and a body
    ({"subject": ["s"]}, "subject"),
    ({"subject": "two\nlines"}, "subject"),
    ({"to": "a@example.com, b@example.com"}, "to"),
    ({"to": "nope"}, "to"),
    ({"from": "nope"}, "from"),
    ({"from": "a@example.com\nBcc: x@example.com"}, "from"),
    ({"reply_to": 5}, "reply_to"),
    ({"headers": ["X-A"]}, "headers"),
    ({"headers": {"X-A": "1\r\nBcc: evil@example.com"}}, "headers.X-A"),
    ({"headers": {"Bad Name": "1"}}, "headers.Bad Name"),
    ({"headers": {"Subject": "other"}}, "headers.Subject"),
    ({"headers": {"X-A": 1}}, "headers.X-A"),
    ({"message_data": ["x"]}, "message_data"),
    ({"send_at": "tomorrow"}, "send_at"),
    ({"send_at": -5}, "send_at"),
    ({"send_at": 1e20}, "send_at"),
    ({"disable_message_retention": "yes"}, "disable_message_retention"),
    ({"send_to_unsubscribed": 1}, "send_to_unsubscribed"),
    ({"tracked": "no"}, "tracked"),
    ({"queue_draft": True}, "queue_draft"),
    ({"queue_draft": "maybe"}, "queue_draft"),
    ({"cc": ["x@example.com"]}, "cc"),
    ({"bcc": "nope"}, "bcc"),
    ({"bcc": "a@example.com, nope"}, "bcc"),
    ({"bcc": "a@example.com; b@example.com"}, "bcc"),
    ({"bcc": "a@example.com\nX-Evil: 1"}, "bcc"),
    ({"bcc": 5}, "bcc"),
    ({"bcc": ",".join(f"p{i}@example.com" for i in range(15))}, "bcc"),
    ({"attachments": ["a.txt"]}, "attachments"),
    ({"attachments": {"a.txt": "not base64!"}}, "attachments.a.txt"),
    ({"attachments": {"a.txt": "aGk"}}, "attachments.a.txt"),  # bad padding
    ({"attachments": {"a.txt": ""}}, "attachments.a.txt"),
    ({"attachments": {"a.txt": 5}}, "attachments.a.txt"),
    ({"attachments": {"../etc/passwd": "aGk="}}, "attachments.../etc/passwd"),
    ({"attachments": {"a\r\nb.txt": "aGk="}}, "attachments.a\r\nb.txt"),
    ({"attachments": {"a\"b.txt": "aGk="}}, "attachments.a\"b.txt"),
    ({"attachments": {" ": "aGk="}}, "attachments. "),
    ({"attachments": {"x" * 256: "aGk="}}, "attachments." + "x" * 256),
    ({"attachments": {"ok.txt": "aGk=", "big.bin": base64.b64encode(b"\0" * (2 * 1024 * 1024 - 1)).decode()}},
     "attachments.big.bin"),
    ({"fake_bcc": "x"}, "fake_bcc"),
    ({"language": {"tr": 1}}, "language"),
    ({"title": "push field"}, "title"),
    ({"colour": "red"}, "colour"),
])
def test_bad_input_names_the_field_and_changes_nothing(tenant_a, configs, body, field):
    payload = {"identifiers": {"id": "someone"}, "subject": "S", "body": "B", "to": "x@example.com"}
    payload.update(body)
    if body == {}:
        del payload["identifiers"]
    payload = {key: value for key, value in payload.items() if value is not None}
    response = send(tenant_a.app_client(), "email", payload)
    assert response.status_code == 400, response.content
    assert error_fields(response) == [field]
    assert not Delivery.unscoped.exists() and not Profile.unscoped.exists()


def test_email_attachments_and_bcc_are_kept_on_the_delivery(tenant_a, configs, ada):
    pdf = b"%PDF-1.4 \x00\xff binary"
    wrapped = base64.encodebytes(b"line one\n" * 20).decode()  # MIME-style, with newlines
    delivery = ok(send(tenant_a.app_client(), "email", {
        "identifiers": {"id": "ada"}, "subject": "Invoice", "body": "<p>Attached</p>",
        "bcc": 'Archive <Archive@Acme.test>, "Ops, Team" <ops@acme.test>, archive@acme.test,',
        "attachments": {"invoice {{ customer.id }}.pdf": base64.b64encode(pdf).decode(), "notes.txt": wrapped,
                        "data.unknownext": "aGk="}}))
    assert delivery.content["bcc"] == ["archive@acme.test", "ops@acme.test"]
    assert delivery.content["attachments"] == [
        {"filename": "invoice {{ customer.id }}.pdf", "content_type": "application/pdf",
         "content_b64": base64.b64encode(pdf).decode()},
        {"filename": "notes.txt", "content_type": "text/plain",
         "content_b64": base64.b64encode(b"line one\n" * 20).decode()},
        {"filename": "data.unknownext", "content_type": "application/octet-stream", "content_b64": "aGk="}]


def test_a_body_over_the_request_limit_is_a_json_413(tenant_a, configs, ada, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = tenant_a.app_client().post("/v1/send/email", {"identifiers": {"id": "ada"}, "subject": "S",
                                                             "body": "x" * 2048}, format="json")
    assert response.status_code == 413 and response.json()["meta"]["error"] == "Request body is too large."
    assert not Delivery.unscoped.exists()


def test_attachments_may_total_2_mb(tenant_a, configs, ada):
    # 2 MB of files is 2.8 MB of base64, within the request body limit (DATA_UPLOAD_MAX_MEMORY_SIZE).
    half = base64.b64encode(b"x" * (1024 * 1024)).decode()
    delivery = ok(send(tenant_a.app_client(), "email", {
        "identifiers": {"id": "ada"}, "subject": "S", "body": "B", "attachments": {"a.bin": half, "b.bin": half}}))
    assert [item["filename"] for item in delivery.content["attachments"]] == ["a.bin", "b.bin"]


def test_empty_bcc_and_attachments_are_absent(tenant_a, configs, ada):
    delivery = ok(send(tenant_a.app_client(), "email", {
        "identifiers": {"id": "ada"}, "subject": "S", "body": "B", "bcc": "", "attachments": {}}))
    assert "bcc" not in delivery.content and "attachments" not in delivery.content


def test_body_must_be_an_object(tenant_a, configs):
    response = tenant_a.app_client().post(EMAIL, ["x"], format="json")
    assert response.status_code == 400 and response.json()["meta"]["error"]
    response = tenant_a.app_client().post(EMAIL, "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["meta"]["error"]


def test_send_at_schedules_and_only_due_sends_are_enqueued(tenant_a, configs, ada, broker,
                                                           django_capture_on_commit_callbacks):
    client = tenant_a.app_client()
    later = int((timezone.now() + timedelta(hours=2)).timestamp())
    with django_capture_on_commit_callbacks(execute=True):
        scheduled = ok(send(client, "email", {"identifiers": {"id": "ada"}, "subject": "S", "body": "B",
                                              "send_at": later}))
    assert int(scheduled.send_at.timestamp()) == later and broker.llen("email") == 0
    with django_capture_on_commit_callbacks(execute=True):
        past = ok(send(client, "email", {"identifiers": {"id": "ada"}, "subject": "S", "body": "B",
                                         "send_at": int(timezone.now().timestamp()) - 60}))
    assert past.send_at is None and broker.llen("email") == 1
    too_far = int((timezone.now() + timedelta(days=91)).timestamp())
    response = send(client, "email", {"identifiers": {"id": "ada"}, "subject": "S", "body": "B", "send_at": too_far})
    assert response.status_code == 400 and error_fields(response) == ["send_at"]


def test_idempotency_key_returns_the_first_delivery(two_tenants, configs, ada, broker,
                                                    django_capture_on_commit_callbacks):
    tenant_a, tenant_b = two_tenants
    body = {"identifiers": {"id": "ada"}, "subject": "S", "body": "B"}
    client = tenant_a.app_client()
    with django_capture_on_commit_callbacks(execute=True):
        first = send(client, "email", body, HTTP_IDEMPOTENCY_KEY="order-1001")
        again = send(client, "email", {**body, "subject": "changed"}, HTTP_IDEMPOTENCY_KEY="order-1001")
    assert ok(first).pk == ok(again).pk and Delivery.unscoped.count() == 1
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert broker.llen("email") == 1  # sent once
    assert ok(first).idempotency_key == "api:order-1001"
    ChannelConfigFactory(workspace=tenant_b.workspace, type="email", provider="smtp", name="B")
    other = ok(send(tenant_b.app_client(), "email", {**body, "to": "ada@example.com"},
                    HTTP_IDEMPOTENCY_KEY="order-1001"))
    assert other.workspace_id == tenant_b.workspace.pk and Delivery.unscoped.count() == 2
    for bad in ("has space", "x" * 151, "caf\u00e9"):
        response = send(client, "email", body, HTTP_IDEMPOTENCY_KEY=bad)
        assert response.status_code == 400 and error_fields(response) == ["Idempotency-Key"]
    assert Delivery.unscoped.count() == 2


def test_a_deleted_person_is_not_recreated(tenant_a, configs):
    ProfileFactory(workspace=tenant_a.workspace, external_id="gone", email="gone@example.com")
    request_deletion(workspace=tenant_a.workspace, identifiers={"email": "gone@example.com"}, source="api")
    client = tenant_a.app_client()
    for identifiers in ({"email": "gone@example.com"}, {"id": "gone"}):
        response = send(client, "email", {"identifiers": identifiers, "subject": "S", "body": "B"})
        assert response.status_code == 400 and error_fields(response) == ["identifiers"]
        assert "deleted" in response.json()["meta"]["error"]
    response = send(client, "email", {"identifiers": {"id": "new"}, "to": "Gone@example.com", "subject": "S",
                                      "body": "B"})
    assert response.status_code == 400 and error_fields(response) == ["to"]
    assert not Delivery.unscoped.exists() and not Profile.unscoped.filter(external_id="new").exists()


def test_no_configuration_or_an_inactive_one_is_a_clear_error(tenant_a, ada):
    client = tenant_a.app_client()
    response = send(client, "email", {"identifiers": {"id": "ada"}, "subject": "S", "body": "B"})
    assert response.status_code == 400 and "no active email channel configuration" in response.json()["meta"]["error"]
    config = ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", active=False)
    message = create_transactional_message(workspace=tenant_a.workspace, name="m", channel="email",
                                                   subject="s", body="b", channel_config=config)
    response = send(client, "email", {"transactional_message_id": message.pk, "identifiers": {"id": "ada"}})
    assert response.status_code == 400 and error_fields(response) == ["transactional_message_id"]
    assert not Delivery.unscoped.exists()


def test_sms_whatsapp_push_and_in_app(tenant_a, configs, ada):
    client = tenant_a.app_client()
    sms = ok(send(client, "sms", {"identifiers": {"id": "ada"}, "body": "Code {{ trigger.code }}",
                                  "message_data": {"code": 42}}))
    assert sms.recipient == "+905551234567" and sms.content == {"body": "Code {{ trigger.code }}"}
    sms_to = ok(send(client, "sms", {"identifiers": {"id": "ada"}, "body": "x", "to": "+1 (555) 000-2222"}))
    assert sms_to.recipient == "+15550002222" and sms_to.channel_config_id == configs["sms"].pk

    template = {"name": "otp", "language": "tr", "components": [{"type": "body"}]}
    whatsapp = ok(send(client, "whatsapp", {"identifiers": {"id": "ada"}, "template": template}))
    assert whatsapp.content == {"template": template} and whatsapp.channel == "whatsapp"

    push = ok(send(client, "push", {"identifiers": {"id": "ada"}, "title": "T", "message": "M", "sound": "ding",
                                    "link": "acme://orders/1", "image_url": "https://acme.test/i.png",
                                    "custom_data": {"order": 1}}))
    assert push.recipient == "all" and push.content == {
        "body": "M", "title": "T", "link": "acme://orders/1", "image_url": "https://acme.test/i.png",
        "sound": "ding", "custom_data": {"order": 1}}
    assert ok(send(client, "push", {"identifiers": {"id": "ada"}, "message": "M", "to": "last_used"})).recipient \
        == "last_used"
    device = ok(send(client, "push", {"identifiers": {"id": "ada"}, "message": "M",
                                      "custom_device": {"token": "tok-9", "platform": "ios"}}))
    assert device.recipient == "tok-9" and not Device.unscoped.exists()

    in_app = ok(send(client, "in_app", {"identifiers": {"id": "ada"}, "title": "Hi", "body": "Body",
                                        "payload": {"cta": "Open"}}))
    assert in_app.recipient == ada.cio_id and in_app.content == {"title": "Hi", "body": "Body", "cta": "Open"}
    alias = ok(send(client, "inbox_message", {"identifiers": {"id": "ada"}, "body": "x"}))
    assert alias.channel == "in_app"


@pytest.mark.parametrize("channel, body, field", [
    ("sms", {}, "body"),
    ("sms", {"body": "x", "to": "12"}, "to"),
    ("sms", {"body": "x", "subject": "s"}, "subject"),
    ("whatsapp", {}, "body"),
    ("whatsapp", {"template": {"language": "tr"}}, "template.name"),
    ("whatsapp", {"template": {"name": "x", "components": {}}}, "template.components"),
    ("whatsapp", {"template": {"name": "x", "colour": 1}}, "template.colour"),
    ("push", {}, "message"),
    ("push", {"message": "m", "custom_data": [1]}, "custom_data"),
    ("push", {"message": "m", "custom_payload": {"ios": {}}}, "custom_payload"),
    ("push", {"message": "m", "link": "not a url"}, "link"),
    ("push", {"message": "m", "to": "tok", "custom_device": {"token": "t"}}, "to"),
    ("push", {"message": "m", "custom_device": {"platform": "ios"}}, "custom_device.token"),
    ("in_app", {}, "body"),
    ("in_app", {"body": "x", "payload": "x"}, "payload"),
    ("in_app", {"body": "x", "payload": {"subject": "x"}}, "payload.subject"),
    ("in_app", {"body": "x", "to": "x"}, "to"),
])
def test_bad_input_of_other_channels(tenant_a, configs, ada, channel, body, field):
    response = send(tenant_a.app_client(), channel, {"identifiers": {"id": "ada"}, **body})
    assert response.status_code == 400, response.content
    assert error_fields(response) == [field]
    assert not Delivery.unscoped.exists()


def test_scopes(tenant_a, configs, ada):
    body = {"identifiers": {"id": "ada"}, "subject": "S", "body": "B"}
    for scopes in (("read",), ("compliance",)):
        response = send(app_client_with_scopes(tenant_a, *scopes), "email", body)
        assert response.status_code == 403 and response.json()["meta"]["error"]
    assert tenant_a.app_client("wrong").post(EMAIL, body, format="json").status_code in (401, 403)
    assert not Delivery.unscoped.exists()
    ok(send(app_client_with_scopes(tenant_a, "write"), "email", body))
