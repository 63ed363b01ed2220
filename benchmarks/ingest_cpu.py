"""CPU time per ingest request, in-process: what the web tier spends on one Track or CDP call.
`make bench-ingest-cpu BENCH_ARGS="..."` runs it; figures in docs/BENCHMARKS.md "Lean ingest path".

    .venv/bin/python benchmarks/ingest_cpu.py [--requests 2000] [--rounds 5] [--warmup 200]
                                              [--batch 100] [--only cdp_track,v1_event]
                                              [--profile v1_event] [--calls 200] [--keep-database]
                                              [--redis-url redis://127.0.0.1:6379/0]

It creates a fresh database (ulak_bench_cpu), migrates, creates a workspace with a Track and a CDP
key, then sends each endpoint's requests through Django's WSGI handler (`config.wsgi`: every
middleware, the URL resolver, the view, the real PostgreSQL INSERT and the real Redis calls) with
no HTTP client or server, and reports `time.process_time()` per request after a warm-up: the CPU
this process spent, not PostgreSQL's or Redis's. The timed requests run in `--rounds` rounds;
the median round is the figure (and the lowest is shown), since other work on a shared machine
inflates some rounds. Wall time is printed beside it but depends on how busy the machine is;
CPU time is the figure to compare.

Every request body is different (person ids, event ids) and built before the clock starts. The
processor is kept from being scheduled by holding its "scheduled" flag in Redis for the run (as
under load, where nearly every request finds it set), so no Celery task is queued; the staged
operations stay in `profiles_inboundoperation` of the benchmark database. With `--profile NAME`
that endpoint's loop also runs under cProfile (CPU time) and the top functions by own and
cumulative time are printed; with `--calls N` every endpoint's Python function calls per request
are counted over N more requests (a count the machine's load cannot inflate).
"""

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
import uuid
from base64 import b64encode
from datetime import UTC, datetime

from common import ROOT, bench_env, fresh_database

DB = "ulak_bench_cpu"
PREFIX = "bench-cpu"


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def endpoints(batch: int, stamp: str) -> dict:
    """name → (method, auth kind, function n → (path, body))."""
    props = lambda n: {"sku": f"sku-{n % 97}", "total": n % 500, "currency": "TRY"}  # noqa: E731
    iso = datetime.now(UTC).isoformat()

    def cdp_track(n):
        return {"type": "track", "userId": f"user-{n % 10_000}", "event": "purchase", "properties": props(n),
                "messageId": f"{stamp}-m-{n}", "timestamp": iso}

    def v2_event(n):
        return {"type": "person", "action": "event", "identifiers": {"id": f"user-{n % 10_000}"},
                "name": "purchase", "id": f"{stamp}-e-{n}", "timestamp": int(time.time()), "attributes": props(n)}

    return {
        "v1_identify": ("PUT", "track", lambda n: (
            f"/api/v1/customers/user-{n % 10_000}",
            {"email": f"user{n % 10_000}@example.com", "plan": "pro", "seats": n % 50, "created_at": 1700000000})),
        "v1_event": ("POST", "track", lambda n: (
            f"/api/v1/customers/user-{n % 10_000}/events",
            {"name": "purchase", "data": props(n), "id": f"{stamp}-v1-{n}"})),
        "v2_entity": ("POST", "track", lambda n: ("/api/v2/entity", v2_event(n))),
        "v2_batch": ("POST", "track", lambda n: (
            "/api/v2/batch", {"batch": [v2_event(n * batch + i) for i in range(batch)]})),
        "cdp_track": ("POST", "cdp", lambda n: ("/cdp/v1/track", cdp_track(n))),
        "cdp_identify": ("POST", "cdp", lambda n: (
            "/cdp/v1/identify",
            {"userId": f"user-{n % 10_000}", "traits": {"email": f"user{n % 10_000}@example.com", "plan": "pro"},
             "messageId": f"{stamp}-i-{n}", "timestamp": iso})),
        "cdp_batch": ("POST", "cdp", lambda n: (
            "/cdp/v1/batch", {"batch": [cdp_track(n * batch + i) for i in range(batch)]})),
    }


