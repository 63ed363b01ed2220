"""The messaging benchmark's providers and the bare clients it compares Ulak with.

Sinks: an aiosmtpd SMTP server and a threaded HTTP server answering as Twilio's Messages API
(201 with a message sid). Each keeps, per message received, (arrival time, the connection's serial
number, the key: the Message-ID header for SMTP, the `To` field for Twilio, the recipient or "",
the size in bytes) and the last message as a sample. They do no other work per message (no MIME parsing), so
what they cost is the protocol itself: the fastest a client can go against them.

A sink runs in a process of its own (`Sink(kind)`, the default: its CPU time is measured on its
own and it competes for the GIL with nobody) or as threads of the benchmark process
(`Sink(kind, in_process=True)`, what the benchmark did before).

Bare clients: `bare_smtp` (smtplib, one connection per process, `sendmail` of a sample message
with the Message-ID and recipient replaced) and `bare_http` (a `requests.Session`, keep-alive, one
per process, the same form Ulak posts), each in `processes` processes that connect first and then
start together; they return the completion time of every message.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import re
import smtplib
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
TO = re.compile(rb"^To:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def header_block(content: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = content.find(separator)
        if end >= 0:
            return content[:end + len(separator)]
    return content


class _Recorder:
    def __init__(self):
        self._serials = itertools.count(1)  # one per connection (client ports get reused)
        self._lock = threading.Lock()
        self._records: list[tuple] = []
        self._sample = None

    def record(self, row: tuple, sample) -> None:
        with self._lock:
            self._records.append(row)
            self._sample = sample

    def take(self) -> tuple[list[tuple], object]:
        """What arrived since the last take (and the last message), then forget it."""
        with self._lock:
            records, self._records = self._records, []
            return records, self._sample


class SmtpSink(_Recorder):
    """Records (time, connection, Message-ID, recipient, size); the sample is (MAIL FROM, the raw
    message)."""

    def __init__(self):
        super().__init__()
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
                match = MESSAGE_ID.search(header_block(content))
                if not hasattr(session, "bench_serial"):  # one aiosmtpd Session per connection
                    session.bench_serial = next(sink._serials)
                sink.record((time.time(), session.bench_serial, match.group(1).decode() if match else "",
                             envelope.rcpt_tos[0] if envelope.rcpt_tos else "", len(content)),
                            (envelope.mail_from, content))
                return "250 Message accepted"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class TwilioSink(_Recorder):
    """Answers POST …/Messages.json with 201 {"sid", "status": "queued"}; records (time,
    connection, To, "", size); the sample is the form (a dict of lists)."""

    def __init__(self):
        super().__init__()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The answer leaves in one segment (buffered, flushed after each request) with Nagle
            # off: headers and body written apart on a kept-alive connection otherwise wait for
            # the client's delayed ACK (40 ms a request).
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def setup(self):  # one handler per connection
                super().setup()
                self.serial = next(sink._serials)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form = parse_qs(body.decode())
                sink.record((time.time(), self.serial, form.get("To", [""])[0], "", len(body)), form)
                payload = json.dumps({"sid": "SM" + uuid.uuid4().hex, "status": "queued"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # the bare client's connect, not recorded
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


KINDS = {"smtp": SmtpSink, "twilio": TwilioSink}


def _serve(kind: str, conn) -> None:
    """A sink process: start the server, tell the port, answer `take` until `stop`."""
    server = KINDS[kind]()
    server.start()
    conn.send(server.port)
    while True:
        command = conn.recv()
        if command == "take":
            conn.send(server.take())
        elif command == "stop":
            server.stop()
            conn.send(None)
            return


class Sink:
    """A sink (`kind` "smtp" or "twilio") in a process of its own, or in this one."""

    def __init__(self, kind: str, *, in_process: bool = False):
        self.kind = kind
        self.in_process = in_process
        self._server = None
        self._process = None
        self._conn = None

    def __enter__(self):
        if self.in_process:
            self._server = KINDS[self.kind]()
            self._server.start()
            self.port = self._server.port
        else:
            context = multiprocessing.get_context("spawn")
            self._conn, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(self.kind, child), daemon=True,
                                            name=f"bench-{self.kind}-sink")
            self._process.start()
            if not self._conn.poll(60):
                raise SystemExit(f"the {self.kind} sink did not start")
            self.port = self._conn.recv()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The sink's own process (None when it runs in this one)."""
        return self._process.pid if self._process is not None else None

    def take(self) -> tuple[list[tuple], object]:
        if self._server is not None:
            return self._server.take()
        self._conn.send("take")
        return self._conn.recv()

    def __exit__(self, *exc):
        if self._server is not None:
            self._server.stop()
            return
        try:
            self._conn.send("stop")
            self._conn.poll(10)
        except OSError:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# --- bare clients ---------------------------------------------------------------------------------

