"""SMS: the Twilio and generic HTTP gateway providers against real local fakes, and Twilio's signed
status callbacks."""

import base64
import itertools
import json
from datetime import timedelta
from urllib.parse import quote, quote_plus, urlencode

import pytest
import time_machine
from django.utils import timezone

from channels.deliveries import queue_delivery
from channels.hooks import twilio_signature
from channels.models import Delivery, DeliveryEvent, DeliveryStatus, Suppression
from channels.providers.http_sms import HttpSmsProvider, read_path
from channels.sending import deliver
from core.context import workspace_scope
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply, free_port
from profiles.models import Event

pytestmark = pytest.mark.django_db

PUBLIC_URL = "http://127.0.0.1:8000"
TOKEN = "twilio-auth-token"


class FakeTwilio:
    """Twilio's Messages API: 201 with a sid, or the error a recipient number is set up to get."""

    def __init__(self):
        self.errors = {}  # To → Reply
        self.sids = itertools.count(1)
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        to = request.form().get("To")
        if to in self.errors:
            return self.errors[to]
        return Reply(201, {"sid": f"SM{next(self.sids):032d}", "status": "queued", "to": to})

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    @property
    def requests(self):
        return self.server.requests


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


def twilio_config(tenant, fake_url, **kwargs):
    settings = {"account_sid": "AC123", "base_url": fake_url, **kwargs.pop("settings", {})}
    kwargs.setdefault("sender", "+15550001111")
    kwargs.setdefault("is_default", True)
    return ChannelConfigFactory(workspace=tenant.workspace, type="sms", provider="twilio",
                                settings=settings, secrets={"auth_token": TOKEN}, **kwargs)


@pytest.fixture
def sms(tenant_a, twilio):
    return twilio_config(tenant_a, twilio.server.url)


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="ada", phone="+905551112233")


def send(tenant, person, *, source="transactional", **kwargs):
    kwargs.setdefault("content", {"body": "Hi {{ customer.id }}"})
    delivery, _ = queue_delivery(tenant.workspace, channel="sms", source=source, profile=person, **kwargs)
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    delivery.refresh_from_db()
    return outcome, delivery


def kinds(delivery):
    return list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))


def signed_post(client, url, params, token=TOKEN, signature=None):
    signature = signature if signature is not None else twilio_signature(token, PUBLIC_URL + url, _QD(params))
    return client.post(url, urlencode(params), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signature)


class _QD(dict):
    """The slice of QueryDict that twilio_signature reads."""

    def getlist(self, key):
        value = self[key]
        return value if isinstance(value, list) else [value]


# --- Twilio: sending ---------------------------------------------------------------------------------

def test_twilio_send_posts_the_form_and_keeps_the_sid(tenant_a, sms, person, twilio):
    outcome, delivery = send(tenant_a, person)
    assert outcome.result == "sent" and delivery.status == DeliveryStatus.SENT
    assert delivery.provider_message_id == f"SM{1:032d}"
    (request,) = twilio.requests
    assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"AC123:{TOKEN}".encode()).decode()
    form = request.form()
    assert form["To"] == "+905551112233" and form["From"] == "+15550001111" and form["Body"] == "Hi ada"
    assert form["StatusCallback"] == f"{PUBLIC_URL}/hooks/twilio/{sms.public_id}/status"
    assert "MessagingServiceSid" not in form


def test_twilio_messaging_service_and_media(tenant_a, twilio, person):
    twilio_config(tenant_a, twilio.server.url, settings={"messaging_service_sid": "MG9"})
    outcome, _ = send(tenant_a, person, content={"body": "Look", "media_url": "https://cdn.example.test/a.png"})
    assert outcome.result == "sent"
    form = twilio.requests[0].form()
    assert form["MessagingServiceSid"] == "MG9" and "From" not in form
    assert form["MediaUrl"] == "https://cdn.example.test/a.png"


