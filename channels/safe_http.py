"""Outbound HTTP to tenant-defined URLs (webhooks, HTTP SMS gateways, reporting webhooks), with
an SSRF guard.

    safe_request(method, url, ...) -> requests.Response      (HTTP/1.1, kept connections)
    safe_http2_request(method, url, ...) -> httpx.Response   (HTTP/2, kept connections: APNs)

Every hop is checked before a byte is sent: the scheme must be http/https; the host is resolved
once (getaddrinfo, every address) and refused if any address is loopback, private, link-local
(cloud metadata), unspecified, multicast, reserved, carrier-grade NAT, or an IPv6 address that
embeds one of those (IPv4-mapped/compatible, 6to4, Teredo, NAT64), unless it lies inside
settings.ULAK_SSRF_ALLOWLIST. The connection then goes to the address that was checked (the URL
is rewritten to the IP literal, the Host header and TLS SNI/certificate check keep the real host
name), so a second DNS answer cannot point it elsewhere (DNS rebinding). Numeric host spellings
(2130706433, 0x7f.1, 017700000001) are caught because the resolved address is what is checked.

Redirects are followed by hand, at most `max_redirects`, each Location checked again. Proxies
and other settings from the environment are ignored. Response bodies are read up to
MAX_RESPONSE_BYTES (the rest is dropped) and must arrive within the read timeout.

Connections are kept open and reused (a TLS handshake to a provider costs more than the call):
one client per (scheme, host, port, CA bundle) and process — a requests adapter or an httpx
client — pinned to the address checked when it was made (`_Kept`). Within KEEP_RESOLVE_SECONDS no
DNS lookup is made, but the address is checked against the allow rules on every call; a client
idle for KEEP_IDLE_SECONDS is closed and made again (below common NAT idle timeouts, so a kept
connection is not silently dead and a request written into it of unknown outcome).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

# The address policy itself is core's (core/netpolicy.py), shared with SMTP and database hosts.
from core.netpolicy import address_problem  # noqa: F401  (channels/providers/email.py imports it from here)
from core.netpolicy import describe as _describe

MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "Ulak-Webhooks/1.0"

_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Headers that carry credentials: not forwarded when a redirect leaves the original origin.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


class BlockedDestination(ValueError):
    """The URL may not be called: wrong scheme, no host, or a host on a forbidden network."""


@dataclass(frozen=True)
class Destination:
    """A checked URL: where to connect (`ip`) and what the server must be told (`host_header`)."""

    url: str
    scheme: str
    hostname: str  # IDNA-encoded; what TLS checks the certificate against
    port: int
    ip: str
    host_header: str

    @property
    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address (userinfo, path and query kept)."""
        split = urlsplit(self.url)
        userinfo = split.netloc.rpartition("@")[0]
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        netloc = f"{userinfo + '@' if userinfo else ''}{ip}:{self.port}"
        return urlunsplit((self.scheme, netloc, split.path or "/", split.query, ""))


def _split(url: str):
    """(scheme, IDNA host name, port) of an http(s) URL, or BlockedDestination."""
    try:
        split = urlsplit(str(url).strip())
        port = split.port
    except ValueError as exc:
        raise BlockedDestination(f"invalid URL: {exc}") from exc
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedDestination("only http and https URLs may be called")
    if not split.hostname:
        raise BlockedDestination("the URL has no host")
    try:
        hostname = split.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise BlockedDestination(f"invalid host name {split.hostname!r}") from exc
    return scheme, hostname, port or (443 if scheme == "https" else 80), split.port is not None


def _host_header(hostname: str, port: int, explicit_port: bool) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{host}:{port}" if explicit_port else host


def _refuse_literal(hostname: str) -> None:
    """IPv6 literals with a zone id ([fe80::1%25eth0]) may not resolve at all: judge them as written."""
    if "%" not in hostname:
        return
    try:
        ipaddress.ip_address(hostname.split("%", 1)[0])
    except ValueError:
        raise BlockedDestination(f"invalid host name {hostname!r}") from None
    problem = address_problem(hostname)
    if problem:
        raise BlockedDestination(_describe(hostname, hostname.split("%", 1)[0], problem))


