"""Smoke tests for `make run`: the real script, real PostgreSQL and Redis, real web, worker and beat."""

import contextlib
import importlib.util
import json
import os
import random
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


@pytest.fixture
def smoke_database():
    name = f"ulak_smoke_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres",
                                autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgres://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


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
