"""Segment benchmark: full evaluation of typical data segments beside hand-written SQL, in one run.

    .venv/bin/python benchmarks/segments.py [--people 1000000] [--events-per-person 10] [--runs 3]

It creates a fresh database (ulak_bench_segments), migrates, creates a workspace, then:
1. Generates people, events, one object type with 10k objects and relationships for ~20 % of
   people with set-based SQL (INSERT ... SELECT ... FROM generate_series), deterministic values
   (hashint8extended of the row number), then VACUUM ANALYZE.
2. For each segment: `matching(workspace, tree, now=NOW).count()` and the ids list
   (`values_list("pk", flat=True)`) through the Django ORM, best of --runs, beside equivalent
   hand-written SQL over psycopg in the same process, best of --runs; ratio ORM / SQL.
   EXPLAIN (ANALYZE, BUFFERS) summary for the slowest ORM query and its hand-written counterpart.
3. Incremental upkeep per ingested event: only when profiles/segments/incremental.py exists.
Everything runs on this machine: the script and PostgreSQL share its cores.
"""

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from common import PG, ROOT, bench_env, h, timed
from common import fresh_database as common_fresh_database
from common import manage as common_manage

DB = "ulak_bench_segments"
OBJECTS = 10_000
# Every event timestamp and every relative window is measured from this instant.
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def env() -> dict:
    return bench_env(DB)


def manage(*args) -> str:
    return common_manage(env(), *args)


def fresh_database() -> None:
    common_fresh_database(DB, env())


# --- data -----------------------------------------------------------------------------------------

def generate(workspace_id: int, people: int, per_person: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        ts = NOW
        timed(conn, "people", f"""
            INSERT INTO profiles_profile (workspace_id, cio_id, external_id, email, phone, attributes,
                attribute_timestamps, time_zone, unsubscribed, suppressed, created_at, updated_at)
            SELECT %(ws)s, substr(md5(g::text), 1, 16), 'user-' || g, 'user' || g || '@bench.test', NULL,
                jsonb_build_object(
                    'plan', (ARRAY['free', 'free', 'free', 'pro', 'pro', 'enterprise'])[1 + {h('g', 1)} %% 6],
                    'country', (ARRAY['TR', 'US', 'DE', 'GB', 'FR', 'NL', 'BR', 'IN'])[1 + {h('g', 2)} %% 8],
                    'age', 18 + {h('g', 3)} %% 60,
                    'created_at', extract(epoch from %(now)s::timestamptz)::bigint - {h('g', 4)} %% (3 * 365 * 86400)),
                '{{}}', '', false, false, %(now)s, %(now)s
            FROM generate_series(1, %(people)s) g""", {"ws": workspace_id, "now": ts, "people": people})
        row = conn.execute("INSERT INTO profiles_objecttype (workspace_id, type_id, name, created_at)"
                           " VALUES (%s, '1', 'Company', %s) RETURNING id", [workspace_id, ts]).fetchone()
        timed(conn, "objects", f"""
            INSERT INTO profiles_customobject (workspace_id, object_type_id, object_id, attributes,
                attribute_timestamps, created_at, updated_at)
            SELECT %(ws)s, %(type)s, 'company-' || g,
                jsonb_build_object('tier', (ARRAY['gold', 'silver', 'silver', 'bronze', 'bronze'])[1 + {h('g', 5)} %% 5],
                                   'seats', 1 + {h('g', 6)} %% 500),
                '{{}}', %(now)s, %(now)s
            FROM generate_series(1, %(n)s) g""", {"ws": workspace_id, "type": row[0], "now": ts, "n": OBJECTS})
        first_object = conn.execute("SELECT min(id) FROM profiles_customobject WHERE workspace_id = %s",
                                    [workspace_id]).fetchone()[0]  # ids are contiguous: one INSERT
        timed(conn, "relationships (~20 % of people)", f"""
            INSERT INTO profiles_relationship (workspace_id, profile_id, object_id, attributes, created_at, updated_at)
            SELECT %(ws)s, p.id, %(first)s + {h('p.id', 7)} %% %(n)s,
                jsonb_build_object('role', (ARRAY['admin', 'member', 'member'])[1 + {h('p.id', 8)} %% 3]),
                %(now)s, %(now)s
            FROM profiles_profile p
            WHERE p.workspace_id = %(ws)s AND {h('p.id', 9)} %% 5 = 0""",
              {"ws": workspace_id, "now": ts, "n": OBJECTS, "first": first_object})
        # Events: drop the secondary indexes, load, rebuild them exactly as the migrations made them.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'profiles_event'"
            " AND indexname NOT LIKE '%%_pkey'").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        # name: 20 % purchase, 50 % page, 30 % app_opened; timestamps spread over 180 days before NOW.
        timed(conn, f"events ({per_person} per person)", f"""
            INSERT INTO profiles_event (workspace_id, profile_id, anonymous_id, name, type, data, timestamp,
                received_at, dedupe_id)
            SELECT %(ws)s, p.id, NULL, k.name, 'event',
                CASE k.name WHEN 'purchase' THEN jsonb_build_object('total', {h('k.r', 11)} %% 300)
                            WHEN 'page' THEN jsonb_build_object('path', '/p/' || {h('k.r', 12)} %% 50)
                            ELSE '{{}}'::jsonb END,
                %(now)s - make_interval(secs => {h('k.r', 13)} %% (180 * 86400)), %(now)s, NULL
            FROM profiles_profile p
            CROSS JOIN generate_series(1, %(per)s) i
            CROSS JOIN LATERAL (
                SELECT p.id * 100 + i AS r,
                       CASE WHEN {h('p.id * 100 + i', 10)} %% 10 < 2 THEN 'purchase'
                            WHEN {h('p.id * 100 + i', 10)} %% 10 < 7 THEN 'page'
                            ELSE 'app_opened' END AS name) k
            WHERE p.workspace_id = %(ws)s""", {"ws": workspace_id, "now": ts, "per": per_person})
        for name, indexdef in indexes:
            timed(conn, f"index {name}", indexdef)
        loaded = time.perf_counter() - started
        timed(conn, "VACUUM ANALYZE", "VACUUM ANALYZE")
    return loaded