def _smtp_client(port: int, sender: str, template: bytes, numbers: list[int], ready, results) -> None:
    connection = smtplib.SMTP("127.0.0.1", port, timeout=60)
    connection.ehlo()
    times = []
    ready.wait()
    for n in numbers:
        recipient = f"bare{n}@example.test"
        content = template.replace(b"\x00ID\x00", f"bare-{n}".encode()).replace(b"\x00TO\x00", recipient.encode())
        connection.sendmail(sender, [recipient], content)
        times.append(time.time())
    connection.quit()
    results.put(times)


def _http_client(url: str, auth: str, form: list[tuple[str, str]], numbers: list[int], ready, results) -> None:
    import requests

    session = requests.Session()
    headers = {"Authorization": auth, "Accept": "application/json"}
    session.get(url, timeout=60)  # connect before the start (the sink answers GET with an empty 200)
    times = []
    ready.wait()
    for n in numbers:
        fields = [("To", f"+1999{n:07d}") if name == "To" else (name, value) for name, value in form]
        response = session.post(url, data=fields, headers=headers, timeout=60)
        if response.status_code != 201:
            raise SystemExit(f"bare HTTP client: {response.status_code} {response.text[:200]}")
        response.json()
        times.append(time.time())
    session.close()
    results.put(times)


def _run_clients(target, args_for, count: int, processes: int) -> list[float]:
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    shares = [list(range(first, count + 1, processes)) for first in range(1, processes + 1)]
    workers = [context.Process(target=target, args=(*args_for, share, ready, results), daemon=True)
               for share in shares]
    for worker in workers:
        worker.start()
    ready.wait(timeout=60)
    times = [t for _ in workers for t in results.get(timeout=3600)]
    for worker in workers:
        worker.join(30)
    return sorted(times)


def smtp_template(raw: bytes) -> bytes:
    """A sample message with its Message-ID and recipient made placeholders (\\x00ID\\x00 and
    \\x00TO\\x00): the bare client sends it as `<bare-n@example.test>` to `baren@example.test`."""
    head = header_block(raw)
    message_id = MESSAGE_ID.search(head)
    to = TO.search(head)
    if not message_id or not to:
        raise SystemExit("the sample message has no Message-ID or To header")
    mid = message_id.group(1)
    template = raw.replace(mid, b"<\x00ID\x00@example.test>")
    return template.replace(to.group(1), b"\x00TO\x00")


def bare_smtp(port: int, sender: str, raw: bytes, count: int, processes: int) -> list[float]:
    """`count` messages like `raw` over one smtplib connection per process; completion times."""
    return _run_clients(_smtp_client, (port, sender, smtp_template(raw)), count, processes)


def bare_http(url: str, auth: str, form: list[tuple[str, str]], count: int, processes: int) -> list[float]:
    """`count` POSTs of `form` (To varied) over one requests.Session per process; completion times."""
    return _run_clients(_http_client, (url, auth, form), count, processes)
