"""Console dashboard and delivery report benchmark: each panel's read at 1 M people / 10 M events.

    .venv/bin/python benchmarks/dashboard.py [--people 1000000] [--events 10000000]
        [--deliveries 1000000] [--runs 5] [--reuse]

It creates a fresh database (ulak_bench_dashboard), migrates, creates a workspace, and fills it
with set-based SQL: people; events received in time order over 180 days (as ingest writes them,
so `received_at` follows the table's physical order); deliveries over 60 days (sent, delivered,
opened, clicked, bounced and failed with a few reasons; 20 campaigns and 5 transactional messages);
journeys of the active campaigns; a small ingest backlog; then VACUUM ANALYZE. Then, best of
--runs, each panel's selector in-process (the dashboard's five and the delivery report's), beside
the same figure computed by hand-written SQL over psycopg in the same run (the baseline).
Target (issue 14): each panel < 300 ms. The daily message chart reads the 15-minute activity
rollup (channels/activity.py); the deliveries scan it replaced is measured beside it. Everything runs on this machine, PostgreSQL included.
"""

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime, time as dtime, timedelta

import psycopg
from common import PG, ROOT, bench_env, h, timed, machine
from common import fresh_database as common_fresh_database
from common import manage as common_manage

DB = "ulak_bench_dashboard"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CAMPAIGNS = 20
MESSAGES = 5


def env() -> dict:
    return bench_env(DB)


def drop_indexes(conn, table: str) -> list[tuple[str, str]]:
    """Drop the table's secondary indexes (not the primary key or unique ones) before a bulk load;
    returns them for `rebuild_indexes`, exactly as the migrations made them."""
    indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s"
                           " AND indexname NOT LIKE '%%_pkey' AND indexdef NOT LIKE '%%UNIQUE%%'", [table]).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    return indexes


def rebuild_indexes(conn, indexes) -> None:
    for name, indexdef in indexes:
        timed(conn, f"index {name}", indexdef)