@pytest.mark.parametrize("reply, status, reason", [
    (Reply(400, {"code": 21211, "message": "The 'To' number is not valid.", "status": 400}), "undeliverable",
     "invalid 'To' phone number"),
    (Reply(400, {"code": 21614, "message": "not a mobile number", "status": 400}), "undeliverable",
     "not a valid mobile number"),
    (Reply(400, {"code": 21606, "message": "The From phone number is not valid", "status": 400}), "failed",
     "Twilio error 21606"),
    (Reply(401, {"code": 20003, "message": "Authenticate", "status": 401}), "failed", "refused the credentials"),
    (Reply(500, {"message": "oops"}), "failed", "outcome unknown"),
])
def test_twilio_permanent_errors(tenant_a, sms, person, twilio, reply, status, reason):
    twilio.errors[person.phone] = reply
    outcome, delivery = send(tenant_a, person)
    assert outcome.result == status and delivery.status == status
    assert reason in delivery.failure_reason
    assert len(twilio.requests) == 1


def test_twilio_21610_suppresses_the_number(tenant_a, sms, person, twilio):
    twilio.errors[person.phone] = Reply(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"})
    outcome, delivery = send(tenant_a, person)
    assert delivery.status == DeliveryStatus.UNDELIVERABLE and "replied STOP" in delivery.failure_reason
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace, channel="sms")
    assert suppression.address == "+905551112233" and suppression.reason == "stop"
    assert suppression.profile_id == person.pk
    # The next message, even transactional, never reaches Twilio.
    outcome, later = send(tenant_a, person)
    assert later.status == DeliveryStatus.SUPPRESSED and len(twilio.requests) == 1


@pytest.mark.parametrize("reply", [Reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "7"}),
                                   Reply(503, "Service Unavailable")])
def test_twilio_rate_limit_and_unavailable_are_retried(tenant_a, sms, person, twilio, reply, settings):
    settings.ULAK_RATE_CLOCK = "worker"  # the hold measured on this test's controlled clock, not Redis's
    twilio.errors[person.phone] = reply
    outcome, delivery = send(tenant_a, person)
    assert outcome.result == "retry" and delivery.status == DeliveryStatus.QUEUED
    assert delivery.send_at is not None and "retry" in kinds(delivery)
    if reply.status == 429:
        assert outcome.retry_in == 7
    del twilio.errors[person.phone]
    with workspace_scope(tenant_a.workspace):
        assert deliver(delivery.pk).result == "skipped"  # not due yet
        Delivery.unscoped.filter(pk=delivery.pk).update(send_at=None)
        if reply.status == 429:  # Retry-After holds the whole configuration for 7 s
            assert deliver(delivery.pk).result == "retry"
            Delivery.unscoped.filter(pk=delivery.pk).update(send_at=None)
            with time_machine.travel(timezone.now() + timedelta(seconds=8)):
                assert deliver(delivery.pk).result == "sent"
        else:
            assert deliver(delivery.pk).result == "sent"
    assert len(twilio.requests) == 2


def test_a_configuration_answered_with_429_holds_back_all_its_senders_while_another_keeps_sending(tenant_a, sms,
                                                                                                    twilio):
    """A 429 with Retry-After holds the whole configuration (every batch task and the single path,
    through the Redis hold), releases the rest of its batch without counting attempts, and leaves
    another configuration sending."""
    from channels import batching
    from channels.models import ChannelConfig

    with FakeTwilio() as other:
        fine = twilio_config(tenant_a, other.server.url, is_default=False)
        people = [ProfileFactory(workspace=tenant_a.workspace, phone=f"+90555111224{i}") for i in range(6)]
        for who in people[:3]:
            twilio.errors[who.phone] = Reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "30"})
        held = [queue_delivery(tenant_a.workspace, channel="sms", source="broadcast", profile=who, channel_config=sms,
                               content={"body": "Hi"})[0] for who in people[:3]]
        others = [queue_delivery(tenant_a.workspace, channel="sms", source="broadcast", profile=who,
                                 channel_config=fine, content={"body": "Hi"})[0] for who in people[3:]]
        with workspace_scope(tenant_a.workspace):
            first = batching.send_batch(tenant_a.workspace, ChannelConfig.unscoped.get(pk=sms.pk), "task-1")
            assert (first.sent, first.wait) == (0, 30)
            assert batching.send_batch(tenant_a.workspace, ChannelConfig.unscoped.get(pk=fine.pk), "task-2").sent == 3
            # Another task of the held configuration, its deliveries due again: nothing goes out.
            Delivery.unscoped.filter(pk__in=[d.pk for d in held]).update(send_at=None)
            second = batching.send_batch(tenant_a.workspace, ChannelConfig.unscoped.get(pk=sms.pk), "task-3")
            assert second.sent == 0 and 28 <= second.wait <= 30
            # Nor does a transactional message through it.
            receipt, _ = queue_delivery(tenant_a.workspace, channel="sms", source="transactional", profile=people[5],
                                        channel_config=sms, content={"body": "Your code"})
            outcome = deliver(receipt.pk)
            assert outcome.result == "retry" and 28 <= outcome.retry_in <= 30
        assert len(twilio.requests) == 1
        rows = {row.pk: row for row in Delivery.unscoped.filter(pk__in=[d.pk for d in held + others])}
        assert [(rows[d.pk].status, rows[d.pk].attempts) for d in held] == [
            (DeliveryStatus.QUEUED, 1), (DeliveryStatus.QUEUED, 0), (DeliveryStatus.QUEUED, 0)]
        assert {rows[d.pk].status for d in others} == {DeliveryStatus.SENT} and len(other.requests) == 3


