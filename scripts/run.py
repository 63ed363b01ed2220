"""`make run`: the whole of Ulak on one machine, with a demo workspace.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set, else from local servers on the
default ports, else embedded ones are started from the machine's own binaries. Then migrations,
the demo workspace, and web + worker + beat in the foreground until Ctrl-C.

Runtime state (secrets, embedded data, demo credentials) lives in ULAK_STATE_DIR (default .ulak/).
Only the standard library is imported at the top: Django must not load before the database is up.
"""

import base64
import contextlib
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRUE_VALUES = {"1", "true", "yes", "on"}
DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@ulak.local"
STOP_TIMEOUT = 10
_print_lock = threading.Lock()


class Fatal(Exception):
    """A problem the user has to fix; the message says how."""


class StopRequested(Exception):
    """SIGTERM arrived before the app processes were started."""


def say(message: str = "") -> None:
    with _print_lock:
        print(message, flush=True)


def env_port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- state and secrets -------------------------------------------------------------------------

def state_dir() -> Path:
    path = (ROOT / os.environ.get("ULAK_STATE_DIR", ".ulak")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def persistent_secret(path: Path, generate) -> str:
    if path.exists():
        return path.read_text().strip()
    value = generate()
    write_private(path, value + "\n")
    return value


def base_env(state: Path) -> dict:
    env = dict(os.environ)
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = persistent_secret(state / "secret_key", lambda: secrets.token_urlsafe(50))
    if not env.get("ULAK_FERNET_KEYS"):
        env["ULAK_FERNET_KEYS"] = persistent_secret(
            state / "fernet_key", lambda: base64.urlsafe_b64encode(os.urandom(32)).decode()
        )
    for name, default in (("DEBUG", "1"), ("ULAK_LOG_FORMAT", "text"),
                          ("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]"),
                          ("PORT", "8000"), ("WEB_CONCURRENCY", "2")):
        if not env.get(name):
            env[name] = default
    env.update(SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0", PYTHONUNBUFFERED="1")
    return env


# --- PostgreSQL ---------------------------------------------------------------------------------

def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pg_connect(port: int, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                           connect_timeout=5, autocommit=True)


def local_pg_answers(port: int) -> bool:
    import psycopg

    if not port_open(port):
        return False
    try:
        pg_connect(port).close()
        return True
    except psycopg.Error as exc:
        say(f"PostgreSQL on 127.0.0.1:{port} refused user postgres ({str(exc).strip()}); not using it.")
        return False


def ensure_database(port: int, name: str = "ulak") -> None:
    with pg_connect(port) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            say(f"Created database {name}.")


def find_pg_bindir() -> Path | None:
    """pg_config's bindir first, then Debian/Ubuntu's versioned directories, newest first."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out:
            candidates.append(Path(out))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()], reverse=True)
    candidates += [Path(p) for p in versioned]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def pg_os_user() -> str | None:
    """The OS user to run PostgreSQL as: ourselves, or 'postgres' when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Fatal("PostgreSQL refuses to run as root and there is no 'postgres' OS user to run it as. "
                    "Run `make run` as a normal user, create a 'postgres' user, or set DATABASE_URL.") from None
    return "postgres"


def as_user(cmd: list, user: str | None) -> list:
    cmd = [str(part) for part in cmd]
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    return ["su", user, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    if path.stat().st_uid == entry.pw_uid:
        return
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), entry.pw_uid, entry.pw_gid)


def prepare_for_os_user(state: Path, pgdata: Path, logfile: Path, user: str) -> None:
    state.chmod(0o711)  # traversable, not listable; the secrets in it stay 0600
    pgdata.mkdir(mode=0o700, exist_ok=True)
    chown_tree(pgdata, user)
    logfile.touch(exist_ok=True)
    chown_tree(logfile, user)
    if subprocess.run(as_user(["test", "-w", pgdata], user), capture_output=True).returncode != 0:
        raise Fatal(f"PostgreSQL must run as the '{user}' OS user (it refuses root), but that user cannot reach "
                    f"{pgdata}. Make the directories above {state} traversable (chmod o+x), point "
                    "ULAK_STATE_DIR at a directory it can reach, or set DATABASE_URL.")


def start_embedded_postgres(state: Path, services: contextlib.ExitStack) -> int:
    bindir = find_pg_bindir()
    if bindir is None:
        raise Fatal("No PostgreSQL is answering on 127.0.0.1 and no PostgreSQL binaries were found to start one. "
                    "Install PostgreSQL (e.g. `apt-get install postgresql`) or set "
                    "DATABASE_URL=postgres://user:password@host:5432/ulak.")
    port = env_port("ULAK_EMBEDDED_PG_PORT", 54329)
    user = pg_os_user()
    pgdata, logfile = state / "pgdata", state / "postgres.log"
    if user:
        prepare_for_os_user(state, pgdata, logfile, user)

    def pg(*args, **kwargs):
        return subprocess.run(as_user([bindir / args[0], *args[1:]], user), cwd=state,
                              capture_output=True, text=True, **kwargs)

    if not (pgdata / "PG_VERSION").exists():
        say(f"Initialising an embedded PostgreSQL cluster in {pgdata} …")
        result = pg("initdb", "-D", pgdata, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
        if result.returncode:
            raise Fatal(f"initdb failed:\n{result.stdout}{result.stderr}")
    if pg("pg_ctl", "-D", pgdata, "status").returncode == 0:
        pg("pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")  # left over from a run that was killed
    # TCP only (-k ''): no socket file that the postgres user must be able to create, no path-length limit.
    options = f"-p {port} -k '' -c listen_addresses=127.0.0.1"
    result = pg("pg_ctl", "-D", pgdata, "-o", options, "-l", logfile, "-w", "start")
    if result.returncode:
        raise Fatal(f"The embedded PostgreSQL did not start ({bindir}):\n{result.stdout}{result.stderr}"
                    f"Last lines of {logfile}:\n{tail(logfile)}")
    services.callback(stop_embedded_postgres, pg, pgdata)
    say(f"Started an embedded PostgreSQL ({bindir}) on 127.0.0.1:{port}; data in {pgdata}, log in {logfile}. "
        "It stops when Ulak stops.")
    return port


def stop_embedded_postgres(pg, pgdata: Path) -> None:
    pg("pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop", timeout=60)
    say("Stopped the embedded PostgreSQL.")


def setup_database(env: dict, state: Path, services: contextlib.ExitStack) -> None:
    if env.get("DATABASE_URL"):
        say("Database: DATABASE_URL from the environment.")
        return
    port = env_port("ULAK_LOCAL_PG_PORT", 5432)
    if local_pg_answers(port):
        say(f"Database: the local PostgreSQL on 127.0.0.1:{port}.")
    else:
        port = start_embedded_postgres(state, services)
    ensure_database(port)
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/ulak"


# --- Redis --------------------------------------------------------------------------------------

def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_embedded_redis(state: Path, services: contextlib.ExitStack) -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        raise Fatal("No Redis is answering on 127.0.0.1 and `redis-server` is not on PATH. "
                    "Install it (e.g. `apt-get install redis-server`) or set REDIS_URL=redis://host:6379/0.")
    port = env_port("ULAK_EMBEDDED_REDIS_PORT", 63799)
    logfile = state / "redis.log"
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(state), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0,
        )
    services.callback(stop_embedded_redis, proc)
    deadline = time.monotonic() + 10
    while not redis_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Fatal(f"The embedded Redis did not start. Last lines of {logfile}:\n{tail(logfile)}")
        time.sleep(0.1)
    say(f"Started an embedded Redis ({binary}) on 127.0.0.1:{port}; log in {logfile}. It stops when Ulak stops.")
    return port


def stop_embedded_redis(proc: subprocess.Popen) -> None:
    stop_processes([proc])
    say("Stopped the embedded Redis.")


def setup_redis(env: dict, state: Path, services: contextlib.ExitStack) -> None:
    if env.get("REDIS_URL"):
        say("Redis: REDIS_URL from the environment.")
        return
    port = env_port("ULAK_LOCAL_REDIS_PORT", 6379)
    if redis_answers(port):
        say(f"Redis: the local Redis on 127.0.0.1:{port}.")
    else:
        port = start_embedded_redis(state, services)
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


# --- Django: migrations and the demo workspace ----------------------------------------------------

def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    if result.returncode:
        # args[0] only: later arguments may hold a password.
        raise Fatal(f"`manage.py {args[0]}` failed (exit {result.returncode}).\n{result.stderr or ''}")
    return result.stdout or ""


def python_output(env: dict, code: str) -> str:
    """The last stdout line of a snippet run with the project's settings (Django loads in the child only)."""
    lines = manage(env, "shell", "--no-imports", "-c", code, capture=True).strip().splitlines()
    return lines[-1].strip() if lines else ""


def demo_exists(env: dict) -> bool:
    code = f"from accounts.models import Workspace; print(Workspace.objects.filter(slug={DEMO_SLUG!r}).exists())"
    return python_output(env, code) == "True"


def print_credentials(creds: dict, port: str, heading: str, path: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    rows = [("Admin", f"{base}/admin/"), ("Login email", creds["email"]), ("Password", creds["password"]),
            ("Workspace id", creds["workspace_id"]), ("site_id", creds["site_id"]),
            ("track_api_key", creds["track_api_key"]), ("app_api_key", creds["app_api_key"]),
            ("cdp_write_key", creds["cdp_write_key"])]
    rule = "=" * 78
    say(rule)
    say(f"  {heading}")
    for label, value in rows:
        say(f"  {label + ':':<15} {value}")
    say(f"  Try:  curl -H 'Authorization: Bearer {creds['app_api_key']}' {base}/v1/workspace")
    say(f"  Saved in {path} (mode 600).")
    say(rule)


def ensure_demo(env: dict, state: Path) -> None:
    path = state / "demo-credentials.json"
    if demo_exists(env):
        if path.exists():
            print_credentials(json.loads(path.read_text()), env["PORT"], "Demo workspace (already created)", path)
        else:
            say(f"The demo workspace already exists, but {path} is missing (keys are shown only once). "
                f"Log in with an existing account or create a key: manage.py api_key create {DEMO_SLUG} "
                "--kind app --name local --scope ...")
        return
    password = secrets.token_urlsafe(9)
    out = manage(env, "create_workspace", "Demo", "--slug", DEMO_SLUG, "--owner-email", DEMO_EMAIL,
                 f"--password={password}", "--json", capture=True)  # "=": a password may start with "-"
    creds = {"email": DEMO_EMAIL, "password": password, **json.loads(out.strip().splitlines()[-1])}
    write_private(path, json.dumps(creds, indent=2) + "\n")
    print_credentials(creds, env["PORT"], "Demo workspace created", path)


def prepare_django(env: dict, state: Path) -> None:
    manage(env, "migrate", "--noinput")
    if env["DEBUG"].strip().lower() not in TRUE_VALUES:
        manage(env, "collectstatic", "--noinput")
    ensure_demo(env, state)
    manage(env, "seed_demo", DEMO_SLUG)


# --- the app processes -----------------------------------------------------------------------------

def signal_group(pid: int, sig: int) -> bool:
    """Signal a process group; False when nothing is left in it."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_processes(procs: list) -> None:
    """SIGTERM each process group, wait up to STOP_TIMEOUT for the whole group, then SIGKILL what is left."""
    for proc in procs:
        signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    # Grandchildren (gunicorn and celery pool workers) may outlive their parent by a moment.
    while time.monotonic() < deadline and any(signal_group(p.pid, 0) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if signal_group(proc.pid, signal.SIGKILL):
            say(f"Killed process group {proc.pid} after {STOP_TIMEOUT} s.")
        proc.wait()


def start_child(name: str, cmd: list, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, process_group=0)
    prefix = f"{name:<6} | "

    def pump():
        for line in iter(proc.stdout.readline, b""):
            say(prefix + line.decode(errors="replace").rstrip("\n"))

    threading.Thread(target=pump, name=f"{name}-output", daemon=True).start()
    return proc


def app_commands(env: dict) -> list:
    queues = python_output(env, "from config.celery import QUEUES; print(','.join(QUEUES))")
    py = sys.executable
    return [
        ("web", [py, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py"]),
        ("worker", [py, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-Q", queues,
                    "--concurrency", "2"]),
        ("beat", [py, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]),
    ]


def supervise(env: dict) -> int:
    """Run web, worker and beat until a signal (exit 0) or until one of them dies (exit 1)."""
    commands = app_commands(env)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    url = f"http://127.0.0.1:{env['PORT']}"
    children, died, announced = {}, None, False
    try:
        for name, cmd in commands:
            children[name] = start_child(name, cmd, env)
        while not stop.wait(0.5):
            died = next((name for name, proc in children.items() if proc.poll() is not None), None)
            if died:
                break
            if not announced and port_open(int(env["PORT"])):
                say(f"Ulak is running at {url} — Ctrl-C to stop")
                announced = True
    finally:
        if died:
            say(f"{died} exited on its own (code {children[died].returncode}); stopping everything.")
        else:
            say("Stopping web, worker and beat …")
        stop_processes(list(children.values()))
    return 1 if died else 0


# --- main ---------------------------------------------------------------------------------------------

def raise_stop(*_):
    raise StopRequested


def main() -> int:
    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, raise_stop)  # SIGINT already raises KeyboardInterrupt
    with contextlib.ExitStack() as services:
        try:
            state = state_dir()
            env = base_env(state)
            if port_open(int(env["PORT"])):
                raise Fatal(f"Port {env['PORT']} on 127.0.0.1 is in use; stop what uses it or set PORT.")
            setup_database(env, state, services)
            setup_redis(env, state, services)
            prepare_django(env, state)
            return supervise(env)
        except (KeyboardInterrupt, StopRequested):
            say("Stopping.")
            return 0
        except Fatal as exc:
            print(f"ERROR: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            # A second Ctrl-C must not cut short stopping the embedded services.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
