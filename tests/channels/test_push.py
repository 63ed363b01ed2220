"""Push: FCM HTTP v1 (with Google's OAuth2 JWT-bearer token exchange) and APNs token auth, against
real local fakes speaking their wire formats."""

import itertools
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from channels.models import DeliveryStatus
from channels.providers.push import FcmProvider
from channels.safe_http import close_kept_clients
from tests.support.crypto import private_key_pem
from tests.support.delivering import device_tokens, queue_and_send
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply
from profiles.models import Device

pytestmark = pytest.mark.django_db

PROJECT = "acme-app"
CLIENT_EMAIL = "ulak@acme-app.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


class FakeGoogle:
    """Google's token endpoint (/token) and FCM's messages:send, on one server."""

    def __init__(self, public_key):
        self.public_key = public_key
        self.token_replies = []  # queued replies for /token; default: a fresh access token
        self.device_errors = {}  # device token → Reply
        self.issued = itertools.count(1)
        self.valid_access = set()
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        if request.path == "/token":
            return self.token(request)
        if request.path == f"/v1/projects/{PROJECT}/messages:send":
            if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid_access:
                return Reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}})
            token = request.json()["message"]["token"]
            if token in self.device_errors:
                return self.device_errors[token]
            return Reply(200, {"name": f"projects/{PROJECT}/messages/0:{token}"})
        return Reply(404, {"error": "no such path"})

    def token(self, request):
        if self.token_replies:
            return self.token_replies.pop(0)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        claims = jwt.decode(form["assertion"], self.public_key, algorithms=["RS256"], audience=self.url + "/token")
        assert claims["iss"] == CLIENT_EMAIL and claims["scope"].endswith("firebase.messaging")
        access = f"ya29.access-{next(self.issued)}"
        self.valid_access.add(access)
        return Reply(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    @property
    def url(self):
        return self.server.url

    @property
    def sends(self):
        return [r for r in self.server.requests if r.path.endswith("messages:send")]

    @property
    def token_calls(self):
        return [r for r in self.server.requests if r.path == "/token"]


@pytest.fixture
def google(rsa_key):
    fake = FakeGoogle(rsa_key.public_key())
    with fake.server:
        yield fake


def fcm_config(tenant, google, rsa_key):
    account = {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
               "private_key": private_key_pem(rsa_key), "client_email": CLIENT_EMAIL,
               "token_uri": "https://oauth2.googleapis.com/token"}
    return ChannelConfigFactory(workspace=tenant.workspace, type="push", provider="fcm", is_default=True,
                                settings={"base_url": google.url, "token_url": google.url + "/token"},
                                secrets={"service_account": account})


@pytest.fixture
def person(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    Device.unscoped.create(workspace=tenant_a.workspace, profile=person, token="android-1", platform="android")
    Device.unscoped.create(workspace=tenant_a.workspace, profile=person, token="ios-1", platform="ios")
    return person


def push(tenant, person, content=None, **kwargs):
    content = content or {"title": "Order {{ customer.id }}", "body": "Shipped",
                          "image_url": "https://cdn.example.test/i.png",
                          "link": "https://acme.example.test/o/1", "custom_data": {"order_id": 7, "kind": "ship"}}
    return queue_and_send(tenant, person, channel="push", content=content, **kwargs)


# --- FCM -----------------------------------------------------------------------------------------

def test_fcm_sends_to_every_device_with_one_cached_access_token(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent" and delivery.status == DeliveryStatus.SENT
    assert delivery.provider_message_id == f"projects/{PROJECT}/messages/0:android-1"
    assert [r.json()["message"]["token"] for r in google.sends] == ["android-1", "ios-1"]
    message = google.sends[0].json()["message"]
    assert message["notification"] == {"title": "Order ada", "body": "Shipped",
                                       "image": "https://cdn.example.test/i.png"}
    assert message["data"] == {"order_id": "7", "kind": "ship", "link": "https://acme.example.test/o/1"}
    assert message["webpush"] == {"fcm_options": {"link": "https://acme.example.test/o/1"}}
    assert google.sends[0].headers["authorization"] == "Bearer ya29.access-1"
    push(tenant_a, person)
    assert len(google.token_calls) == 1  # the access token is cached until it expires


def test_fcm_unregistered_token_removes_the_device(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    google.device_errors["android-1"] = Reply(404, {"error": {
        "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent" and delivery.provider_message_id.endswith("ios-1")
    assert device_tokens(person) == ["ios-1"]


def _all_fcm_tokens_invalid(google):
    google.device_errors["android-1"] = Reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})
    google.device_errors["ios-1"] = Reply(400, {"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": "The registration token is not a valid FCM registration token",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
                    {"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}]}})


def test_fcm_every_token_invalid_is_undeliverable(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    _all_fcm_tokens_invalid(google)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "undeliverable" and delivery.status == DeliveryStatus.UNDELIVERABLE
    assert "every device token was rejected" in delivery.failure_reason


def test_fcm_every_token_invalid_removes_the_devices(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    _all_fcm_tokens_invalid(google)
    push(tenant_a, person)
    assert device_tokens(person) == []


def test_fcm_invalid_payload_is_a_failure_not_an_invalid_token(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    bad = Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid JSON payload"}})
    google.device_errors.update({"android-1": bad, "ios-1": bad})
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "failed" and "Invalid JSON payload" in delivery.failure_reason
    assert device_tokens(person) == ["android-1", "ios-1"]


def test_fcm_unavailable_everywhere_is_retried(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    busy = Reply(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "try later"}})
    google.device_errors.update({"android-1": busy, "ios-1": busy})
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "retry" and delivery.status == DeliveryStatus.QUEUED


def test_fcm_refreshes_an_access_token_that_stopped_working(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    push(tenant_a, person)
    google.valid_access.clear()  # revoked on Google's side while still cached here
    outcome, _ = push(tenant_a, person)
    assert outcome.result == "sent" and len(google.token_calls) == 2


def test_google_refusing_the_service_account_fails_clearly(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    google.token_replies.append(Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}))
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "failed" and "Invalid JWT Signature" in delivery.failure_reason
    assert google.sends == []


def test_google_token_endpoint_down_is_retried(tenant_a, google, rsa_key, person):
    fcm_config(tenant_a, google, rsa_key)
    google.token_replies.append(Reply(503, "unavailable"))
    outcome, _ = push(tenant_a, person)
    assert outcome.result == "retry" and google.sends == []


def test_no_devices_is_undeliverable(tenant_a, google, rsa_key):
    fcm_config(tenant_a, google, rsa_key)
    nobody = ProfileFactory(workspace=tenant_a.workspace)
    outcome, delivery = push(tenant_a, nobody)
    assert outcome.result == "undeliverable" and "no push devices" in delivery.failure_reason


def test_fcm_settings_validation(rsa_key):
    assert FcmProvider.validate_settings({}, {"service_account": {"client_email": "a@b", "private_key": "k"}}) == {}
    errors = FcmProvider.validate_settings({"x": 1}, {"service_account": "{not json"})
    assert errors == {"settings.x": "Unknown setting for this provider.",
                      "secrets.service_account": "the service account is not valid JSON"}
    assert "secrets.service_account" in FcmProvider.validate_settings({}, {"service_account": {"client_email": "a"}})


# --- APNs ----------------------------------------------------------------------------------------

class FakeApns:
    def __init__(self, public_key):
        self.public_key = public_key
        self.device_replies = {}  # device token → list of replies, used in order
        self.ids = itertools.count(1)
        self.server = FakeHttpServer(self.handle)

    def handle(self, request):
        claims = jwt.decode(request.headers["authorization"].removeprefix("bearer "), self.public_key,
                            algorithms=["ES256"])
        assert claims["iss"] == "TEAM123456"
        token = request.path.removeprefix("/3/device/")
        if self.device_replies.get(token):
            return self.device_replies[token].pop(0)
        return Reply(200, b"", {"apns-id": f"00000000-0000-0000-0000-{next(self.ids):012d}"})


@pytest.fixture
def apns(ec_key):
    fake = FakeApns(ec_key.public_key())
    with fake.server:
        yield fake
    close_kept_clients()  # APNs connections are kept open; a later fake may get this port again


def apns_config(tenant, apns, ec_key):
    return ChannelConfigFactory(workspace=tenant.workspace, type="push", provider="apns", is_default=True,
                                settings={"team_id": "TEAM123456", "key_id": "KEY1234567", "bundle_id": "com.acme.app",
                                          "base_url": apns.server.url},
                                secrets={"private_key": private_key_pem(ec_key)})


def test_apns_sends_to_ios_devices_with_a_signed_provider_token(tenant_a, apns, ec_key, person):
    apns_config(tenant_a, apns, ec_key)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent"
    assert delivery.provider_message_id == "00000000-0000-0000-0000-000000000001"
    (request,) = apns.server.requests  # the Android device is not an APNs device
    assert request.path == "/3/device/ios-1"
    assert request.headers["apns-topic"] == "com.acme.app" and request.headers["apns-push-type"] == "alert"
    bearer = request.headers["authorization"].removeprefix("bearer ")
    assert jwt.get_unverified_header(bearer) == {"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"}
    assert request.json() == {
        "aps": {"alert": {"title": "Order ada", "body": "Shipped"}, "sound": "default", "mutable-content": 1},
        "order_id": 7, "kind": "ship", "image": "https://cdn.example.test/i.png",
        "link": "https://acme.example.test/o/1"}
    push(tenant_a, person)
    assert apns.server.requests[1].headers["authorization"] == request.headers["authorization"]  # cached


def test_apns_unregistered_device_is_removed(tenant_a, apns, ec_key, person):
    apns_config(tenant_a, apns, ec_key)
    Device.unscoped.create(workspace=tenant_a.workspace, profile=person, token="ios-2", platform="ios")
    apns.device_replies["ios-1"] = [Reply(410, {"reason": "Unregistered", "timestamp": 1700000000000})]
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent" and delivery.provider_message_id.endswith("1")
    assert device_tokens(person) == ["android-1", "ios-2"]


def test_apns_bad_token_on_the_only_device_is_undeliverable(tenant_a, apns, ec_key, person):
    apns_config(tenant_a, apns, ec_key)
    apns.device_replies["ios-1"] = [Reply(400, {"reason": "BadDeviceToken"})]
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "undeliverable" and delivery.status == DeliveryStatus.UNDELIVERABLE


def test_apns_bad_token_on_the_only_device_removes_it(tenant_a, apns, ec_key, person):
    apns_config(tenant_a, apns, ec_key)
    apns.device_replies["ios-1"] = [Reply(400, {"reason": "BadDeviceToken"})]
    push(tenant_a, person)
    assert device_tokens(person) == ["android-1"]


def test_apns_expired_provider_token_is_renewed_once(tenant_a, apns, ec_key, person):
    apns_config(tenant_a, apns, ec_key)
    apns.device_replies["ios-1"] = [Reply(403, {"reason": "ExpiredProviderToken"})]
    outcome, _ = push(tenant_a, person)
    assert outcome.result == "sent" and len(apns.server.requests) == 2


@pytest.mark.parametrize("reply, result", [
    (Reply(429, {"reason": "TooManyRequests"}), "retry"),
    (Reply(503, {"reason": "ServiceUnavailable"}), "retry"),
    (Reply(500, {"reason": "InternalServerError"}), "failed"),
    (Reply(403, {"reason": "InvalidProviderToken"}), "failed"),
    (Reply(413, {"reason": "PayloadTooLarge"}), "failed"),
])
def test_apns_errors(tenant_a, apns, ec_key, person, reply, result):
    apns_config(tenant_a, apns, ec_key)
    apns.device_replies["ios-1"] = [reply]
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == result
    assert device_tokens(person) == ["android-1", "ios-1"]


def test_apns_key_that_cannot_sign_fails_clearly(tenant_a, apns, person):
    ChannelConfigFactory(workspace=tenant_a.workspace, type="push", provider="apns", is_default=True,
                         settings={"team_id": "T", "key_id": "K", "bundle_id": "b", "base_url": apns.server.url},
                         secrets={"private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"})
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "failed" and "cannot sign" in delivery.failure_reason
    assert apns.server.requests == []