def test_twilio_connection_refused_is_retried(tenant_a, person):
    twilio_config(tenant_a, f"http://127.0.0.1:{free_port()}")
    outcome, delivery = send(tenant_a, person)
    assert outcome.result == "retry" and "could not connect to Twilio" in outcome.detail


# --- Twilio: status callbacks ----------------------------------------------------------------------

def _status_url(config):
    return f"/hooks/twilio/{config.public_id}/status"


def test_signed_status_callbacks_move_the_delivery_forward_once(client, tenant_a, sms, person, twilio):
    _, delivery = send(tenant_a, person)
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "sent", "AccountSid": "AC123"}
    assert signed_post(client, _status_url(sms), params).status_code == 204
    params["MessageStatus"] = "delivered"
    for _ in range(2):  # Twilio retries callbacks
        assert signed_post(client, _status_url(sms), params).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.delivered_at is not None
    assert kinds(delivery) == ["queued", "sent", "delivered"]
    names = list(Event.unscoped.filter(profile=person).values_list("name", flat=True))
    assert sorted(names) == ["sms_delivered", "sms_sent"]


def test_undelivered_callback_records_the_error(client, tenant_a, sms, person, twilio):
    _, delivery = send(tenant_a, person)
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003",
              "ErrorMessage": "Unreachable destination handset"}
    assert signed_post(client, _status_url(sms), params).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNDELIVERABLE
    assert delivery.failure_reason == "Twilio error 30003: Unreachable destination handset"
    assert not Suppression.unscoped.exists()


def test_failed_callback_with_21610_suppresses(client, tenant_a, sms, person, twilio):
    _, delivery = send(tenant_a, person)
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "failed", "ErrorCode": "21610"}
    signed_post(client, _status_url(sms), params)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert Suppression.unscoped.get(workspace=tenant_a.workspace, channel="sms").reason == "stop"


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "wrong-token"])
def test_bad_signature_is_refused_and_nothing_is_stored(client, tenant_a, sms, person, twilio, signature):
    _, delivery = send(tenant_a, person)
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "delivered"}
    if signature == "wrong-token":
        response = signed_post(client, _status_url(sms), params, token="someone-elses-token")
    else:
        response = signed_post(client, _status_url(sms), params, signature=signature)
    assert response.status_code == 403
    assert response.json()["meta"]["error"] == "Invalid X-Twilio-Signature."
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and kinds(delivery) == ["queued", "sent"]


def test_signature_covers_the_parameters(client, tenant_a, sms, person, twilio):
    _, delivery = send(tenant_a, person)
    good = {"MessageSid": delivery.provider_message_id, "MessageStatus": "sent"}
    signature = twilio_signature(TOKEN, PUBLIC_URL + _status_url(sms), _QD(good))
    tampered = {**good, "MessageStatus": "delivered"}
    assert signed_post(client, _status_url(sms), tampered, signature=signature).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT


def test_unknown_configuration_and_wrong_method(client, sms):
    assert signed_post(client, "/hooks/twilio/nope/status", {"MessageSid": "SM1"}).status_code == 404
    assert client.get(_status_url(sms)).status_code == 405