# --- segments ---------------------------------------------------------------------------------------

PLAN_PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
AGE_30 = {"attribute": {"field": "age", "operator": "gte", "value": 30}}
PURCHASE_2_30D = {"event": {"name": "purchase", "count": {"operator": "at_least", "value": 2},
                            "within": {"value": 30, "unit": "days"}}}
PURCHASE_OVER_100 = {"event": {"name": "purchase",
                               "filters": [{"field": "total", "operator": "gt", "value": 100}]}}
GOLD_COMPANY = {"object": {"object_type_id": "1", "filters": [{"field": "tier", "operator": "eq", "value": "gold"}]}}
NESTED = {"and": [AGE_30, {"or": [PLAN_PRO, PURCHASE_2_30D]}, {"not": GOLD_COMPANY}]}

# Hand-written SQL: what an engineer who knows the data (clean JSON numbers) would write for speed.
# Each is a WHERE fragment over `profiles_profile p`; %(ws)s, %(since30)s and %(now)s are bound.
SQL = {
    "plan": "p.attributes ->> 'plan' = 'pro'",
    "age": "jsonb_typeof(p.attributes -> 'age') = 'number' AND (p.attributes -> 'age')::numeric >= 30",
    "purchase_2_30d": (
        "p.id IN (SELECT e.profile_id FROM profiles_event e WHERE e.workspace_id = %(ws)s"
        " AND e.name = 'purchase' AND e.timestamp >= %(since30)s AND e.timestamp <= %(now)s"
        " GROUP BY e.profile_id HAVING count(*) >= 2)"),
    "purchase_over_100": (
        "EXISTS (SELECT 1 FROM profiles_event e WHERE e.workspace_id = %(ws)s AND e.profile_id = p.id"
        " AND e.name = 'purchase' AND jsonb_typeof(e.data -> 'total') = 'number'"
        " AND (e.data -> 'total')::numeric > 100)"),
    "gold_company": (
        "EXISTS (SELECT 1 FROM profiles_relationship r JOIN profiles_customobject o ON o.id = r.object_id"
        " JOIN profiles_objecttype t ON t.id = o.object_type_id WHERE r.workspace_id = %(ws)s"
        " AND r.profile_id = p.id AND t.workspace_id = %(ws)s AND t.type_id = '1'"
        " AND o.attributes ->> 'tier' = 'gold')"),
}
SQL["nested"] = (f"({SQL['age']}) AND (({SQL['plan']}) OR ({SQL['purchase_2_30d']}))"
                 f" AND NOT ({SQL['gold_company']})")

