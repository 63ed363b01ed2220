"""What the benchmark scripts share: the environment of the Ulak processes they start, and a fresh,
migrated database of their own."""

import base64
import http.client
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"


def bench_env(database: str, **extra: str) -> dict:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"{PG}/{database}",
            "SECRET_KEY": "bench-only", "ALLOWED_HOSTS": "127.0.0.1", "ULAK_LOG_LEVEL": "WARNING",
            "ULAK_FERNET_KEYS": base64.urlsafe_b64encode(b"0" * 32).decode(), "ULAK_CACHE_PREFIX": "bench", **extra}


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def fresh_database(database: str, env: dict) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    manage(env, "migrate", "--noinput")


def h(expr: str, seed: int) -> str:
    """A deterministic non-negative pseudo-random bigint from an integer SQL expression."""
    return f"abs(hashint8extended(({expr})::bigint, {seed}))"


def timed(conn, label: str, sql: str, params=None) -> None:
    """Run one data-generating statement and print how long it took and the rows it wrote."""
    started = time.perf_counter()
    cur = conn.execute(sql, params)
    print(f"  {label}: {time.perf_counter() - started:,.1f} s ({cur.rowcount:,} rows)", flush=True)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("web server did not start")


def post_each(port: int, requests, headers: dict):
    """POST each (path, body) in turn over one kept-alive connection to 127.0.0.1:`port`; yields
    (wall-clock start, seconds until the whole answer was read, answer body). Anything but a 200
    stops the benchmark."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for path, body in requests:
        started_at, started = time.time(), time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} from {path}: {payload[:300]!r}")
        yield started_at, took, payload
    conn.close()


def code_area(filename: str, name: str = "", *, depth: int = 1) -> str:
    """Where a profiled function lives: a project app (`depth` path parts of it), a library (top
    package), Python itself, or — for C functions, when `name` is given — PostgreSQL or socket waits."""
    if not filename.startswith("/"):  # "~" (C functions) or "<frozen ...>"
        if "psycopg" in name:
            return "psycopg C (waiting for PostgreSQL)"
        if any(word in name for word in ("socket", "select", "poll", "recv", "readline", "readinto")):
            return "socket / file I/O (waiting for the sink, Redis)"
        return "Python builtins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1:]
        top = rest[0] if rest else "?"
        if top == "django" and len(rest) > 2:
            return f"django.{rest[1]}" if rest[1] != "db" else f"django.db.{rest[2].removesuffix('.py')}"
        return top.split(".")[0]
    try:
        return f"ulak: {'/'.join(Path(filename).resolve().relative_to(ROOT).parts[:depth])}"
    except ValueError:
        return "Python stdlib"


def query_kind(sql: str) -> str:
    """A statement's verb and main table: `SELECT profiles_profile`, `INSERT campaigns_journeystep`..."""
    verb = sql.lstrip().split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    label = f"{verb} {table.group(1) if table and verb != 'SAVEPOINT' else ''}".strip()
    return f"{label} FOR UPDATE" if "FOR UPDATE" in sql else label


def machine(database: str) -> dict:
    """What the figures were taken on: platform, cores, memory, PostgreSQL's version."""
    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"platform": platform.platform(), "cores": os.cpu_count(), "memory_gib": round(memory, 1),
            "postgresql": version}


def rounded(value):
    """A result for the JSON line: floats to 3 places, keys as strings."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
