"""Webhook channel end to end: queue → render → sign (Standard Webhooks) → SSRF guard → a real
local receiver; and how each answer of the receiver is classified."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels.deliveries import queue_delivery
from channels.models import Delivery, DeliveryEvent, DeliveryStatus
from channels.providers.webhook import WebhookProvider
from tests.support.delivering import send_now
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply

pytestmark = pytest.mark.django_db

KEY = b"0123456789abcdef0123456789abcdef"  # 32 bytes
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture
def config(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="webhook", provider="webhook", name="hooks",
                                is_default=True, secrets={"signing_secret": SECRET})


@pytest.fixture
def person(tenant_a):
    return ProfileFactory(workspace=tenant_a.workspace, external_id="u1", email="u1@example.test")


@pytest.fixture
def receiver():
    with FakeHttpServer(lambda r: Reply(200, {"received": True})) as server:
        yield server


def queue_webhook(tenant, person, url, **content):
    content = {"method": "POST", "url": url, "headers": {"X-Tenant": "{{ customer.email }}"},
               "body": {"user": "{{ customer.id }}", "count": 3, "tags": ["a", "{{ customer.id }}"]}, **content}
    delivery, _ = queue_delivery(tenant.workspace, channel="webhook", source="campaign", source_id="9",
                                 profile=person, content=content)
    return delivery


def make_due(delivery):
    Delivery.unscoped.filter(pk=delivery.pk).update(send_at=timezone.now() - timedelta(seconds=1))


def verify_standard_webhook(request, key: bytes) -> None:
    """The receiver's side of https://www.standardwebhooks.com/, written from the spec."""
    msg_id, timestamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = dict(part.split(",", 1) for part in request.headers["webhook-signature"].split(" "))
    assert hmac.compare_digest(versions["v1"], expected)


def test_webhook_is_rendered_signed_and_delivered_once(tenant_a, config, person, receiver):
    delivery = queue_webhook(tenant_a, person, receiver.url + "/hook/{{ customer.id }}?src=ulak")
    outcome = send_now(tenant_a, delivery)

    assert outcome.result == "sent", outcome
    [request] = receiver.requests
    assert (request.method, request.path, request.query) == ("POST", "/hook/u1", {"src": ["ulak"]})
    assert request.json() == {"user": "u1", "count": 3, "tags": ["a", "u1"]}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tenant"] == "u1@example.test"
    assert request.headers["webhook-id"] == delivery.public_id
    verify_standard_webhook(request, KEY)
    assert delivery.status == DeliveryStatus.SENT and delivery.provider_message_id == delivery.public_id
    assert delivery.recipient == "" and delivery.rendered_payload["url"] == receiver.url + "/hook/u1?src=ulak"

    assert send_now(tenant_a, delivery).result == "skipped"
    assert len(receiver.requests) == 1


def test_a_wrong_key_does_not_verify(tenant_a, config, person, receiver):
    send_now(tenant_a, queue_webhook(tenant_a, person, receiver.url + "/hook"))
    with pytest.raises(AssertionError):
        verify_standard_webhook(receiver.requests[0], b"another key of thirty-two bytes!")


def test_string_body_is_sent_as_is_and_signed(tenant_a, config, person, receiver):
    delivery = queue_webhook(tenant_a, person, receiver.url + "/text", method="PUT", headers={},
                             body="hello {{ customer.id }}")
    assert send_now(tenant_a, delivery).result == "sent"
    [request] = receiver.requests
    assert (request.method, request.body) == ("PUT", b"hello u1")
    assert request.headers["content-type"].startswith("text/plain")
    verify_standard_webhook(request, KEY)


def test_template_cannot_forge_the_signature_headers(tenant_a, config, person, receiver):
    delivery = queue_webhook(tenant_a, person, receiver.url + "/x",
                             headers={"webhook-id": "forged", "Webhook-Signature": "v1,forged", "Host": "evil"})
    send_now(tenant_a, delivery)
    request = receiver.requests[0]
    assert request.headers["webhook-id"] == delivery.public_id
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    verify_standard_webhook(request, KEY)