SEGMENTS = [
    ("attribute: plan eq pro", PLAN_PRO, SQL["plan"]),
    ("attribute: age gte 30", AGE_30, SQL["age"]),
    ("event: purchase at_least 2 within 30 days", PURCHASE_2_30D, SQL["purchase_2_30d"]),
    ("event: purchase where total gt 100", PURCHASE_OVER_100, SQL["purchase_over_100"]),
    ("object: related to type 1 with tier eq gold", GOLD_COMPANY, SQL["gold_company"]),
    ("nested: age>=30 and (pro or purchase 2/30d) and not gold", NESTED, SQL["nested"]),
]


def best(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, result


def explain_summary(lines: list[str]) -> list[str]:
    top = lines[0].strip()
    return [top] + [line.strip() for line in lines if line.strip().startswith(("Planning Time", "Execution Time"))]


def bench_segments(workspace_id: int, runs: int) -> list[dict]:
    from accounts.models import Workspace
    from profiles.segments.conditions import matching

    workspace = Workspace.objects.get(pk=workspace_id)
    params = {"ws": workspace_id, "now": NOW, "since30": NOW - timedelta(days=30)}
    rows = []
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        for label, tree, where in SEGMENTS:
            qs = matching(workspace, tree, now=NOW)
            sql_where = f"FROM profiles_profile p WHERE p.workspace_id = %(ws)s AND ({where})"
            orm_count_ms, orm_count = best(lambda: qs.count(), runs)
            orm_ids_ms, orm_ids = best(lambda: list(qs.values_list("pk", flat=True)), runs)
            sql_count_ms, sql_count = best(
                lambda: conn.execute(f"SELECT count(*) {sql_where}", params).fetchone()[0], runs)
            sql_ids_ms, sql_ids = best(lambda: conn.execute(f"SELECT p.id {sql_where}", params).fetchall(), runs)
            if orm_count != sql_count or len(orm_ids) != len(sql_ids):
                raise SystemExit(f"{label}: ORM matched {orm_count}, hand-written SQL {sql_count}")
            row = {"segment": label, "members": orm_count, "orm_count_ms": orm_count_ms,
                   "sql_count_ms": sql_count_ms, "count_ratio": orm_count_ms / sql_count_ms,
                   "orm_ids_ms": orm_ids_ms, "sql_ids_ms": sql_ids_ms, "ids_ratio": orm_ids_ms / sql_ids_ms}
            rows.append(row)
            print(f"  {label}: {orm_count:,} members | count ORM {orm_count_ms:,.0f} ms, SQL {sql_count_ms:,.0f} ms,"
                  f" {row['count_ratio']:.2f}x | ids ORM {orm_ids_ms:,.0f} ms, SQL {sql_ids_ms:,.0f} ms,"
                  f" {row['ids_ratio']:.2f}x", flush=True)
        slowest = max(range(len(rows)), key=lambda i: rows[i]["orm_count_ms"])
        label, tree, where = SEGMENTS[slowest]
        qs = matching(workspace, tree, now=NOW)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the slowest, {label}:")
        print("  ORM (ids query):")
        for line in explain_summary(qs.order_by().values("pk").explain(analyze=True, buffers=True).splitlines()):
            print(f"    {line}")
        print("  hand-written SQL (ids query):")
        plan = [r[0] for r in conn.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT p.id FROM profiles_profile p WHERE p.workspace_id = %(ws)s"
            f" AND ({where})", params)]
        for line in explain_summary(plan):
            print(f"    {line}")
    return rows


INCREMENTAL_OPS = 20_000
LIVE_SEGMENTS = [("pro", PLAN_PRO), ("buyers 30d", PURCHASE_2_30D), ("big purchase", PURCHASE_OVER_100),
                 ("gold company", GOLD_COMPANY), ("nested", NESTED)]