def environ(method: str, path: str, body: bytes, authorization: str) -> dict:
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "443", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": authorization,
        "HTTP_ACCEPT": "application/json", "HTTP_USER_AGENT": "ulak-bench-cpu", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "https", "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def run(app, requests: list[tuple[str, str, bytes, str]]) -> None:
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for method, path, body, authorization in requests:
        result = app(environ(method, path, body, authorization), start_response)
        payload = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        if not statuses[-1].startswith("200"):
            raise SystemExit(f"{method} {path}: {statuses[-1]} {payload[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per endpoint")
    parser.add_argument("--rounds", type=int, default=5, help="timed requests are split into rounds; the median counts")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per endpoint first")
    parser.add_argument("--batch", type=int, default=100, help="messages per v2/CDP batch request")
    parser.add_argument("--only", default="", help="comma-separated endpoint names")
    parser.add_argument("--calls", type=int, default=0,
                        help="also count Python function calls per request over this many more requests")
    parser.add_argument("--profile", default="", help="also profile this endpoint's loop (cProfile)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep-database", action="store_true", help="reuse ulak_bench_cpu as it is")
    args = parser.parse_args()

    env = bench_env(DB, REDIS_URL=args.redis_url, ULAK_CACHE_PREFIX=PREFIX, ULAK_INGEST_RATE_LIMIT=str(10**9))
    if not args.keep_database:
        print("creating and migrating", DB, flush=True)
        fresh_database(DB, env)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.wsgi import get_wsgi_application

    from accounts import services
    from accounts.models import ApiKeyKind, User
    from profiles.ingest.store import SCHEDULE_KEY

    owner = User.objects.create_user(email=f"bench-{uuid.uuid4().hex[:8]}@ulak.test", password=None)
    workspace = services.create_workspace(name="Bench CPU", owner=owner)
    _, track_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.TRACK, name="track")
    _, cdp_key = services.create_api_key(workspace=workspace, kind=ApiKeyKind.CDP, name="cdp")
    auth = {"track": basic(workspace.site_id, track_key), "cdp": basic(cdp_key, "")}
    cache.set(SCHEDULE_KEY.format(workspace.pk), 1, 3600)  # the processor counts as scheduled

    app = get_wsgi_application()
    stamp = uuid.uuid4().hex[:8]
    chosen = [name for name in args.only.split(",") if name] or list(endpoints(args.batch, stamp))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}; "
          f"{args.requests} timed requests per endpoint after {args.warmup}; batches of {args.batch}", flush=True)
    print(f"CPU ms/req: median and lowest of {args.rounds} rounds; ceiling: 2 cores / median CPU per request")
    print(f"{'endpoint':<14} {'CPU ms/req':>10} {'lowest':>8} {'wall ms/req':>11} {'body bytes':>10} "
          f"{'ceiling req/s (2 cores)':>24}")
    figures, calls = {}, {}
    for name in chosen:
        method, kind, make = endpoints(args.batch, stamp)[name]
        total = args.warmup + args.requests
        requests = []
        for n in range(total):
            path, body = make(n)
            requests.append((method, path, json.dumps(body).encode(), auth[kind]))
        run(app, requests[:args.warmup])
        rounds, walls = [], []
        per_round = args.requests // args.rounds
        for start in range(args.warmup, total - per_round + 1, per_round):
            cpu, wall = time.process_time(), time.perf_counter()
            run(app, requests[start:start + per_round])
            rounds.append((time.process_time() - cpu) / per_round * 1000)
            walls.append((time.perf_counter() - wall) / per_round * 1000)
        per_request = statistics.median(rounds)
        size = sum(len(r[2]) for r in requests[args.warmup:]) // args.requests
        figures[name] = {"median": round(per_request, 3), "min": round(min(rounds), 3)}
        print(f"{name:<14} {per_request:>10.3f} {min(rounds):>8.3f} {statistics.median(walls):>11.3f} {size:>10,} "
              f"{2000 / per_request:>24,.0f}", flush=True)
        if args.calls:  # Python function calls per request: a count, whatever else the machine runs
            counted = [(m, p, json.dumps(b).encode(), auth[kind])
                       for m, p, b in ((method, *make(n + 2 * total)) for n in range(args.calls))]
            profiler = cProfile.Profile()
            profiler.runcall(run, app, counted)
            calls[name] = round(pstats.Stats(profiler).total_calls / args.calls)
        if name == args.profile:
            profiled = [(method, *make(n + total)) for n in range(args.requests)]
            profiled = [(m, p, json.dumps(b).encode(), auth[kind]) for m, p, b in profiled]
            profiler = cProfile.Profile(time.process_time)  # CPU, not waiting
            profiler.enable()
            run(app, profiled)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(35)
            stats.sort_stats("cumulative").print_stats(60)
            print(out.getvalue())
    cache.delete(SCHEDULE_KEY.format(workspace.pk))
    if calls:
        print("Python function calls per request:", ", ".join(f"{k} {v:,}" for k, v in calls.items()))
    print(json.dumps({"cpu_ms_per_request": figures, **({"calls_per_request": calls} if calls else {})}))


if __name__ == "__main__":
    main()
