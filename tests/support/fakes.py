"""Real local servers that stand in for external providers in tests.

`FakeHttpServer` is a threaded HTTP server on 127.0.0.1 that records every request and answers
through a handler you give it (status, headers, body), so a test can speak a provider's wire
format (Twilio, WhatsApp Cloud, FCM, APNs, webhooks). `FakeSmtpServer` is an aiosmtpd server that
keeps every message it receives, counts the connections made to it and can drop them on demand.
Both are context managers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict:
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict = field(default_factory=dict)


def _default_handler(request: RecordedRequest) -> Reply:
    return Reply(200, {"ok": True})


class FakeHttpServer:
    """`handler(request) -> Reply`; `requests` lists what arrived, in order; `connections` counts
    the TCP connections accepted (HTTP/1.1 keep-alive: several requests may share one)."""

    def __init__(self, handler=_default_handler, *, host: str = "127.0.0.1"):
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in one segment: with keep-alive, Nagle's algorithm would hold
            # the body back until the client's delayed ACK (40 ms a response).
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with fake._lock:
                    fake.connections += 1
                    fake._sockets.append(self.connection)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = RecordedRequest(self.command, split.path, parse_qs(split.query),
                                          {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(request)
                reply = fake.handler(request)
                payload = reply.body
                headers = dict(reply.headers)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        # A handler thread would otherwise go on answering on a kept-alive connection: a client's
        # kept connection sees the close and is not reused for a later fake on the same port.
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every connection accepted so far, as a server closing idle keep-alive connections does."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class FakeSmtpServer:
    """An SMTP server (aiosmtpd) on `host` (127.0.0.1) and `port` (a free one) keeping every
    message: `messages` holds (envelope sender, recipients, email.message.EmailMessage).

    What it counts: `connections` (connections made by clients), `open_connections` (those still
    open), `quits` (sessions the client ended with QUIT) and `logins` ((user, password) of each
    AUTH; any login is accepted when `accept_logins`).

    What it does on demand: `refuse[address] = "550 ..."` answers RCPT TO for that address;
    `drop("MAIL", times=1, reply=None)` closes the connection when the next MAIL FROM arrives,
    after sending `reply` if given (a "421 ..."), without answering the command;
    `drop("DATA")` keeps the next message and then closes the connection without answering it (the
    client cannot know the message arrived); `close_connections()` closes every open connection
    from the server's side after a 421 (what a server's idle timeout does).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, accept_logins: bool = False):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult

        self.host = host
        self.messages: list[tuple[str, list[str], object]] = []
        self.refuse: dict[str, str] = {}
        self.connections = 0
        self.quits = 0
        self.logins: list[tuple[str, str]] = []
        self._drops: dict[str, list[str | None]] = {}
        self._sessions: set = set()
        self._counting = False
        fake = self

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, mail_options):
                if fake._dropped("MAIL", server):
                    return "421 dropped"  # never reaches the client: the connection is closed
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 OK"

            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in fake.refuse:
                    return fake.refuse[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.original_content, policy=policy.default)
                fake.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
                fake._dropped("DATA", server)
                return "250 Message accepted"

            async def handle_QUIT(self, server, session, envelope):
                fake.quits += 1
                return "221 Bye"

        class Session(SMTP):
            def connection_made(self, transport):
                first = self.transport is None
                super().connection_made(transport)
                if first and fake._counting:  # not the controller's own readiness probe
                    fake.connections += 1
                    fake._sessions.add(self)

            def connection_lost(self, error):
                fake._sessions.discard(self)
                super().connection_lost(error)

        class SessionController(Controller):
            def factory(self):
                return Session(self.handler, **self.SMTP_kwargs)

        def authenticate(server, session, envelope, mechanism, auth_data):
            fake.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=True)

        options = {"auth_require_tls": False, "authenticator": authenticate} if accept_logins else {}
        self.port = port or free_port(host)
        self._controller = SessionController(Handler(), hostname=host, port=self.port, **options)

    @property
    def open_connections(self) -> int:
        return len(self._sessions)

    def drop(self, command: str, *, times: int = 1, reply: str | None = None) -> None:
        self._drops[command.upper()] = [reply] * times

    def _dropped(self, command: str, server) -> bool:
        pending = self._drops.get(command)
        if not pending:
            return False
        reply = pending.pop(0)
        if reply:
            server.transport.write(f"{reply}\r\n".encode())
        server.transport.close()
        return True

    def close_connections(self, reply: str = "421 4.4.2 Idle timeout, closing connection") -> None:
        async def close():
            for session in list(self._sessions):
                session.transport.write(f"{reply}\r\n".encode())
                session.transport.close()

        asyncio.run_coroutine_threadsafe(close(), self._controller.loop).result(timeout=5)

    def __enter__(self):
        self._controller.start()
        self._counting = True
        return self

    def __exit__(self, *exc):
        self._controller.stop()