def resolve_destination(url: str) -> Destination:
    """Check the URL and resolve its host once; BlockedDestination if any address is forbidden.

    A host that does not resolve raises requests.ConnectionError (DNS may recover)."""
    scheme, hostname, port, explicit_port = _split(url)
    _refuse_literal(hostname)
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise requests.ConnectionError(f"could not resolve {hostname}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise requests.ConnectionError(f"could not resolve {hostname}")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise BlockedDestination(_describe(hostname, address, problem))
    return Destination(url=url, scheme=scheme, hostname=hostname, port=port, ip=addresses[0],
                       host_header=_host_header(hostname, port, explicit_port))


def obvious_problem(url: str) -> str | None:
    """A cheap save-time check without DNS: scheme, host, IP literals (every numeric spelling)
    and localhost names. The full check still runs on every call."""
    try:
        _, hostname, port, _ = _split(url)
        _refuse_literal(hostname)
    except BlockedDestination as exc:
        return str(exc)
    if hostname.rstrip(".") == "localhost" or hostname.rstrip(".").endswith(".localhost"):
        problem = address_problem("127.0.0.1")  # RFC 6761: always loopback
        return _describe(hostname, "127.0.0.1", problem) if problem else None
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None  # a name: checked when called
    for info in infos:
        problem = address_problem(info[4][0])
        if problem:
            return _describe(hostname, info[4][0].split("%", 1)[0], problem)
    return None


class _PinnedAdapter(HTTPAdapter):
    """Connects to the IP literal in the URL while TLS sends SNI for, and checks the certificate
    against, the real host name."""

    def __init__(self, tls_hostname: str):
        self._tls_hostname = tls_hostname
        # One pool (one address); a connection per thread calling at once, the surplus not kept.
        super().__init__(pool_connections=1, pool_maxsize=KEEP_CONNECTIONS, max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self._tls_hostname
            pool_kwargs["assert_hostname"] = self._tls_hostname
        return host_params, pool_kwargs


def _timeouts(timeout) -> tuple[float, float]:
    if timeout is None:
        timeout = settings.ULAK_HTTP_TIMEOUT_SECONDS
    if isinstance(timeout, (tuple, list)):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


def _limited_body(chunks, read_timeout: float, too_slow) -> bytes:
    """At most MAX_RESPONSE_BYTES of `chunks`, all of them within `read_timeout` (a slow trickle is a
    timeout: raises `too_slow(message)`)."""
    deadline = time.monotonic() + read_timeout
    kept, size = [], 0
    for chunk in chunks:
        kept.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
        if time.monotonic() > deadline:
            raise too_slow(f"the response body took longer than {read_timeout:g} s")
    return b"".join(kept)[:MAX_RESPONSE_BYTES]


def _read_body(response: requests.Response, read_timeout: float) -> None:
    """Read at most MAX_RESPONSE_BYTES, all of it within `read_timeout` (a slow trickle is a timeout)."""
    try:
        body = _limited_body(response.iter_content(64 * 1024), read_timeout,
                             lambda message: requests.Timeout(message, response=response))
    finally:
        response.close()
    response._content = body
    response._content_consumed = True


def _send_once(method: str, url: str, *, headers: dict, data, json, timeouts, verify):
    """One hop on the kept adapter of its destination. The body read to its end gives the
    connection back to the pool; one cut at MAX_RESPONSE_BYTES (or failed) closes it."""
    destination, adapter = _h1_kept.pinned(url, verify)
    request = requests.Request(method, destination.pinned_url, headers=headers, data=data, json=json).prepare()
    request.headers.setdefault("User-Agent", USER_AGENT)
    request.headers["Host"] = destination.host_header
    response = adapter.send(request, stream=True, timeout=timeouts, verify=verify, proxies={})
    _read_body(response, timeouts[1])
    response.url = destination.url
    return response


def _origin(url: str) -> tuple:
    split = urlsplit(url)
    return split.scheme.lower(), split.hostname, split.port


def safe_request(method: str, url: str, *, headers: dict | None = None, data=None, json=None,
                 timeout=None, max_redirects: int = 3, verify: bool | str = True) -> requests.Response:
    """Call a tenant-defined URL; raises BlockedDestination before connecting anywhere forbidden,
    requests.TooManyRedirects past `max_redirects`, and requests' usual exceptions otherwise.

    `timeout`: seconds (or (connect, read)); default settings.ULAK_HTTP_TIMEOUT_SECONDS.
    `verify`: TLS verification as in requests (a CA bundle path for private CAs)."""
    method = method.upper()
    headers = dict(headers or {})
    timeouts = _timeouts(timeout)
    history: list[requests.Response] = []
    for _hop in range(max_redirects + 1):
        response = _send_once(method, url, headers=headers, data=data, json=json, timeouts=timeouts, verify=verify)
        if response.status_code not in _REDIRECT_STATUSES or "location" not in response.headers:
            response.history = history
            return response
        history.append(response)
        next_url = urljoin(url, response.headers["location"])
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            # What browsers and requests do: the follow-up is a GET without the body.
            method = "GET" if method != "HEAD" else method
            data = json = None
            headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
        if _origin(next_url) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        url = next_url
    raise requests.TooManyRedirects(f"more than {max_redirects} redirects", response=history[-1])


# --- kept clients ------------------------------------------------------------------------------------

KEEP_MAX_CLIENTS = 32  # per kind (HTTP/1.1 adapters, HTTP/2 clients) and process
KEEP_CONNECTIONS = 10  # per client: threads of one process calling one host at once
# How long a client's checked address is used before the host is resolved again. Within it no DNS
# lookup is made; the address is still checked against the allow rules on every call.
KEEP_RESOLVE_SECONDS = 300
# A client unused this long is closed and made again; below common NAT idle timeouts (AWS: 350 s).
KEEP_IDLE_SECONDS = 300


@dataclass
class _Pinned:
    client: object
    ip: str
    resolved_at: float
    used_at: float


class _Kept:
    """Clients kept per (scheme, host, port, verify), each pinned to the address checked when it
    was made: `make(destination, verify)` builds one, `close(client)` ends it. LRU, at most
    KEEP_MAX_CLIENTS; forgotten (not closed: the parent's sockets are not ours) in a forked child."""

    def __init__(self, make, close):
        self._make, self._close = make, close
        self._entries: OrderedDict[tuple, _Pinned] = OrderedDict()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def close_all(self) -> None:
        with self._lock:
            clients = [entry.client for entry in self._entries.values()]
            self._entries.clear()
        for client in clients:
            self._close(client)

    def pinned(self, url: str, verify: bool | str) -> tuple[Destination, object]:
        """The checked destination for `url` and the client kept for it. Raises BlockedDestination,
        or requests.ConnectionError when the name does not resolve (nothing was sent)."""
        scheme, hostname, port, explicit_port = _split(url)
        key = (scheme, hostname, port, verify)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            fresh = (entry is not None and now - entry.resolved_at < KEEP_RESOLVE_SECONDS
                     and now - entry.used_at < KEEP_IDLE_SECONDS)
            if fresh:
                entry.used_at = now
                self._entries.move_to_end(key)
        if fresh and address_problem(entry.ip) is None:
            return Destination(url=url, scheme=scheme, hostname=hostname, port=port, ip=entry.ip,
                               host_header=_host_header(hostname, port, explicit_port)), entry.client
        destination = resolve_destination(url)
        retired = []
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.ip == destination.ip and now - current.used_at < KEEP_IDLE_SECONDS:
                current.resolved_at = current.used_at = now
                self._entries.move_to_end(key)
                return destination, current.client
            if current is not None:
                retired.append(self._entries.pop(key).client)
            client = self._make(destination, verify)
            self._entries[key] = _Pinned(client, destination.ip, now, now)
            while len(self._entries) > KEEP_MAX_CLIENTS:
                retired.append(self._entries.popitem(last=False)[1].client)
        for old in retired:
            self._close(old)
        return destination, client


_h1_kept = _Kept(lambda destination, verify: _PinnedAdapter(destination.hostname), lambda adapter: adapter.close())


# --- HTTP/2 (httpx), for providers that require it (APNs) --------------------------------------------
#
# Same guard, different client: the destination is checked with resolve_destination and the
# connection goes to the checked address, with the Host header (HTTP/2 `:authority`) and TLS SNI /
# certificate check (httpcore's `sni_hostname` request extension) on the real host name.


def _ssl_context(verify: bool | str):
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify  # True: certifi's bundle, as requests uses


def _new_client(destination: Destination, verify: bool | str) -> httpx.Client:
    return httpx.Client(http2=True, trust_env=False, follow_redirects=False, verify=_ssl_context(verify),
                        limits=httpx.Limits(max_connections=KEEP_CONNECTIONS, max_keepalive_connections=KEEP_CONNECTIONS,
                                            keepalive_expiry=KEEP_IDLE_SECONDS),
                        headers={"User-Agent": USER_AGENT})


_h2_kept = _Kept(_new_client, lambda client: client.close())


def close_kept_clients() -> None:
    """Close every kept client and its connections, HTTP/1.1 and HTTP/2 (worker shutdown, tests)."""
    _h1_kept.close_all()
    _h2_kept.close_all()


def _pinned_destination(url: str, verify: bool | str) -> tuple[Destination, httpx.Client]:
    try:
        return _h2_kept.pinned(url, verify)
    except requests.ConnectionError as exc:  # the name did not resolve: nothing was sent
        raise httpx.ConnectError(str(exc)) from exc


def _read_limited(response: httpx.Response, read_timeout: float) -> None:
    try:
        body = _limited_body(response.iter_bytes(), read_timeout,
                             lambda message: httpx.ReadTimeout(message, request=response.request))
    finally:
        response.close()
    response._content = body


def safe_http2_request(method: str, url: str, *, headers: dict | None = None, json=None, content=None,
                       timeout=None, verify: bool | str = True) -> httpx.Response:
    """One request over HTTP/2 (https with ALPN h2; plain http and servers without h2 get HTTP/1.1)
    on a kept connection, redirects not followed (a 3xx is returned as is).

    Raises BlockedDestination before connecting anywhere forbidden, httpx.ConnectError when the
    name does not resolve or the connection cannot be made (nothing was sent), and httpx's other
    exceptions otherwise (a ReadTimeout or RemoteProtocolError: the request may have arrived).
    `timeout`/`verify` as in safe_request (`verify` a CA bundle path for private CAs)."""
    connect_timeout, read_timeout = _timeouts(timeout)
    destination, client = _pinned_destination(url, verify)
    request_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    request_headers["Host"] = destination.host_header
    request = client.build_request(
        method.upper(), destination.pinned_url, headers=request_headers, json=json, content=content,
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout),
        extensions={"sni_hostname": destination.hostname})
    try:
        response = client.send(request, stream=True)
    except RuntimeError as exc:  # another thread retired (closed) this client first: nothing was sent
        if not client.is_closed:
            raise
        raise httpx.ConnectError("the kept connection was closed before sending", request=request) from exc
    _read_limited(response, read_timeout)
    return response
