"""Ingest benchmark: batch and single-event HTTP ingestion beside raw COPY, in one run.

    .venv/bin/python benchmarks/ingest.py [--events 1000000] [--batch 100] [--clients 6]
                                           [--single 30000] [--surface cdp|v2]

It creates a fresh database (ulak_bench), migrates, creates a workspace, then:
1. COPY baseline: the same event rows COPY'd into profiles_event (same indexes), then removed.
2. Batch ingest: --events events in batches of --batch over HTTP (gunicorn, --clients concurrent
   client processes) with one Celery ingest worker applying them. Reports the rate at which
   requests were acknowledged (operations durably staged) and the end-to-end rate until every
   event is in profiles_event.
3. Single calls: --single POST /api/v1/customers/{id}/events requests; req/s and latency.
Everything runs on this machine: clients, server, worker and PostgreSQL share its cores.
"""

import argparse
import base64
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
from common import PG, bench_env, percentile, post_each, stop, wait_port
from common import start as common_start
from common import fresh_database as common_fresh_database
from common import manage as common_manage

DB = "ulak_bench"
PEOPLE = 10_000
PORT = 18931


WEB = {"WEB_CONCURRENCY": "4", "WEB_THREADS": "1"}


def env() -> dict:
    return bench_env(DB, **WEB, ULAK_INGEST_RATE_LIMIT=str(10**9), PORT=str(PORT))


def manage(*args) -> str:
    return common_manage(env(), *args)


def fresh_database() -> None:
    common_fresh_database(DB, env())


def event_message(surface: str, n: int, now: str) -> dict:
    user = f"user-{n % PEOPLE}"
    props = {"sku": f"sku-{n % 97}", "total": n % 500, "currency": "TRY"}
    if surface == "cdp":
        return {"type": "track", "userId": user, "event": "purchase", "properties": props,
                "messageId": f"m-{n}", "timestamp": now}
    return {"type": "person", "action": "event", "identifiers": {"id": user}, "name": "purchase",
            "id": f"m-{n}", "timestamp": int(time.time()), "attributes": props}


def copy_baseline(workspace_id: int, events: int) -> float:
    """COPY the rows batch ingest would produce into the same table; returns rows/s."""
    with psycopg.connect(f"{PG}/{DB}") as conn:
        profile_ids = [r[0] for r in conn.execute(
            "SELECT id FROM profiles_profile WHERE workspace_id = %s ORDER BY id", [workspace_id])]
        now = datetime.now(UTC)
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY profiles_event (workspace_id, profile_id, name, type, data, timestamp, received_at, dedupe_id)"
            " FROM STDIN") as copy:
            for n in range(events):
                data = json.dumps({"sku": f"sku-{n % 97}", "total": n % 500, "currency": "TRY"})
                copy.write_row((workspace_id, profile_ids[n % len(profile_ids)], "purchase", "event", data, now, now,
                                f"m-{n}"))
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("TRUNCATE profiles_event")
        conn.commit()
    return events / elapsed


def client_worker(args) -> list[float]:
    requests, headers = args
    return [took for _, took, _ in post_each(PORT, requests, headers)]


def run_clients(requests: list[tuple[str, bytes]], headers: dict, clients: int) -> tuple[float, list[float]]:
    shares = [(requests[i::clients], headers) for i in range(clients)]
    started = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client_worker, shares)
    return time.perf_counter() - started, [x for r in results for x in r]


def start(command: list[str]):
    return common_start(command, env())