def test_a_hook_for_one_workspace_cannot_touch_anothers_delivery(client, tenant_a, tenant_b, twilio):
    config_a = twilio_config(tenant_a, twilio.server.url)
    twilio_config(tenant_b, twilio.server.url)
    person_b = ProfileFactory(workspace=tenant_b.workspace, phone="+905559998877")
    _, delivery_b = send(tenant_b, person_b)
    # Config A's own token signs a callback naming B's message id: accepted, but finds nothing.
    params = {"MessageSid": delivery_b.provider_message_id, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert signed_post(client, _status_url(config_a), params).status_code == 204
    delivery_b.refresh_from_db()
    assert delivery_b.status == DeliveryStatus.SENT and kinds(delivery_b) == ["queued", "sent"]
    assert not Suppression.unscoped.exists()


def test_a_hook_for_one_configuration_ignores_another_configurations_delivery(client, tenant_a, twilio, person):
    first = twilio_config(tenant_a, twilio.server.url)
    second = twilio_config(tenant_a, twilio.server.url, is_default=False, name="second")
    _, delivery = send(tenant_a, person, channel_config=first)
    params = {"MessageSid": delivery.provider_message_id, "MessageStatus": "delivered"}
    signed_post(client, _status_url(second), params)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT


# --- generic HTTP gateway ----------------------------------------------------------------------------

def gateway_config(tenant, url, **settings):
    secrets = settings.pop("secrets", {})
    return ChannelConfigFactory(workspace=tenant.workspace, type="sms", provider="http_sms", is_default=True,
                                sender="ACME", settings={"url": url, **settings}, secrets=secrets)


def test_http_gateway_json_template_bearer_and_message_id(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(200, {"data": {"messages": [{"id": "gw-77"}]}})) as gateway:
        gateway_config(tenant_a, gateway.url + "/send?to={to}", auth_type="bearer", secrets={"token": "tok"},
                       body_template='{"recipient": "{to}", "sender": "{from}", "text": "{body}", '
                                     '"ref": "{delivery_id}"}',
                       headers={"X-Tenant": "acme"}, message_id_field="$.data.messages[0].id")
        outcome, delivery = send(tenant_a, person, content={"body": 'He said "hi"\nnew line {{ customer.id }}'})
        assert outcome.result == "sent" and delivery.provider_message_id == "gw-77"
        (request,) = gateway.requests
        assert request.path == "/send" and request.query == {"to": ["+905551112233"]}
        assert request.headers["authorization"] == "Bearer tok" and request.headers["x-tenant"] == "acme"
        assert request.headers["content-type"] == "application/json"
        assert request.json() == {"recipient": "+905551112233", "sender": "ACME", "text": 'He said "hi"\nnew line ada',
                                  "ref": delivery.public_id}


def test_http_gateway_form_body_with_basic_auth(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(202, "queued")) as gateway:
        gateway_config(tenant_a, gateway.url + "/sms", content_type="application/x-www-form-urlencoded",
                       auth_type="basic", username="acme", secrets={"password": "pw"},
                       body_template="msisdn={to}&msg={body}&from={from}")
        outcome, delivery = send(tenant_a, person, content={"body": "50% off & more"})
        assert outcome.result == "sent" and delivery.provider_message_id == ""
        form = gateway.requests[0].form()
        assert form == {"msisdn": "+905551112233", "msg": "50% off & more", "from": "ACME"}
        assert gateway.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"acme:pw").decode()


def test_http_gateway_default_body_is_json(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(200, {"id": 5})) as gateway:
        gateway_config(tenant_a, gateway.url, message_id_field="id")
        _, delivery = send(tenant_a, person)
        assert gateway.requests[0].json() == {"to": "+905551112233", "from": "ACME", "body": "Hi ada"}
        assert delivery.provider_message_id == "5"


@pytest.mark.parametrize("status, result", [(429, "retry"), (503, "retry"), (400, "failed"), (502, "failed")])
def test_http_gateway_errors(tenant_a, person, status, result):
    with FakeHttpServer(lambda r: Reply(status, {"error": "nope"})) as gateway:
        gateway_config(tenant_a, gateway.url)
        outcome, delivery = send(tenant_a, person)
        assert outcome.result == result
        if result == "failed":
            assert f"HTTP {status}" in delivery.failure_reason


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.7/sms",
                                 "http://[::ffff:192.168.0.1]/sms", "file:///etc/passwd"])
