"""The SSRF guard: every forbidden destination is refused before a byte is sent, redirects are
checked hop by hop, and the connection goes to the address that was checked."""

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from channels import safe_http
from channels.safe_http import MAX_RESPONSE_BYTES, BlockedDestination, obvious_problem, safe_request
from tests.support.crypto import self_signed_certificate
from tests.support.fakes import FakeHttpServer, Reply


@pytest.fixture
def no_allowlist(settings):
    settings.ULAK_SSRF_ALLOWLIST = []


@pytest.fixture
def fake():
    with FakeHttpServer() as server:
        yield server


def test_allowed_destination_is_called_with_body_headers_and_host(fake):
    response = safe_request("POST", fake.url + "/hook?x=1", headers={"X-Test": "yes"}, json={"a": 1})
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.url == fake.url + "/hook?x=1"
    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("POST", "/hook", {"x": ["1"]})
    assert request.json() == {"a": 1}
    assert request.headers["x-test"] == "yes" and request.headers["host"] == f"127.0.0.1:{fake.port}"


def test_a_host_name_keeps_its_host_header_while_connecting_to_the_checked_address(fake):
    response = safe_request("GET", f"http://localhost:{fake.port}/named")
    assert response.status_code == 200
    assert fake.requests[0].headers["host"] == f"localhost:{fake.port}"


def test_proxies_from_the_environment_are_ignored(fake, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://192.0.2.1:9")  # unroutable: a proxied request would hang
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert safe_request("GET", fake.url + "/direct", timeout=3).status_code == 200
    assert len(fake.requests) == 1


BLOCKED_HOSTS = [
    "127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "[::]",
    "169.254.169.254", "10.1.2.3", "172.16.5.4", "192.168.1.10", "100.64.0.1", "224.0.0.1", "240.0.0.1",
    "2130706433", "0x7f.1", "0x7f000001", "017700000001", "127.1", "0",
    "[fe80::1]", "[fc00::1]", "[2002:7f00:1::1]", "[64:ff9b::7f00:1]", "[::127.0.0.1]",
]


@pytest.fixture(scope="module")
def bait():
    """A server every loopback spelling would reach, were it let through."""
    with FakeHttpServer() as server:
        yield server


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_forbidden_destinations_are_refused_before_connecting(no_allowlist, bait, host):
    with pytest.raises(BlockedDestination):
        safe_request("POST", f"http://{host}:{bait.port}/steal", json={"secret": 1})
    assert bait.requests == []


def test_metadata_address_names_the_reason(no_allowlist):
    with pytest.raises(BlockedDestination, match="169.254.169.254 is a link-local address"):
        safe_request("GET", "http://169.254.169.254/latest/meta-data/")


def test_numeric_spelling_is_judged_by_the_address_it_resolves_to(no_allowlist, fake):
    with pytest.raises(BlockedDestination, match=r"2130706433 \(127\.0\.0\.1\) is a loopback address"):
        safe_request("GET", f"http://2130706433:{fake.port}/")


def test_the_allowlist_lets_only_its_own_addresses_through(fake):
    # Test settings allow 127.0.0.1/32: other loopback addresses and mapped forms stay blocked.
    for url in (f"http://127.0.0.2:{fake.port}/", f"http://[::ffff:127.0.0.1]:{fake.port}/",
                f"http://[::1]:{fake.port}/"):
        with pytest.raises(BlockedDestination):
            safe_request("GET", url)
    assert fake.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                                 "http:///nohost", "javascript:alert(1)", "http://example.com:99999/"])
def test_only_http_urls_with_a_host_may_be_called(url):
    with pytest.raises(BlockedDestination):
        safe_request("GET", url)


def test_redirect_to_another_loopback_address_is_blocked():
    with FakeHttpServer(host="127.0.0.2") as target, FakeHttpServer(
            lambda r: Reply(302, headers={"Location": f"http://127.0.0.2:{target.port}/internal"})) as start:
        with pytest.raises(BlockedDestination, match="127.0.0.2 is a loopback address"):
            safe_request("GET", start.url + "/go")
    assert len(start.requests) == 1 and target.requests == []


def test_redirect_to_a_name_resolving_to_a_forbidden_address_is_blocked(settings):
    settings.ULAK_SSRF_ALLOWLIST = ["127.0.0.2/32"]  # only the first server is allowed
    with FakeHttpServer() as target, FakeHttpServer(
            lambda r: Reply(301, headers={"Location": f"http://localhost:{target.port}/admin"}),
            host="127.0.0.2") as start:
        with pytest.raises(BlockedDestination, match=r"localhost \(127\.0\.0\.1\) is a loopback address"):
            safe_request("POST", f"http://127.0.0.2:{start.port}/go", json={})
    assert len(start.requests) == 1 and target.requests == []


def test_allowed_redirects_are_followed_and_rechecked(fake):
    def handler(request):
        if request.path == "/a":
            return Reply(307, headers={"Location": "/b"})
        if request.path == "/b":
            return Reply(302, headers={"Location": f"{fake.url}/c"})
        return Reply(200, {"at": request.path})

    fake.handler = handler
    response = safe_request("POST", fake.url + "/a", json={"n": 1})
    assert response.json() == {"at": "/c"} and [r.status_code for r in response.history] == [307, 302]
    a, b, c = fake.requests
    assert (b.method, b.json()) == ("POST", {"n": 1})  # 307 keeps the method and body
    assert (c.method, c.body) == ("GET", b"")  # 302 after a POST becomes a GET without body