def wait_applied(expected: int, timeout: float) -> float:
    started = time.perf_counter()
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        while time.perf_counter() - started < timeout:
            staged = conn.execute("SELECT count(*) FROM profiles_inboundoperation").fetchone()[0]
            stored = conn.execute("SELECT count(*) FROM profiles_event").fetchone()[0]
            if staged == 0 and stored >= expected:
                return time.perf_counter()
            time.sleep(0.25)
    raise SystemExit(f"events not applied within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--single", type=int, default=30_000)
    parser.add_argument("--surface", choices=["cdp", "v2"], default="cdp")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--web-threads", type=int, default=1)
    opts = parser.parse_args()
    WEB.update(WEB_CONCURRENCY=str(opts.web_workers), WEB_THREADS=str(opts.web_threads))

    fresh_database()
    keys = json.loads(manage("create_workspace", "Bench", "--owner-email", f"bench-{uuid.uuid4().hex[:6]}@ulak.test",
                             "--password", "bench-pass-123", "--json"))
    manage("seed_demo", str(keys["workspace_id"]), "--people", str(PEOPLE), "--events-per-person", "1")
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:  # the people exist; events start empty
        conn.execute("UPDATE profiles_profile SET external_id = 'user-' || (id - (SELECT min(id) FROM profiles_profile))")
        conn.execute("TRUNCATE profiles_event")

    copy_rate = copy_baseline(keys["workspace_id"], opts.events)
    print(f"COPY baseline: {copy_rate:,.0f} rows/s ({opts.events:,} rows)", flush=True)

    web = start([sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py"])
    worker = start([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "ingest", "--pool", "solo",
                    "--loglevel", "WARNING"])
    try:
        wait_port(PORT)
        now = datetime.now(UTC).isoformat()
        if opts.surface == "cdp":
            path, user = "/cdp/v1/batch", f"{keys['cdp_write_key']}:"
        else:
            path, user = "/api/v2/batch", f"{keys['site_id']}:{keys['track_api_key']}"
        auth = base64.b64encode(user.encode()).decode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {auth}"}
        requests = [(path, json.dumps({"batch": [event_message(opts.surface, n, now)
                                            for n in range(i, min(i + opts.batch, opts.events))]}).encode())
                    for i in range(0, opts.events, opts.batch)]
        started = time.perf_counter()
        elapsed, latencies = run_clients(requests, headers, opts.clients)
        applied_at = wait_applied(opts.events, timeout=3600)
        end_to_end = applied_at - started
        batch = {
            "ack_events_per_s": opts.events / elapsed, "end_to_end_events_per_s": opts.events / end_to_end,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
        }
        print(f"Batch ingest ({opts.surface}, {opts.batch}/request, {opts.clients} clients): "
              f"acknowledged {batch['ack_events_per_s']:,.0f} events/s "
              f"({batch['ack_events_per_s'] / copy_rate:.0%} of COPY), stored end to end "
              f"{batch['end_to_end_events_per_s']:,.0f} events/s ({batch['end_to_end_events_per_s'] / copy_rate:.0%} "
              f"of COPY); request p50 {batch['p50_ms']:.1f} ms, p99 {batch['p99_ms']:.1f} ms", flush=True)

        track_auth = base64.b64encode(f"{keys['site_id']}:{keys['track_api_key']}".encode()).decode()
        single_headers = {"Content-Type": "application/json", "Authorization": f"Basic {track_auth}"}
        singles = [(f"/api/v1/customers/user-{n % PEOPLE}/events",
                    json.dumps({"name": "clicked", "data": {"n": n}, "id": f"s-{n}"}).encode())
                   for n in range(opts.single)]
        elapsed, latencies = run_clients(singles, single_headers, opts.clients)
        single = {"req_per_s": opts.single / elapsed, "p50_ms": percentile(latencies, 50) * 1000,
                  "p99_ms": percentile(latencies, 99) * 1000}
        print(f"Single Track calls ({opts.clients} clients): {single['req_per_s']:,.0f} req/s, "
              f"p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms", flush=True)
        print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                          "cores": os.cpu_count(), "events": opts.events, "copy_rows_per_s": copy_rate,
                          "web": WEB, "clients": opts.clients,
                          "batch": batch, "single": single}))
    finally:
        stop(web)
        stop(worker)


if __name__ == "__main__":
    main()
