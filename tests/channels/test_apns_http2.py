"""APNs over real HTTP/2: a local TLS server that speaks only h2 (the `h2` library, ALPN "h2"),
with a certificate made here for "localhost" and trusted through ULAK_APNS_CA_BUNDLE.

The base URL uses the name "localhost" (it resolves to 127.0.0.1, which the test settings'
ULAK_SSRF_ALLOWLIST lets through), so the SSRF guard's pinning is exercised: the connection goes
to the checked address while TLS SNI, the certificate check and `:authority` use the name."""

import itertools
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from channels.models import DeliveryStatus
from channels.safe_http import BlockedDestination, close_kept_clients, safe_http2_request
from tests.support.crypto import private_key_pem, self_signed_certificate
from tests.support.delivering import device_tokens, queue_and_send
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, Reply, free_port
from profiles.models import Device

pytestmark = pytest.mark.django_db

TEAM, KEY_ID, BUNDLE = "TEAM123456", "KEY1234567", "com.acme.app"


# --- a TLS HTTP/2 server -------------------------------------------------------------------------

@dataclass
class H2Request:
    headers: dict  # pseudo-headers (":method", ":path", ":authority", ":scheme") included
    body: bytes
    connection: int  # 1 for the first TLS connection the server accepted, 2 for the next...
    stream_id: int

    def json(self):
        return json.loads(self.body)


class H2Server:
    """HTTP/2 over TLS on 127.0.0.1, h2 only (a client that does not negotiate h2 is dropped).
    `handler(H2Request) -> Reply`; records requests, SNI names, ALPN results and connections."""

    def __init__(self, cert_path: str, key_path: str, handler):
        self.handler = handler
        self.requests: list[H2Request] = []
        self.sni: list[str] = []
        self.alpn: list[str | None] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_path, key_path)
        self._context.set_alpn_protocols(["h2"])
        self._context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            self._sockets.append(raw)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket):
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # e.g. the client refused our certificate
            return
        with tls:
            self.alpn.append(tls.selected_alpn_protocol())
            if tls.selected_alpn_protocol() != "h2":
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            conn.initiate_connection()
            streams: dict[int, tuple[dict, bytearray]] = {}
            try:
                tls.sendall(conn.data_to_send())
                while data := tls.recv(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            streams[event.stream_id] = (dict(event.headers), bytearray())
                        elif isinstance(event, h2.events.DataReceived):
                            streams[event.stream_id][1].extend(event.data)
                            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        elif isinstance(event, h2.events.StreamEnded):
                            headers, body = streams.pop(event.stream_id)
                            request = H2Request(headers, bytes(body), number, event.stream_id)
                            with self._lock:
                                self.requests.append(request)
                            self._answer(conn, event.stream_id, self.handler(request))
                    tls.sendall(conn.data_to_send())
            except OSError:
                return  # the client went away (a read timeout, or the test ended)

    @staticmethod
    def _answer(conn, stream_id: int, reply: Reply):
        payload, headers = reply.body, {k.lower(): v for k, v in reply.headers.items()}
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
            headers.setdefault("content-type", "application/json")
        elif isinstance(payload, str):
            payload = payload.encode()
        conn.send_headers(stream_id, [(":status", str(reply.status)), ("content-length", str(len(payload))),
                                      *headers.items()], end_stream=not payload)
        if payload:
            conn.send_data(stream_id, payload, end_stream=True)


# --- a fake APNs on it -----------------------------------------------------------------------------

class FakeApnsH2:
    def __init__(self, cert_path, key_path):
        self.device_replies = {}  # device token → list of replies, used in order
        self.delay = 0.0
        self.ids = itertools.count(1)
        self.server = H2Server(cert_path, key_path, self.handle)

    def handle(self, request: H2Request) -> Reply:
        time.sleep(self.delay)
        token = request.headers[":path"].removeprefix("/3/device/")
        if self.device_replies.get(token):
            return self.device_replies[token].pop(0)
        return Reply(200, b"", {"apns-id": f"00000000-0000-0000-0000-{next(self.ids):012d}"})

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server.port}"


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path, "localhost")


@pytest.fixture
def trusted(settings, certificate):
    settings.ULAK_APNS_CA_BUNDLE = certificate[0]
    return certificate[0]


@pytest.fixture
def apple(certificate, trusted):
    fake = FakeApnsH2(*certificate)
    with fake.server:
        yield fake
    close_kept_clients()