def test_http_gateway_refuses_internal_destinations(tenant_a, person, url):
    gateway_config(tenant_a, url)
    outcome, delivery = send(tenant_a, person)
    assert outcome.result == "failed" and "not allowed" in delivery.failure_reason


def test_http_gateway_invalid_json_template_fails_clearly(tenant_a, person):
    with FakeHttpServer() as gateway:
        gateway_config(tenant_a, gateway.url, body_template='{"to": {to}}')  # unquoted: not JSON
        outcome, delivery = send(tenant_a, person)
        assert outcome.result == "failed" and "valid JSON" in delivery.failure_reason
        assert gateway.requests == []


def test_http_gateway_settings_validation():
    errors = HttpSmsProvider.validate_settings(
        {"url": "http://127.0.0.2:9/x", "method": "DELETE", "auth_type": "basic", "headers": {"a": 1}, "x": 1}, {})
    assert set(errors) == {"settings.url", "settings.method", "settings.username", "settings.headers", "settings.x"}
    assert HttpSmsProvider.validate_settings({"url": "https://sms.example.com/send?to={to}"}, {}) == {}
    assert "settings.url" in HttpSmsProvider.validate_settings({}, {})
    assert "secrets.token" in HttpSmsProvider.validate_settings({"url": "https://a.example", "auth_type": "bearer"}, {})


@pytest.mark.parametrize("document, path, expected", [
    ({"id": "a"}, "id", "a"), ({"id": "a"}, "$.id", "a"), ({"d": [{"id": 3}]}, "d[0].id", 3),
    ({"d": [{"id": 3}]}, "d.0.id", 3), ({"d": []}, "d[0].id", None), ([{"x": 1}], "$[0].x", 1),
    ("text", "id", None), ({"a": {"b": None}}, "a.b.c", None),
])
def test_read_path(document, path, expected):
    assert read_path(document, path) == expected


def test_status_callback_json_error_body_is_the_project_format(client, sms):
    response = signed_post(client, _status_url(sms), {"MessageSid": "SM1"}, token="bad")
    assert response.status_code == 403 and json.loads(response.content)["errors"][0]["field"] is None


# --- generic HTTP gateway: credentials as {secret.NAME} placeholders ------------------------------

def test_http_gateway_fills_secret_placeholders_in_url_headers_and_body(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(200, {"id": "gw-1"})) as gateway:
        gateway_config(tenant_a, gateway.url + "/send?api_key={secret.api_key}&to={to}",
                       headers={"X-Api-Key": "{secret.header-key}", "X-Static": "plain"},
                       body_template='{"to": "{to}", "text": "{body}", "auth": "{secret.body_key}"}',
                       message_id_field="id",
                       secrets={"api_key": "k&1 /x", "header-key": "hk-123", "body_key": 'b"q\\k'})
        outcome, delivery = send(tenant_a, person)
        assert outcome.result == "sent" and delivery.provider_message_id == "gw-1"
        (request,) = gateway.requests
        assert request.query == {"api_key": ["k&1 /x"], "to": ["+905551112233"]}
        assert request.headers["x-api-key"] == "hk-123" and request.headers["x-static"] == "plain"
        assert request.json() == {"to": "+905551112233", "text": "Hi ada", "auth": 'b"q\\k'}


def test_http_gateway_secret_placeholders_in_a_form_body(tenant_a, person):
    with FakeHttpServer(lambda r: Reply(200, "ok")) as gateway:
        gateway_config(tenant_a, gateway.url, content_type="application/x-www-form-urlencoded",
                       body_template="user=acme&key={secret.key}&to={to}&msg={body}", secrets={"key": "a&b=c"})
        send(tenant_a, person)
        assert gateway.requests[0].form() == {"user": "acme", "key": "a&b=c", "to": "+905551112233", "msg": "Hi ada"}