def test_too_many_redirects_stop(fake):
    fake.handler = lambda r: Reply(302, headers={"Location": "/again"})
    with pytest.raises(requests.TooManyRedirects):
        safe_request("GET", fake.url + "/loop", max_redirects=2)
    assert len(fake.requests) == 3
    with pytest.raises(requests.TooManyRedirects):
        safe_request("GET", fake.url + "/loop", max_redirects=0)


def test_credentials_are_not_forwarded_to_another_origin():
    with FakeHttpServer() as other, FakeHttpServer(
            lambda r: Reply(307, headers={"Location": f"{other.url}/x"})) as start:
        safe_request("POST", start.url + "/", headers={"Authorization": "Bearer s3cret", "X-Keep": "1"}, data=b"x")
    assert start.requests[0].headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in other.requests[0].headers and other.requests[0].headers["x-keep"] == "1"


def test_slow_receiver_times_out(fake):
    fake.handler = lambda r: (time.sleep(2), Reply(200))[1]
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        safe_request("GET", fake.url + "/slow", timeout=0.5)
    assert time.monotonic() - started < 1.8


def test_timeout_defaults_to_the_setting(fake, settings):
    settings.ULAK_HTTP_TIMEOUT_SECONDS = 1
    fake.handler = lambda r: (time.sleep(2.5), Reply(200))[1]
    with pytest.raises(requests.Timeout):
        safe_request("GET", fake.url + "/slow")


def test_response_body_is_capped(fake):
    fake.handler = lambda r: Reply(200, b"x" * (MAX_RESPONSE_BYTES + 1000))
    assert len(safe_request("GET", fake.url + "/big").content) == MAX_RESPONSE_BYTES


# --- kept connections ---------------------------------------------------------------------------

def test_calls_to_one_host_share_a_kept_connection(fake):
    for i in range(3):
        assert safe_request("POST", f"{fake.url}/hook/{i}", json={"i": i}).json() == {"ok": True}
    assert [(r.path, r.json()) for r in fake.requests] == [(f"/hook/{i}", {"i": i}) for i in range(3)]
    assert fake.connections == 1


def test_a_body_cut_at_the_cap_or_a_timeout_does_not_leave_its_connection_for_the_next_call(fake):
    def handler(request):
        if request.path == "/slow":
            time.sleep(1)
        return Reply(200, b"x" * (MAX_RESPONSE_BYTES + 1000) if request.path == "/big" else b"small")

    fake.handler = handler
    assert len(safe_request("GET", fake.url + "/big").content) == MAX_RESPONSE_BYTES
    assert safe_request("GET", fake.url + "/after-big").content == b"small"
    with pytest.raises(requests.Timeout):
        safe_request("GET", fake.url + "/slow", timeout=0.3)
    assert safe_request("GET", fake.url + "/after-slow").content == b"small"  # not the slow one's late answer
    assert fake.connections == 3


def test_a_kept_connection_closed_by_the_server_is_replaced_not_failed(fake):
    safe_request("GET", fake.url + "/one")
    fake.drop_connections()  # the server closed it while idle
    assert safe_request("GET", fake.url + "/two").status_code == 200
    fake.handler = lambda request: Reply(200, b"bye", headers={"Connection": "close"})
    assert safe_request("GET", fake.url + "/three").content == b"bye"  # on the second connection, which ends
    assert safe_request("GET", fake.url + "/four").content == b"bye"
    assert [r.path for r in fake.requests] == ["/one", "/two", "/three", "/four"] and fake.connections == 3


def test_a_kept_connection_is_still_checked_against_the_allow_rules(fake, settings):
    safe_request("GET", fake.url + "/first")
    settings.ULAK_SSRF_ALLOWLIST = []
    with pytest.raises(BlockedDestination, match="loopback"):
        safe_request("GET", fake.url + "/second")
    assert [r.path for r in fake.requests] == ["/first"]


def test_a_client_idle_too_long_is_made_again(fake):
    safe_request("GET", fake.url + "/one")
    for entry in safe_http._h1_kept._entries.values():  # as if KEEP_IDLE_SECONDS had passed since
        entry.used_at -= safe_http.KEEP_IDLE_SECONDS + 1
    safe_request("GET", fake.url + "/two")
    assert fake.connections == 2 and len(safe_http._h1_kept._entries) == 1


def test_obvious_problem_needs_no_dns(no_allowlist):
    assert "loopback" in obvious_problem("http://localhost:8000/x")
    assert "loopback" in obvious_problem("http://2130706433/")
    assert "link-local" in obvious_problem("http://169.254.169.254/")
    assert "only http and https" in obvious_problem("ftp://example.com/")
    assert obvious_problem("https://hooks.example.com/x") is None


# --- TLS: the certificate is checked against the host name, not the pinned address ---------------

class _TlsServer:
    def __init__(self, cert_path, key_path):
        self.hosts, self.sni = [], []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.handle_error = lambda *args: None  # a refused handshake is what some tests expect
        self.port = self.server.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_tls_sends_sni_and_checks_the_certificate_against_the_host_name(tmp_path):
    cert, key = self_signed_certificate(tmp_path, "localhost")
    with _TlsServer(cert, key) as server:
        response = safe_request("GET", f"https://localhost:{server.port}/", verify=cert)
    assert response.status_code == 200 and response.text == "ok"
    assert server.sni == ["localhost"] and server.hosts == [f"localhost:{server.port}"]


def test_tls_certificate_for_another_name_is_refused(tmp_path):
    cert, key = self_signed_certificate(tmp_path, "other.example")
    with _TlsServer(cert, key) as server:
        with pytest.raises(requests.exceptions.SSLError):
            safe_request("GET", f"https://localhost:{server.port}/", verify=cert)
    assert server.hosts == []
