"""Kept SMTP connections: one open, logged-in connection per process and channel configuration,
reused for every message that configuration sends (channels/providers/email.py SmtpProvider).

    connection = checkout(config_id, fingerprint)   # the kept connection, or None: open a new one
    ...one mail transaction over it...
    checkin(config_id, fingerprint, connection)     # keep it for the next message
    discard(connection)                             # or close it (QUIT when the server still listens)
    close_all()                                     # worker process shutdown (config/celery.py), tests

This module only keeps connections between messages; the provider opens them (after the SSRF
check, `check_host_allowed`) and runs the transaction.

- One entry per configuration id, remembering a fingerprint (a hash) of everything the connection
  was made with: host, port, TLS mode, user name, password, timeout. A configuration whose
  fingerprint changed (a new password, another host) gets its old connection closed and a new one
  opened.
- A connection is out of the pool while a message is sent over it, so two threads of one process
  never share one: the second opens its own, and only one is kept afterwards.
- Connections idle longer than `ULAK_SMTP_IDLE_SECONDS` (default 30) are closed the next time the
  pool is used (for any configuration) and when the worker process shuts down. Idle time is
  measured with the wall clock (time.time): a clock jump closes a connection early or late, and a
  connection kept too long is at worst found closed by the server, which checkout and the provider
  both handle.
- A kept connection the server closed while it was idle (its socket reads as ready: a 421 or the
  end of the stream) is dropped at checkout.
- At most MAX_KEPT connections are kept per process; past that the least recently used is closed.
- A forked child forgets its parent's connections without closing them: closing would send QUIT
  on sockets the parent still uses (the approach of channels/safe_http.py's HTTP/2 clients).
"""

from __future__ import annotations

import os
import select
import smtplib
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

MAX_KEPT = 64
# Closing an idle connection sends QUIT and waits for the answer at most this long.
QUIT_TIMEOUT_SECONDS = 5


@dataclass
class _Kept:
    connection: smtplib.SMTP
    fingerprint: str
    last_used: float


_kept: OrderedDict[int, _Kept] = OrderedDict()
_lock = threading.Lock()


def _forget_after_fork() -> None:
    global _lock
    _kept.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def idle_seconds() -> float:
    return float(settings.ULAK_SMTP_IDLE_SECONDS)


def checkout(config_id: int | None, fingerprint: str) -> smtplib.SMTP | None:
    """Take the kept connection of this configuration out of the pool, or None when there is none
    (never kept, made with other settings, idle too long, closed by the server). Closes every kept
    connection that has been idle too long, this configuration's or another's."""
    now = time.time()
    limit = idle_seconds()
    with _lock:
        stale = [key for key, kept in _kept.items() if now - kept.last_used > limit]
        closing = [_kept.pop(key).connection for key in stale]
        entry = _kept.pop(config_id, None) if config_id is not None else None
    if entry is not None and entry.fingerprint != fingerprint:
        closing.append(entry.connection)
        entry = None
    for connection in closing:
        discard(connection)
    if entry is None:
        return None
    if closed_by_server(entry.connection):
        entry.connection.close()  # nothing to say QUIT to
        return None
    return entry.connection


def checkin(config_id: int | None, fingerprint: str, connection: smtplib.SMTP) -> None:
    """Keep `connection` (its last transaction finished or was reset) for the next message of this
    configuration. A connection that is closed, or for which another is already kept, is closed."""
    if config_id is None or connection.sock is None:
        discard(connection)
        return
    closing = []
    with _lock:
        current = _kept.pop(config_id, None)
        if current is not None:
            closing.append(current.connection)
        _kept[config_id] = _Kept(connection, fingerprint, time.time())
        while len(_kept) > MAX_KEPT:
            closing.append(_kept.popitem(last=False)[1].connection)
    for old in closing:
        discard(old)


def closed_by_server(connection: smtplib.SMTP) -> bool:
    """True when the server has spoken (or hung up) on an idle connection: between transactions it
    only does so to close it (421, end of stream)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def discard(connection: smtplib.SMTP) -> None:
    """Close a connection: QUIT (waiting at most QUIT_TIMEOUT_SECONDS) when it is still open, then
    the socket. Never raises: whatever the server answers, the connection is gone."""
    if connection.sock is None:
        return
    try:
        connection.sock.settimeout(min(connection.sock.gettimeout() or QUIT_TIMEOUT_SECONDS, QUIT_TIMEOUT_SECONDS))
        connection.quit()
    except (smtplib.SMTPException, ssl.SSLError, OSError):
        pass
    finally:
        connection.close()


def close_all() -> None:
    """Close every kept connection (worker process shutdown, tests)."""
    with _lock:
        connections = [kept.connection for kept in _kept.values()]
        _kept.clear()
    for connection in connections:
        discard(connection)


def kept_count() -> int:
    return len(_kept)