@pytest.fixture
def person(tenant_a):
    person = ProfileFactory(workspace=tenant_a.workspace, external_id="ada")
    Device.unscoped.create(workspace=tenant_a.workspace, profile=person, token="ios-1", platform="ios")
    return person


def apns_config(tenant, ec_key, base_url):
    return ChannelConfigFactory(workspace=tenant.workspace, type="push", provider="apns", is_default=True,
                                settings={"team_id": TEAM, "key_id": KEY_ID, "bundle_id": BUNDLE, "base_url": base_url},
                                secrets={"private_key": private_key_pem(ec_key)})


def push(tenant, person):
    content = {"title": "Order {{ customer.id }}", "body": "Shipped", "link": "https://acme.example.test/o/1",
               "custom_data": {"order_id": 7}}
    return queue_and_send(tenant, person, channel="push", content=content)


# --- the provider over HTTP/2 ----------------------------------------------------------------------

def test_push_arrives_over_http2_with_a_signed_token_topic_and_body(tenant_a, apple, ec_key, person):
    apns_config(tenant_a, ec_key, apple.url)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent" and delivery.status == DeliveryStatus.SENT
    assert delivery.provider_message_id == "00000000-0000-0000-0000-000000000001"
    assert apple.server.alpn == ["h2"] and apple.server.sni == ["localhost"]
    (request,) = apple.server.requests
    headers = request.headers
    assert (headers[":method"], headers[":scheme"], headers[":path"], headers[":authority"]) == (
        "POST", "https", "/3/device/ios-1", f"localhost:{apple.server.port}")
    scheme, _, bearer = headers["authorization"].partition(" ")
    assert scheme == "bearer"
    assert jwt.get_unverified_header(bearer) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(bearer, ec_key.public_key(), algorithms=["ES256"])
    assert claims["iss"] == TEAM and abs(claims["iat"] - time.time()) < 60
    assert (headers["apns-topic"], headers["apns-push-type"], headers["apns-priority"]) == (BUNDLE, "alert", "10")
    assert headers["content-type"] == "application/json"
    assert request.json() == {"aps": {"alert": {"title": "Order ada", "body": "Shipped"}, "sound": "default"},
                              "order_id": 7, "link": "https://acme.example.test/o/1"}


def test_a_signature_from_another_key_does_not_verify(tenant_a, apple, ec_key, person):
    """The JWT check above can fail: the same token does not verify with a different key."""
    apns_config(tenant_a, ec_key, apple.url)
    push(tenant_a, person)
    bearer = apple.server.requests[0].headers["authorization"].removeprefix("bearer ")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(bearer, ec.generate_private_key(ec.SECP256R1()).public_key(), algorithms=["ES256"])


def test_unregistered_410_removes_the_device(tenant_a, apple, ec_key, person):
    apns_config(tenant_a, ec_key, apple.url)
    Device.unscoped.create(workspace=tenant_a.workspace, profile=person, token="ios-2", platform="ios")
    apple.device_replies["ios-1"] = [Reply(410, {"reason": "Unregistered", "timestamp": 1700000000000})]
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "sent" and delivery.provider_message_id.endswith("1")
    assert device_tokens(person) == ["ios-2"]
    assert sorted(r.headers[":path"] for r in apple.server.requests) == ["/3/device/ios-1", "/3/device/ios-2"]


def test_every_device_unregistered_is_undeliverable(tenant_a, apple, ec_key, person):
    apns_config(tenant_a, ec_key, apple.url)
    apple.device_replies["ios-1"] = [Reply(410, {"reason": "Unregistered"})]
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "undeliverable" and device_tokens(person) == []


def test_expired_provider_token_is_renewed_on_the_same_connection(tenant_a, apple, ec_key, person):
    apns_config(tenant_a, ec_key, apple.url)
    apple.device_replies["ios-1"] = [Reply(403, {"reason": "ExpiredProviderToken"})]
    outcome, _ = push(tenant_a, person)
    assert outcome.result == "sent"
    assert [(r.connection, r.stream_id) for r in apple.server.requests] == [(1, 1), (1, 3)]


def test_the_connection_is_kept_and_reused_across_deliveries(tenant_a, apple, ec_key, person):
    apns_config(tenant_a, ec_key, apple.url)
    push(tenant_a, person)
    push(tenant_a, person)
    assert apple.server.connections == 1 and len(apple.server.alpn) == 1
    assert [r.stream_id for r in apple.server.requests] == [1, 3]