def stage_events(workspace_id: int, first_person: int, count: int) -> None:
    """Stage `count` purchase events (one per person) straight into the inbound table, as the API
    would, without scheduling a worker; the benchmark runs the processor itself."""
    now = int(time.time())
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute("""
            INSERT INTO profiles_inboundoperation (workspace_id, source, payload, received_at)
            SELECT %(ws)s, 'bench', jsonb_build_object('op', 'event', 'person', jsonb_build_object('id', 'user-' || g),
                'name', 'purchase', 'type', 'event', 'data', jsonb_build_object('total', 50 + g %% 100),
                'timestamp', %(ts)s - g %% 3600, 'id', 'bench-inc-' || g),
                now()
            FROM generate_series(%(first)s::int, %(last)s::int) g""",
                     {"ws": workspace_id, "ts": now, "first": first_person, "last": first_person + count - 1})


def bench_incremental(workspace_id: int, people: int) -> dict | None:
    if not (ROOT / "profiles" / "segments" / "incremental.py").exists():
        print("\nIncremental upkeep: skipped (profiles/segments/incremental.py does not exist yet)")
        return None
    from accounts.models import Workspace
    from profiles.ingest.processor import process_pending
    from profiles.models import Segment, SegmentKind, SegmentState
    from profiles.segments.conditions import validate

    workspace = Workspace.objects.get(pk=workspace_id)
    count = min(INCREMENTAL_OPS, people // 2)
    results = {}
    print(f"\nIncremental upkeep: process_pending over {count:,} staged purchase events (one per person):")
    for label, first in (("without data segments", 1), ("with 5 data segments", count + 1)):
        if first > 1:
            for name, tree in LIVE_SEGMENTS:
                Segment.objects.for_workspace(workspace).create(name=name, kind=SegmentKind.DATA,
                                        conditions=validate(tree), state=SegmentState.READY)
        stage_events(workspace_id, first, count)
        started = time.perf_counter()
        applied = process_pending(workspace)
        elapsed = time.perf_counter() - started
        if applied != count:
            raise SystemExit(f"process_pending applied {applied}, staged {count}")
        results[label] = elapsed
        print(f"  {label}: {elapsed:,.1f} s, {count / elapsed:,.0f} events/s, {elapsed * 1000 / count:.2f} ms/event",
              flush=True)
    added = (results["with 5 data segments"] - results["without data segments"]) * 1000 / count
    print(f"  added by 5 live data segments: {added:.2f} ms per event (target < 5 ms)")
    return {"events": count, **{k: round(v, 2) for k, v in results.items()}, "added_ms_per_event": round(added, 3)}


def main() -> None:
    global DB
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events-per-person", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default=DB, help=f"database to (re)create, default {DB}")
    parser.add_argument("--incremental-only", action="store_true",
                        help="reuse the database of a previous run and measure only the incremental upkeep")
    parser.add_argument("--segments-only", action="store_true",
                        help="reuse the database of a previous run and measure only segment evaluation")
    opts = parser.parse_args()
    DB = opts.database
    if opts.incremental_only or opts.segments_only:
        os.environ.update(env())
        import django
        django.setup()
        with psycopg.connect(f"{PG}/{DB}") as conn:
            workspace_id, people = conn.execute(
                "SELECT workspace_id, count(*) FROM profiles_profile GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
        if opts.segments_only:
            print(f"Segments (best of {opts.runs}, ORM in-process vs hand-written SQL over psycopg):", flush=True)
            bench_segments(workspace_id, opts.runs)
        else:
            print(json.dumps({"incremental": bench_incremental(workspace_id, people)}))
        return

    fresh_database()
    keys = json.loads(manage("create_workspace", "Bench", "--owner-email", f"bench-{uuid.uuid4().hex[:6]}@ulak.test",
                             "--password", "bench-pass-123", "--json"))
    workspace_id = keys["workspace_id"]
    print(f"Generating {opts.people:,} people, {opts.people * opts.events_per_person:,} events,"
          f" {OBJECTS:,} objects:", flush=True)
    loaded = generate(workspace_id, opts.people, opts.events_per_person)
    print(f"Generation (rows and indexes, before VACUUM ANALYZE): {loaded:,.1f} s", flush=True)

    os.environ.update(env())
    import django
    django.setup()
    print(f"\nSegments (best of {opts.runs}, ORM in-process vs hand-written SQL over psycopg):", flush=True)
    rows = bench_segments(workspace_id, opts.runs)
    incremental = bench_incremental(workspace_id, opts.people)
    print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                      "cores": os.cpu_count(), "people": opts.people,
                      "events": opts.people * opts.events_per_person, "generation_s": round(loaded, 1),
                      "segments": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
                                   for r in rows], "incremental": incremental}))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