def test_http_gateway_secret_names_are_accepted_by_the_api_and_never_shown(tenant_a):
    from channels.configs import read_secrets
    from core.models import AuditEntry

    client = tenant_a.app_client()
    body = {"type": "sms", "provider": "http_sms", "name": "Gateway", "sender": "ACME",
            "settings": {"url": "https://sms.example.com/send?key={secret.api_key}",
                         "headers": {"X-Auth": "{secret.header_token}"}},
            "secrets": {"api_key": "query-secret-1", "header_token": "header-secret-2"}}
    response = client.post("/v1/channels", body, format="json")
    assert response.status_code == 201, response.content
    channel = response.json()["channel"]
    assert channel["secrets_set"] == ["api_key", "header_token"]
    assert channel["settings"] == body["settings"]
    config = ChannelConfigFactory._meta.model.unscoped.get(pk=channel["id"])
    assert read_secrets(config) == body["secrets"]
    shown = client.get("/v1/channels").content + client.get(f"/v1/channels/{config.pk}").content
    entries = AuditEntry.objects.filter(workspace_id=tenant_a.workspace.pk, object_pk=str(config.pk))
    logged = json.dumps([entry.changes for entry in entries], default=str)
    for secret in body["secrets"].values():
        assert secret.encode() not in shown and secret not in logged
    # A placeholder whose secret is neither given nor stored is refused, naming the secret.
    response = client.patch(f"/v1/channels/{config.pk}", {"settings": {"body_template": "{secret.other}"}},
                            format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["secrets.other"]
    config.refresh_from_db()
    assert "body_template" not in config.settings
    # Given in the same request, or removed (null) while still used.
    response = client.patch(f"/v1/channels/{config.pk}", {"settings": {"body_template": "{secret.other}"},
                                                          "secrets": {"other": "o"}}, format="json")
    assert response.status_code == 200, response.content
    response = client.patch(f"/v1/channels/{config.pk}", {"secrets": {"api_key": None}}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "secrets.api_key"


def test_http_gateway_secret_placeholder_validation():
    url = "https://sms.example.com/send"
    valid = HttpSmsProvider.validate_settings(
        {"url": url + "?k={secret.k_1}", "headers": {"X": "Key {secret.h-2}"}, "body_template": "{secret.b}"},
        {"k_1": "a", "h-2": "b", "b": "c", "unused": "d"})
    assert valid == {}
    missing = HttpSmsProvider.validate_settings({"url": url, "headers": {"X": "{secret.api_key}"}}, {})
    assert missing == {"secrets.api_key": "Required by {secret.api_key} in settings.headers."}
    assert HttpSmsProvider.validate_settings({"url": url, "headers": {"X": "{secret.api_key}"}}, {},
                                             partial_secrets=True) == {}
    errors = HttpSmsProvider.validate_settings(
        {"url": "https://{secret.host}/send", "body_template": "{secret.bad name}"},
        {"host": "h", "bad name": "x", "number": 5, "password": ["p"]})
    assert set(errors) == {"settings.url", "settings.body_template", "secrets.bad name", "secrets.number",
                           "secrets.password"}
    assert "path and the query" in errors["settings.url"]
    assert errors["secrets.number"] == "Must be a string."


def test_http_gateway_failure_reasons_never_show_a_secret(tenant_a, person):
    secret = "s3cr3t/+&key"
    def echo(request):
        key = request.query["key"][0]
        return Reply(400, f"bad key {key} ({quote(key, safe='')}, {quote_plus(key)})")

    with FakeHttpServer(echo) as gateway:
        gateway_config(tenant_a, gateway.url + "/send?key={secret.key}", secrets={"key": secret})
        outcome, delivery = send(tenant_a, person)
    assert outcome.result == "failed" and "HTTP 400" in delivery.failure_reason
    assert "bad key [secret]" in delivery.failure_reason
    assert "s3cr3t" not in delivery.failure_reason
    assert "s3cr3t" not in json.dumps(list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("data",
                                                                                                        flat=True)))


def test_http_gateway_placeholder_without_its_secret_fails_the_delivery(tenant_a, person):
    with FakeHttpServer() as gateway:
        gateway_config(tenant_a, gateway.url, headers={"X-Key": "{secret.api_key}"})  # saved around validation
        outcome, delivery = send(tenant_a, person)
        assert outcome.result == "failed" and "has no secret 'api_key'" in delivery.failure_reason
        assert gateway.requests == []


# --- settings types -------------------------------------------------------------------------------

def test_http_gateway_settings_are_type_checked():
    errors = HttpSmsProvider.validate_settings(
        {"url": "https://sms.example.com/send", "content_type": 5, "message_id_field": 7, "method": ["POST"],
         "auth_type": {"basic": True}, "username": 3, "body_template": False, "headers": "X-Key: 1"}, {})
    assert errors == {"settings.content_type": "Must be a string.", "settings.message_id_field": "Must be a string.",
                      "settings.method": "Must be a string.", "settings.auth_type": "Must be a string.",
                      "settings.username": "Must be a string.", "settings.body_template": "Must be a string.",
                      "settings.headers": "Must be an object."}
    assert HttpSmsProvider.validate_settings({"url": 5}, {}) == {"settings.url": "Must be a string."}


def test_twilio_settings_are_type_checked():
    from channels.providers.twilio import TwilioProvider

    errors = TwilioProvider.validate_settings(
        {"account_sid": 123, "messaging_service_sid": ["MG"], "base_url": {}, "help_text": 1, "opt_out_reply": True},
        {"auth_token": "t"})
    assert errors == {f"settings.{name}": "Must be a string." for name in
                      ("account_sid", "messaging_service_sid", "base_url", "help_text", "opt_out_reply")}
    assert TwilioProvider.validate_settings({"account_sid": "AC1", "help_text": "Help"}, {"auth_token": "t"}) == {}


def test_the_base_type_check_is_opt_in_per_setting():
    from channels.providers.base import Provider

    class Example(Provider):
        settings_fields = {"port": True, "use_tls": False, "timeout": False, "host": False, "free": False}
        settings_types = {"port": int, "use_tls": bool, "timeout": float, "host": (str, list)}

    assert Example.validate_settings({"port": 25, "use_tls": False, "timeout": 2, "host": ["a"], "free": {}}, {}) == {}
    assert Example.validate_settings({"port": 25, "timeout": 1.5, "host": "h", "free": 5, "use_tls": None}, {}) == {}
    assert Example.validate_settings({"port": True, "use_tls": 1, "timeout": "1", "host": 5}, {}) == {
        "settings.port": "Must be an integer.", "settings.use_tls": "Must be a boolean (true or false).",
        "settings.timeout": "Must be a number.", "settings.host": "Must be a string or a list."}
    assert Example.validate_settings({"port": 2.5}, {}) == {"settings.port": "Must be an integer."}


def test_the_api_refuses_a_mistyped_setting_and_changes_nothing(tenant_a):
    client = tenant_a.app_client()
    body = {"type": "sms", "provider": "http_sms", "name": "Gateway",
            "settings": {"url": "https://sms.example.com/send", "content_type": 5}}
    response = client.post("/v1/channels", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "settings.content_type", "message": "Must be a string."}]
    assert not ChannelConfigFactory._meta.model.unscoped.filter(workspace=tenant_a.workspace).exists()