def generate(workspace_id: int, people: int, events: int, deliveries: int) -> None:
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        params = {"ws": workspace_id, "now": NOW, "people": people, "events": events, "deliveries": deliveries}
        timed(conn, "people", f"""
            INSERT INTO profiles_profile (workspace_id, cio_id, external_id, email, phone, attributes,
                attribute_timestamps, time_zone, unsubscribed, suppressed, created_at, updated_at)
            SELECT %(ws)s, substr(md5(g::text), 1, 16), 'user-' || g, 'user' || g || '@bench.test', NULL,
                jsonb_build_object('plan', (ARRAY['free', 'pro', 'enterprise'])[1 + {h('g', 1)} %% 3]),
                '{{}}', '', false, false, %(now)s, %(now)s
            FROM generate_series(1, %(people)s) g""", params)
        first = conn.execute("SELECT min(id) FROM profiles_profile WHERE workspace_id = %s", [workspace_id]).fetchone()[0]
        params["first"] = first
        indexes = drop_indexes(conn, "profiles_event")
        # Received in time order over 180 days before NOW: row g arrives at NOW - 180 d * (1 - g / n).
        timed(conn, "events", f"""
            INSERT INTO profiles_event (workspace_id, profile_id, anonymous_id, name, type, data, timestamp,
                received_at, dedupe_id)
            SELECT %(ws)s, %(first)s + {h('g', 10)} %% %(people)s, NULL,
                (ARRAY['purchase', 'page', 'page', 'app_opened'])[1 + {h('g', 11)} %% 4], 'event', '{{}}',
                t.at - interval '2 seconds', t.at, NULL
            FROM generate_series(1, %(events)s) g
            CROSS JOIN LATERAL (SELECT %(now)s::timestamptz - make_interval(secs => 180 * 86400
                * (1 - g::float8 / %(events)s)) AS at) t""", params)
        rebuild_indexes(conn, indexes)
        campaigns = [row[0] for row in conn.execute(
            """INSERT INTO campaigns_campaign (workspace_id, key, name, description, type, state, trigger, audience,
                   re_entry, exit_rules, goal, journey_key, workflow, priority, exempt_from_caps, when_capped,
                   when_quiet, version, webhook_token, activated_at, created_at, updated_at)
               SELECT %(ws)s, '', 'Campaign ' || g, '', 'triggered', 'active', '{}', NULL, '{}', '{}', NULL, '',
                   '{}', 0, false, 'wait', 'hold', 1, '', %(now)s - make_interval(days => g), %(now)s, %(now)s
               FROM generate_series(1, %(n)s) g RETURNING id""", {**params, "n": CAMPAIGNS}).fetchall()]
        params["campaigns"] = campaigns
        reasons = ["550 5.1.1 mailbox unavailable", "552 mailbox full", "21610 unsubscribed recipient",
                   "provider timeout", "invalid phone number"]
        params["reasons"] = reasons
        indexes = drop_indexes(conn, "channels_delivery")
        # Created in time order over 60 days; 60 % campaign, 40 % transactional (5 messages).
        timed(conn, "deliveries", f"""
            INSERT INTO channels_delivery (workspace_id, public_id, profile_id, channel, source, source_id,
                variant, recipient, content, message_data, subject, body, body_plain, rendered_payload,
                retain_content, send_to_unsubscribed, tracked, status, failure_reason, provider_message_id,
                idempotency_key, attempts, created_at, sent_at, delivered_at, opened_at, clicked_at, failed_at,
                claim_token, updated_at)
            SELECT %(ws)s, md5('d' || g), %(first)s + {h('g', 20)} %% %(people)s,
                CASE WHEN r.x %% 10 < 8 THEN 'email' ELSE 'sms' END,
                CASE WHEN r.x %% 5 < 3 THEN 'campaign' ELSE 'transactional' END,
                CASE WHEN r.x %% 5 < 3 THEN (%(campaigns)s::bigint[])[1 + r.y %% {CAMPAIGNS}]::text
                     ELSE (1 + r.y %% {MESSAGES})::text END,
                '', '', '{{}}', '{{}}', '', '', '', '{{}}', false, false, true,
                CASE WHEN r.z < 20 THEN 'failed' WHEN r.z < 40 THEN 'bounced' WHEN r.z < 300 THEN 'sent'
                     WHEN r.z < 700 THEN 'delivered' WHEN r.z < 950 THEN 'opened' ELSE 'clicked' END,
                CASE WHEN r.z < 40 THEN (%(reasons)s::text[])[1 + r.y %% 5] ELSE '' END, '',
                'k' || g, 1, t.at,
                CASE WHEN r.z >= 20 THEN t.at + interval '1 second' END,
                CASE WHEN r.z >= 300 THEN t.at + interval '5 seconds' END,
                CASE WHEN r.z >= 700 THEN t.at + interval '2 hours' END,
                CASE WHEN r.z >= 950 THEN t.at + interval '3 hours' END,
                CASE WHEN r.z < 40 THEN t.at + interval '10 seconds' END, '', t.at
            FROM generate_series(1, %(deliveries)s) g
            CROSS JOIN LATERAL (SELECT {h('g', 21)} AS x, {h('g', 22)} AS y, {h('g', 23)} %% 1000 AS z) r
            CROSS JOIN LATERAL (SELECT %(now)s::timestamptz - make_interval(secs => 60 * 86400
                * (1 - g::float8 / %(deliveries)s)) AS at) t""", params)
        rebuild_indexes(conn, indexes)
        timed(conn, "delivery events (bounces)", """
            INSERT INTO channels_deliveryevent (workspace_id, delivery_id, kind, at, data)
            SELECT workspace_id, id, 'bounced', failed_at, '{}' FROM channels_delivery
            WHERE workspace_id = %(ws)s AND status = 'bounced'""", params)
        timed(conn, "journeys (10 per campaign per 1,000 people)", f"""
            INSERT INTO campaigns_journey (workspace_id, campaign_id, profile_id, key, exclusive, state, exit_reason,
                step, seq, wait, trigger_ref, trigger_data, data, next_run_at, entered_at, ended_at, updated_at, version)
            SELECT %(ws)s, c.id, %(first)s + {h('c.id * 1000000 + g', 30)} %% %(people)s, '', false,
                CASE WHEN g %% 3 = 0 THEN 'waiting' ELSE 'completed' END, '', 'wait', 1, '{{}}',
                'bench:' || c.id || ':' || g, '{{}}', '{{}}', CASE WHEN g %% 3 = 0 THEN %(now)s + interval '1 day' END,
                %(now)s - make_interval(secs => {h('g', 31)} %% (60 * 86400)), NULL, %(now)s, 1
            FROM unnest(%(campaigns)s::bigint[]) c(id) CROSS JOIN generate_series(1, %(per)s) g""",
              {**params, "per": max(1, people // 100)})
        timed(conn, "ingest backlog", """
            INSERT INTO profiles_inboundoperation (workspace_id, source, payload, received_at)
            SELECT %(ws)s, 'track', '{"op": "identify"}', %(now)s - make_interval(secs => 300 - g %% 300)
            FROM generate_series(1, 5000) g""", params)
        timed(conn, "VACUUM ANALYZE", "VACUUM ANALYZE")


BASELINES = {
    "people": "SELECT count(*) FROM profiles_profile WHERE workspace_id = %(ws)s",
    "events today": "SELECT count(*) FROM profiles_event WHERE workspace_id = %(ws)s AND received_at >= %(today)s",
    "messages per day": """SELECT (slot AT TIME ZONE 'UTC')::date, kind, sum(count) FROM channels_deliveryactivity
        WHERE workspace_id = %(ws)s AND source = '*' AND source_id = '' AND slot >= %(start)s AND slot < %(end)s GROUP BY 1, 2""",
    "messages per day, from the deliveries": """SELECT (v.at AT TIME ZONE 'UTC')::date, v.kind, count(*) FROM channels_delivery d
        CROSS JOIN LATERAL (VALUES ('sent', d.sent_at), ('delivered', d.delivered_at), ('opened', d.opened_at),
            ('clicked', d.clicked_at), ('failed', d.failed_at)) v(kind, at)
        WHERE d.workspace_id = %(ws)s AND d.created_at >= %(start)s - interval '30 days'
          AND v.at >= %(start)s AND v.at < %(end)s GROUP BY 1, 2""",
    "failure reasons": """SELECT status, channel, left(failure_reason, 120), count(*) FROM channels_delivery
        WHERE workspace_id = %(ws)s AND created_at >= %(start)s - interval '30 days' AND failed_at >= %(start)s
          AND status IN ('bounced', 'failed', 'undeliverable') GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 8""",
    "sending queue": """SELECT channel, count(*) FROM channels_delivery WHERE workspace_id = %(ws)s
        AND status IN ('queued', 'sending') AND (send_at IS NULL OR send_at <= %(end)s) GROUP BY 1""",
    "active campaigns": """SELECT c.id, (SELECT count(*) FILTER (WHERE j.state IN ('active', 'waiting'))
        FROM campaigns_journey j WHERE j.workspace_id = c.workspace_id AND j.campaign_id = c.id),
        (SELECT count(*) FILTER (WHERE d.sent_at IS NOT NULL) FROM channels_delivery d
         WHERE d.workspace_id = c.workspace_id AND d.source = 'campaign' AND d.source_id = c.id::text
           AND d.created_at >= %(start)s)
        FROM campaigns_campaign c WHERE c.workspace_id = %(ws)s AND c.state = 'active'
        ORDER BY c.activated_at DESC LIMIT 10""",
    "delivery report (30 days)": """SELECT source, source_id, channel, sum(count) FILTER (WHERE kind = 'sent'),
        sum(count) FILTER (WHERE kind = 'delivered'), sum(count) FILTER (WHERE kind = 'opened'),
        sum(count) FILTER (WHERE kind = 'clicked'), sum(count) FILTER (WHERE kind = 'bounced'),
        sum(count) FILTER (WHERE kind = 'failed'), sum(count) FILTER (WHERE kind = 'unsubscribed')
        FROM channels_deliveryactivity WHERE workspace_id = %(ws)s AND source <> '*'
          AND slot >= %(start)s AND slot < %(end)s GROUP BY 1, 2, 3""",
    "delivery report, from the deliveries": """SELECT source, source_id, channel, count(*), count(sent_at),
        count(delivered_at), count(opened_at), count(clicked_at), count(*) FILTER (WHERE status = 'bounced')
        FROM channels_delivery WHERE workspace_id = %(ws)s AND created_at >= %(start)s AND created_at < %(end)s
        GROUP BY 1, 2, 3""",
}


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(workspace_id: int, runs: int) -> list[dict]:
    from accounts.models import Workspace
    from campaigns.journeys.selectors import active_campaigns
    from channels.selectors import delivery_backlog, delivery_report, failure_reasons, message_activity
    from core.context import workspace_scope
    from profiles.selectors import overview

    workspace = Workspace.objects.get(pk=workspace_id)
    today = datetime.combine(NOW.date(), dtime.min, tzinfo=UTC)
    start, end = today - timedelta(days=29), today + timedelta(days=1)
    ours = {
        "people": lambda: overview(workspace, since=today),
        "events today": lambda: overview(workspace, since=today),
        "messages per day": lambda: message_activity(workspace, start=start, end=end, time_zone="UTC"),
        "failure reasons": lambda: failure_reasons(workspace, since=start),
        "sending queue": lambda: delivery_backlog(workspace, now=NOW),
        "active campaigns": lambda: active_campaigns(workspace, since=start),
        "delivery report (30 days)": lambda: delivery_report(workspace, start=start, end=end),
    }
    params = {"ws": workspace_id, "today": today, "start": start, "end": end}
    rows = []
    with workspace_scope(workspace), psycopg.connect(f"{PG}/{DB}") as conn:
        for name, fn in ours.items():
            if name == "events today":
                continue  # the people panel reads both in one selector call
            fn()  # warm: plans, caches
            ulak = best(fn, runs)
            baseline = best(lambda: conn.execute(BASELINES[name], params).fetchall(), runs)
            if name == "people":
                baseline += best(lambda: conn.execute(BASELINES["events today"], params).fetchall(), runs)
                name = "people + events today + ingest backlog"
            row = {"panel": name, "ulak_ms": round(ulak * 1000, 1), "sql_ms": round(baseline * 1000, 1)}
            extra = ""
            scan_sql = BASELINES.get(f"{name.split(' (')[0]}, from the deliveries")
            if scan_sql:  # what the figure cost when it was read from the deliveries themselves
                scan = best(lambda: conn.execute(scan_sql, params).fetchall(), runs)
                row["deliveries_scan_ms"] = round(scan * 1000, 1)
                extra = f"; the same from the deliveries {scan * 1000:,.1f} ms"
            rows.append(row)
            print(f"  {name}: {ulak * 1000:,.1f} ms (hand-written SQL {baseline * 1000:,.1f} ms{extra})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="measure the database of a previous run again")
    opts = parser.parse_args()
    if opts.reuse:
        common_manage(env(), "migrate", "--noinput")  # a database of an earlier version: bring it up to date
        with psycopg.connect(f"{PG}/{DB}") as conn:
            workspace_id = conn.execute("SELECT workspace_id FROM profiles_profile GROUP BY 1 "
                                        "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    else:
        common_fresh_database(DB, env())
        keys = json.loads(common_manage(env(), "create_workspace", "Bench", "--owner-email",
                                        f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123",
                                        "--json"))
        workspace_id = keys["workspace_id"]
        print(f"Generating {opts.people:,} people, {opts.events:,} events, {opts.deliveries:,} deliveries:", flush=True)
        started = time.perf_counter()
        generate(workspace_id, opts.people, opts.events, opts.deliveries)
        print(f"Generation: {time.perf_counter() - started:,.1f} s", flush=True)
    os.environ.update(env())
    import django

    django.setup()
    if not opts.reuse:
        from channels.activity import rebuild

        started = time.perf_counter()
        rebuild()  # the deliveries were written directly: count them into the activity rollup, as the migration does
        print(f"Activity rollup rebuilt from the deliveries: {time.perf_counter() - started:,.1f} s", flush=True)
    print(f"\nPanels (best of {opts.runs}, in-process selectors vs hand-written SQL over psycopg):", flush=True)
    rows = measure(workspace_id, opts.runs)
    print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(DB),
                      "platform": platform.platform(), "people": opts.people, "events": opts.events,
                      "deliveries": opts.deliveries, "panels": rows}))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