def test_a_certificate_for_another_name_fails_without_sending(tenant_a, tmp_path, settings, ec_key, person):
    cert, key = self_signed_certificate(tmp_path, "other.example")
    settings.ULAK_APNS_CA_BUNDLE = cert  # trusted, but not for "localhost"
    fake = FakeApnsH2(cert, key)
    with fake.server:
        apns_config(tenant_a, ec_key, fake.url)
        outcome, delivery = push(tenant_a, person)
    close_kept_clients()
    assert outcome.result == "failed" and "certificate" in delivery.failure_reason
    assert fake.server.requests == [] and fake.server.connections == 0


def test_an_untrusted_certificate_fails_without_sending(tenant_a, certificate, ec_key, person):
    fake = FakeApnsH2(*certificate)  # ULAK_APNS_CA_BUNDLE unset: certifi's CAs do not know it
    with fake.server:
        apns_config(tenant_a, ec_key, fake.url)
        outcome, delivery = push(tenant_a, person)
    close_kept_clients()
    assert outcome.result == "failed" and "certificate" in delivery.failure_reason
    assert fake.server.requests == []


def test_a_forbidden_destination_is_refused_before_connecting(tenant_a, apple, ec_key, person, settings):
    settings.ULAK_SSRF_ALLOWLIST = []
    apns_config(tenant_a, ec_key, apple.url)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "failed" and "not allowed" in delivery.failure_reason
    assert "loopback" in delivery.failure_reason
    assert apple.server.alpn == [] and apple.server.requests == []


def test_connection_refused_is_retried(tenant_a, trusted, ec_key, person):
    apns_config(tenant_a, ec_key, f"https://localhost:{free_port()}")
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "retry" and delivery.status == DeliveryStatus.QUEUED


def test_no_answer_in_time_is_not_sent_again(tenant_a, apple, ec_key, person, settings):
    settings.ULAK_HTTP_TIMEOUT_SECONDS = 1
    apple.delay = 2.5
    apns_config(tenant_a, ec_key, apple.url)
    outcome, delivery = push(tenant_a, person)
    assert outcome.result == "failed" and "outcome unknown" in delivery.failure_reason
    assert len(apple.server.requests) == 1


# --- safe_http2_request ----------------------------------------------------------------------------

def test_safe_http2_request_speaks_h2_to_the_checked_address(apple, trusted):
    response = safe_http2_request("POST", apple.url + "/3/device/abc", headers={"apns-topic": "t"},
                                  json={"a": 1}, verify=trusted)
    assert response.status_code == 200 and response.http_version == "HTTP/2"
    assert response.headers["apns-id"].endswith("1") and response.content == b""
    (request,) = apple.server.requests
    assert request.headers[":authority"] == f"localhost:{apple.server.port}" and request.json() == {"a": 1}


def test_safe_http2_request_rechecks_the_kept_address_on_every_call(apple, trusted, settings):
    safe_http2_request("GET", apple.url + "/3/device/a", verify=trusted)
    settings.ULAK_SSRF_ALLOWLIST = []
    with pytest.raises(BlockedDestination, match="loopback"):
        safe_http2_request("GET", apple.url + "/3/device/b", verify=trusted)
    assert len(apple.server.requests) == 1


def test_plain_http_falls_back_to_http11():
    with FakeHttpServer(lambda request: Reply(200, {"ok": True}, {"apns-id": "x"})) as fake:
        response = safe_http2_request("POST", fake.url + "/3/device/t", headers={"Host": "evil.example"},
                                      json={"b": 2})
        close_kept_clients()
    assert response.http_version == "HTTP/1.1" and response.json() == {"ok": True}
    (request,) = fake.requests
    assert request.headers["host"] == f"127.0.0.1:{fake.port}"  # a caller's Host header is replaced
    assert request.json() == {"b": 2}


def test_an_unresolvable_name_is_a_connect_error():
    with pytest.raises(httpx.ConnectError, match="could not resolve"):
        safe_http2_request("GET", "https://no-such-host.invalid/")


def test_a_forked_worker_does_not_share_the_parents_connection(apple, trusted):
    safe_http2_request("GET", apple.url + "/3/device/parent", verify=trusted)
    pid = os.fork()
    if pid == 0:  # the child (a Celery prefork worker): must open its own connection
        code = 1
        try:
            code = 0 if safe_http2_request("GET", apple.url + "/3/device/child", verify=trusted).status_code == 200 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    safe_http2_request("GET", apple.url + "/3/device/parent-again", verify=trusted)
    seen = {r.headers[":path"]: r.connection for r in apple.server.requests}
    assert seen["/3/device/parent"] == seen["/3/device/parent-again"] != seen["/3/device/child"]
    assert apple.server.connections == 2