def test_a_mistyped_setting_saved_before_the_check_fails_the_delivery_clearly(tenant_a, person):
    with FakeHttpServer() as gateway:
        gateway_config(tenant_a, gateway.url, content_type=5)
        outcome, delivery = send(tenant_a, person)
        assert outcome.result == "failed"
        assert delivery.failure_reason == "settings.content_type: Must be a string."
        assert gateway.requests == []


# --- early status callbacks -------------------------------------------------------------------------

def test_a_status_that_arrives_before_the_id_is_stored_is_applied_after_sent(client, tenant_a, sms, person, twilio):
    from channels.inbound import apply_early_statuses

    sid = f"SM{1:032d}"  # the id the fake will give the next message
    for state in ("sent", "delivered", "delivered"):
        params = {"MessageSid": sid, "MessageStatus": state, "AccountSid": "AC123"}
        assert signed_post(client, _status_url(sms), params).status_code == 204
    assert not DeliveryEvent.unscoped.filter(kind="delivered").exists()
    _, delivery = send(tenant_a, person)
    assert delivery.provider_message_id == sid
    with workspace_scope(tenant_a.workspace):
        apply_early_statuses(delivery)
        assert apply_early_statuses(delivery) == []  # applied once
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.delivered_at >= delivery.sent_at
    assert kinds(delivery) == ["queued", "sent", "delivered"]
    assert sorted(Event.unscoped.filter(profile=person).values_list("name", flat=True)) == ["sms_delivered", "sms_sent"]


