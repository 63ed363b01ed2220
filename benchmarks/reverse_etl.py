"""Reverse ETL benchmark (issue 15): a full sync of N rows from PostgreSQL, then an incremental run
with 1 % of the rows changed.

    .venv/bin/python benchmarks/reverse_etl.py [--rows 1000000] [--changed-percent 1]

It creates two fresh databases on this machine's PostgreSQL: the source (ulak_bench_retl_source,
one table of N people with an `updated_at` cursor column, filled by set-based SQL) and Ulak's
(ulak_bench_retl, migrated), a workspace and a data source reading `SELECT id, email, plan, score,
updated_at FROM people` incrementally by `updated_at`. Then, in this process (the code a worker
runs):

1. the full sync (`profiles.sources.services.run_sync`): rows read from the source and staged
   through the ingest path; then the staged operations applied by the ingest processor
   (`profiles.ingest.processor.process_pending`) — people created with their attributes;
2. the same after `--changed-percent` of the rows got a new `updated_at` and plan: only those are
   read, staged and applied.

Baselines in the same run: reading the same query through a server-side cursor with psycopg (the
source side's floor), and COPY of the same number of rows into a scratch table of Ulak's database
(the write side's floor).
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

import psycopg
from common import PG, ROOT, bench_env, fresh_database, machine, timed

DB = "ulak_bench_retl"
SOURCE_DB = "ulak_bench_retl_source"
QUERY = "SELECT id, email, plan, score, updated_at FROM people"


def make_source(rows: int) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SOURCE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SOURCE_DB}")
    with psycopg.connect(f"{PG}/{SOURCE_DB}", autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id text PRIMARY KEY, email text, plan text, score int, "
                     "updated_at timestamptz NOT NULL)")
        timed(conn, "source rows", """
            INSERT INTO people SELECT 'u' || n, 'u' || n || '@example.test',
                   (ARRAY['free', 'pro', 'team'])[1 + n %% 3], n %% 1000,
                   timestamptz '2026-11-01' + n * interval '1 millisecond'
            FROM generate_series(1, %s) AS n""", [rows])
        conn.execute("CREATE INDEX people_updated_at ON people (updated_at)")
        conn.execute("VACUUM ANALYZE people")


def change_rows(rows: int, percent: float) -> int:
    every = max(1, round(100 / percent))
    with psycopg.connect(f"{PG}/{SOURCE_DB}", autocommit=True) as conn:
        cur = conn.execute("UPDATE people SET plan = 'enterprise', updated_at = now() "
                           "WHERE (substr(id, 2))::bigint %% %s = 0", [every])
        return cur.rowcount


def baseline_read(rows: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(f"{PG}/{SOURCE_DB}") as conn:
        with conn.cursor(name="bench") as cur:
            cur.itersize = 2000
            cur.execute(QUERY + " ORDER BY updated_at")
            count = sum(1 for _ in cur)
    assert count == rows, count
    return time.perf_counter() - started


def baseline_copy(rows: int) -> float:
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE UNLOGGED TABLE bench_copy (workspace_id bigint, payload jsonb)")
        started = time.perf_counter()
        with conn.cursor().copy("COPY bench_copy (workspace_id, payload) FROM STDIN") as copy:
            for n in range(rows):
                copy.write_row((1, f'{{"type": "identify", "id": "u{n}", "attributes": {{"plan": "pro", '
                                   f'"email": "u{n}@example.test", "score": {n % 1000}}}}}'))
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="print where the full sync's apply spends its time")
    args = parser.parse_args()

    env = bench_env(DB, ULAK_SSRF_ALLOWLIST="127.0.0.1/32")
    fresh_database(DB, env)
    print(f"reverse ETL benchmark: {args.rows:,} rows, {args.changed_percent:g} % changed; {machine(DB)}", flush=True)
    make_source(args.rows)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from accounts import services as accounts
    from accounts.models import User
    from profiles.ingest import processor
    from profiles.models import Profile
    from profiles.sources import services
    from profiles.sources.models import DataSource

    owner = User.objects.create_user(email="bench-retl@ulak.test", password=None)
    workspace = accounts.create_workspace(name="Bench", owner=owner, slug="bench")
    source = services.create_source(workspace=workspace, data={
        "name": "warehouse", "kind": "postgresql", "host": "127.0.0.1", "port": 5432, "database": SOURCE_DB,
        "username": "postgres", "password": "", "query": QUERY, "identifier_column": "id",
        "cursor_column": "updated_at", "max_rows": 5_000_000, "max_bytes": 2 * 1024**3, "max_seconds": 3600})

    def sync(label: str) -> tuple[float, float, int]:
        source_row = DataSource.objects.for_workspace(workspace).get(pk=source.pk)
        run = services.start_sync(source=source_row)
        started = time.perf_counter()
        cpu = time.process_time()
        done = services.run_sync(workspace.pk, run.pk)
        staged = time.perf_counter() - started
        staged_cpu = time.process_time() - cpu
        assert done.status == "succeeded", (done.status, done.error)
        profiler = cProfile.Profile() if args.profile and label == "full sync" else None
        started = time.perf_counter()
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        while processor.process_pending(workspace):
            pass
        if profiler:
            profiler.disable()
        applied = time.perf_counter() - started
        applied_cpu = time.process_time() - cpu
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        print(f"  {label}: {done.rows_read:,} rows read and staged in {staged:,.1f} s "
              f"({done.rows_read / staged:,.0f} rows/s; {1000 * staged_cpu / max(done.rows_read, 1):.3f} ms CPU "
              f"a row in this process), applied in {applied:,.1f} s "
              f"({done.rows_read / applied if applied else 0:,.0f} rows/s; "
              f"{1000 * applied_cpu / max(done.rows_read, 1):.3f} ms CPU a row in this process); end to end "
              f"{done.rows_read / (staged + applied):,.0f} rows/s", flush=True)
        print(f"  identify operations applied so far, by path: {dict(processor.IDENTIFY_PATHS)}", flush=True)
        return staged, applied, done.rows_read

    read_floor = baseline_read(args.rows)
    copy_floor = baseline_copy(args.rows)
    print(f"  baseline: server-side cursor read {args.rows / read_floor:,.0f} rows/s ({read_floor:.1f} s); "
          f"COPY into a scratch table {args.rows / copy_floor:,.0f} rows/s ({copy_floor:.1f} s)", flush=True)
    full_staged, full_applied, full_rows = sync("full sync")
    assert Profile.objects.for_workspace(workspace).count() == args.rows
    changed = change_rows(args.rows, args.changed_percent)
    inc_staged, inc_applied, inc_rows = sync(f"incremental ({changed:,} rows changed)")
    assert inc_rows == changed, (inc_rows, changed)
    assert Profile.objects.for_workspace(workspace).filter(attributes__plan="enterprise").count() == changed
    full = full_staged + full_applied
    print(f"  incremental run: {inc_staged + inc_applied:,.1f} s = {100 * (inc_staged + inc_applied) / full:.1f} % "
          f"of the full sync's {full:,.1f} s for {100 * inc_rows / full_rows:.1f} % of the rows", flush=True)


if __name__ == "__main__":
    main()