def test_server_error_is_retried_with_the_same_webhook_id(tenant_a, config, person, receiver):
    answers = iter([Reply(500, "busy"), Reply(204)])
    receiver.handler = lambda request: next(answers)
    delivery = queue_webhook(tenant_a, person, receiver.url + "/flaky")

    first = send_now(tenant_a, delivery)
    assert first.result == "retry" and first.retry_in > 0
    assert delivery.status == DeliveryStatus.QUEUED and delivery.send_at > timezone.now()
    assert delivery.attempts == 1 and delivery.sent_at is None

    make_due(delivery)
    assert send_now(tenant_a, delivery).result == "sent"
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 2
    first_call, second_call = receiver.requests
    assert first_call.headers["webhook-id"] == second_call.headers["webhook-id"] == delivery.public_id
    verify_standard_webhook(second_call, KEY)
    kinds = list(DeliveryEvent.unscoped.filter(delivery=delivery).values_list("kind", flat=True))
    assert kinds == ["queued", "retry", "sent"]


def test_too_many_requests_honours_retry_after(tenant_a, config, person, receiver):
    receiver.handler = lambda request: Reply(429, headers={"Retry-After": "7"})
    outcome = send_now(tenant_a, queue_webhook(tenant_a, person, receiver.url + "/limited"))
    assert outcome.result == "retry" and outcome.retry_in == 7


def test_timeout_is_retried(tenant_a, person, receiver):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="webhook", provider="webhook", is_default=True,
                         settings={"timeout_seconds": 0.5}, secrets={"signing_secret": SECRET})
    receiver.handler = lambda request: (time.sleep(1.5), Reply(200))[1]
    delivery = queue_webhook(tenant_a, person, receiver.url + "/slow")
    outcome = send_now(tenant_a, delivery)
    assert outcome.result == "retry" and "Timeout" in outcome.detail
    assert delivery.status == DeliveryStatus.QUEUED


def test_client_error_fails_permanently(tenant_a, config, person, receiver):
    receiver.handler = lambda request: Reply(404, "no such hook")
    delivery = queue_webhook(tenant_a, person, receiver.url + "/gone")
    outcome = send_now(tenant_a, delivery)
    assert outcome.result == "failed"
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason == "webhook answered 404: no such hook"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:{port}/x",
                                 "http://[::ffff:127.0.0.1]:{port}/x", "http://2130706433:{port}/x"])
def test_blocked_destination_fails_with_the_reason(tenant_a, config, person, receiver, settings, url):
    settings.ULAK_SSRF_ALLOWLIST = []
    delivery = queue_webhook(tenant_a, person, url.format(port=receiver.port))
    outcome = send_now(tenant_a, delivery)
    assert outcome.result == "failed"
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.failure_reason.startswith("blocked destination: ")
    assert receiver.requests == []


def test_missing_url_and_bad_method_fail_without_a_call(tenant_a, config, person, receiver):
    no_url = queue_webhook(tenant_a, person, "")
    assert send_now(tenant_a, no_url).result == "failed" and no_url.failure_reason == "the webhook has no url"
    bad_method = queue_webhook(tenant_a, person, receiver.url, method="TRACE")
    assert send_now(tenant_a, bad_method).result == "failed" and "unsupported webhook method" in bad_method.failure_reason
    assert receiver.requests == []


def test_settings_validation():
    def errors(settings=None, signing_secret=SECRET):
        secrets = {} if signing_secret is None else {"signing_secret": signing_secret}
        return WebhookProvider.validate_settings(settings or {}, secrets)

    assert errors() == {}
    assert errors(signing_secret=None) == {"secrets.signing_secret": "This field is required."}
    assert "secrets.signing_secret" in errors(signing_secret="whsec_not base64!")
    short = "whsec_" + base64.b64encode(b"short").decode()
    assert "24 to 64 bytes" in errors(signing_secret=short)["secrets.signing_secret"]
    assert "settings.timeout_seconds" in errors({"timeout_seconds": 300})
    assert "settings.url" in errors({"url": "x"})


def test_payload_is_what_the_receiver_got(tenant_a, config, person, receiver):
    """The body is serialised once: the bytes signed are the bytes sent (no re-encoding)."""
    delivery = queue_webhook(tenant_a, person, receiver.url + "/u", body={"name": "Çağrı ✓", "n": 1.5})
    send_now(tenant_a, delivery)
    request = receiver.requests[0]
    assert json.loads(request.body.decode("utf-8")) == {"name": "Çağrı ✓", "n": 1.5}
    verify_standard_webhook(request, KEY)