def test_early_statuses_of_a_send_batch_are_applied_to_their_own_deliveries(client, tenant_a, sms, twilio):
    """The batch path looks up the early statuses of all its deliveries at once (one Redis round
    trip) and applies each to its own delivery."""
    from channels import batching
    from channels.models import ChannelConfig

    people = [ProfileFactory(workspace=tenant_a.workspace, phone=f"+90555111223{i}") for i in range(3)]
    deliveries = [queue_delivery(tenant_a.workspace, channel="sms", source="broadcast", profile=who,
                                 content={"body": "Hi"})[0] for who in people]
    params = {"MessageSid": f"SM{2:032d}", "MessageStatus": "delivered", "AccountSid": "AC123"}
    assert signed_post(client, _status_url(sms), params).status_code == 204  # for the second one sent
    with workspace_scope(tenant_a.workspace):
        sent = batching.send_batch(tenant_a.workspace, ChannelConfig.unscoped.get(pk=sms.pk), "batch").sent
    assert sent == 3
    rows = {row.pk: row for row in Delivery.unscoped.filter(pk__in=[d.pk for d in deliveries])}
    assert [(rows[d.pk].provider_message_id, rows[d.pk].status) for d in deliveries] == [
        (f"SM{1:032d}", DeliveryStatus.SENT), (f"SM{2:032d}", DeliveryStatus.DELIVERED),
        (f"SM{3:032d}", DeliveryStatus.SENT)]
    assert kinds(deliveries[1]) == ["queued", "sent", "delivered"]


def test_an_early_21610_failure_also_suppresses_the_number(client, tenant_a, sms, person, twilio):
    from channels.inbound import apply_early_statuses

    params = {"MessageSid": f"SM{1:032d}", "MessageStatus": "failed", "ErrorCode": "21610"}
    assert signed_post(client, _status_url(sms), params).status_code == 204
    assert not Suppression.unscoped.exists()
    _, delivery = send(tenant_a, person)
    with workspace_scope(tenant_a.workspace):
        apply_early_statuses(delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.failure_reason == "Twilio error 21610"
    suppression = Suppression.unscoped.get(workspace=tenant_a.workspace, channel="sms")
    assert suppression.address == person.phone and suppression.reason == "stop"


def test_early_statuses_stay_with_their_configuration(client, tenant_a, tenant_b, twilio):
    from channels.inbound import apply_early_statuses

    config_a = twilio_config(tenant_a, twilio.server.url)
    with FakeTwilio() as other:  # numbers its sids from 1 again: the same sid as A's first message
        twilio_config(tenant_b, other.server.url)
        person_b = ProfileFactory(workspace=tenant_b.workspace, phone="+905559998877")
        params = {"MessageSid": f"SM{1:032d}", "MessageStatus": "undelivered", "ErrorCode": "30003"}
        assert signed_post(client, _status_url(config_a), params).status_code == 204
        _, delivery_b = send(tenant_b, person_b)
    assert delivery_b.provider_message_id == f"SM{1:032d}"
    with workspace_scope(tenant_b.workspace):
        assert apply_early_statuses(delivery_b) == []
    delivery_b.refresh_from_db()
    assert delivery_b.status == DeliveryStatus.SENT and kinds(delivery_b) == ["queued", "sent"]


def test_early_statuses_are_kept_ten_minutes(client, sms):
    from django.core.cache import cache

    from channels.inbound import EARLY_STATUS_SECONDS, _early_key

    sid = "SM-never-sent"
    signed_post(client, _status_url(sms), {"MessageSid": sid, "MessageStatus": "delivered"})
    key = cache.make_and_validate_key(_early_key(sms.pk, sid, "delivered"))
    ttl = cache._cache.get_client(key).ttl(key)
    assert EARLY_STATUS_SECONDS == 600 and 590 < ttl <= 600
