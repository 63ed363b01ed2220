"""CPU time per delivery of the single send path (transactional sends, one task per delivery), in-process.

    .venv/bin/python benchmarks/single_path_cpu.py [--deliveries 1000] [--warmup 50] [--profile 200]
                                                   [--redis redis://127.0.0.1:6379/11] [--keep-db]

It creates a fresh database (ulak_bench_single), migrates, creates a workspace with people, an SMTP
channel configuration pointing at an aiosmtpd sink in a process of its own (benchmarks/
messaging_sinks.py, so the sink's CPU is not counted here), a layout, a snippet and a transactional
email message. Then, as the API's `POST /v1/send/email` does, --warmup + --deliveries + 20 +
--profile transactional deliveries are queued (campaigns.transactional.send_transactional; the send
task's publication goes to an in-memory Celery broker, nothing is consumed), and each is sent by
`channels.sending.deliver` in this process (what the `email.send_delivery` task runs, without
Celery's own per-task work), against the real PostgreSQL and Redis:

- warm-up: --warmup deliveries (templates parsed, connections opened);
- timed: --deliveries deliveries, `time.process_time()` (this process's CPU: Django, psycopg,
  rendering, MIME, smtplib — not PostgreSQL's, Redis's or the sink's) and wall time;
- counted: 20 deliveries with every SQL statement counted and timed (execute_wrapper), by kind;
- profiled: --profile deliveries under cProfile with `time.process_time` as its clock (CPU, not the
  waits on PostgreSQL or the sink), the top functions by cumulative and own time.

Every delivery must end `sent` and arrive at the sink exactly once (exit status 1 otherwise).
CPU time and the statement count are the figures to compare between runs; wall time depends on
how busy the machine is.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
import uuid
from collections import defaultdict

from common import ROOT, bench_env, fresh_database, machine, manage, query_kind
from messaging_sinks import Sink

DB = "ulak_bench_single"


def env(redis: str) -> dict:
    return bench_env(DB, REDIS_URL=redis, CELERY_BROKER_URL="memory://", ULAK_CACHE_PREFIX="bench-single",
                     ULAK_SSRF_ALLOWLIST="127.0.0.1/32")


def seed(workspace, people: int, smtp_port: int):
    import psycopg

    from campaigns.services import create_transactional_message
    from channels.content.models import Layout, Snippet
    from channels.models import ChannelConfig
    from common import PG

    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute(
            "INSERT INTO profiles_profile (workspace_id, cio_id, external_id, email, phone, attributes,"
            " attribute_timestamps, time_zone, unsubscribed, suppressed, created_at, updated_at)"
            " SELECT %s, md5(n::text), 'user-' || n, 'user' || n || '@example.test',"
            " '+90555' || lpad(n::text, 7, '0'), jsonb_build_object('first_name', 'Ada ' || n, 'plan', 'pro'),"
            " '{}'::jsonb, '', false, false, now(), now() FROM generate_series(1, %s) AS n",
            [workspace.pk, people])
        conn.execute("ANALYZE profiles_profile")
    ChannelConfig(workspace=workspace, name="SMTP sink", type="email", provider="smtp", sender="shop@example.test",
                  is_default=True, settings={"host": "127.0.0.1", "port": smtp_port}).save()
    Snippet.objects.for_workspace(workspace).create(name="footer", value="Ulak Shop · {{ customer.plan }} plan")
    layout = Layout.objects.for_workspace(workspace).create(
        name="Base", body="<html><body><div class='c'>{{ content }}</div></body></html>")
    return create_transactional_message(
        workspace=workspace, name="order-confirmation", channel="email", layout=layout,
        subject="Order {{ trigger.order_id }} confirmed",
        body=("<h1>Thanks {{ customer.first_name }}</h1><p>Order {{ trigger.order_id }}: "
              "{% for item in trigger.items %}{{ item.name }} × {{ item.qty }}{% unless forloop.last %}, "
              "{% endunless %}{% endfor %}</p><p><a href='https://shop.example.test/orders/{{ trigger.order_id }}'>"
              "Track it</a></p><p>{{ snippets.footer }}</p>"))


def queue(workspace, message, count: int) -> list[int]:
    """`count` transactional sends, one transaction each, as the send API makes them."""
    from django.db import connection

    from campaigns.transactional import SendRequest, send_transactional
    from core.context import workspace_scope

    ids = []
    with workspace_scope(workspace):
        for n in range(1, count + 1):
            request = SendRequest(channel="email", person_ref={"id": f"user-{n}"}, message_ref=message.pk,
                                  message_data={"order_id": f"O-{n}", "items": [{"name": "Tea", "qty": 2},
                                                                                {"name": "Cup", "qty": 1}]})
            delivery, _ = send_transactional(workspace=workspace, request=request)
            ids.append(delivery.pk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE channels_delivery")
    return ids


def send_all(workspace, ids: list[int]) -> list[str]:
    from channels.sending import deliver
    from core.context import workspace_scope

    results = []
    with workspace_scope(workspace):
        for pk in ids:
            results.append(deliver(pk, token=uuid.uuid4().hex).result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--top", type=int, default=25)
    opts = parser.parse_args()
    counted_n = 20
    total = opts.warmup + opts.deliveries + counted_n + opts.profile

    with Sink("smtp") as sink:
        fresh_database(DB, env(opts.redis))
        keys = json.loads(manage(env(opts.redis), "create_workspace", "Bench", "--owner-email",
                                 f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123", "--json"))
        os.environ.update(env(opts.redis))
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.db import connection

        from accounts.models import Workspace
        from channels.models import Delivery

        workspace = Workspace.objects.get(pk=keys["workspace_id"])
        message = seed(workspace, total, sink.port)
        started = time.perf_counter()
        ids = queue(workspace, message, total)
        print(f"queued {total} transactional emails in {time.perf_counter() - started:.1f} s", flush=True)
        warm, timed_ids = ids[:opts.warmup], ids[opts.warmup:opts.warmup + opts.deliveries]
        counted_ids = ids[opts.warmup + opts.deliveries:opts.warmup + opts.deliveries + counted_n]
        profiled_ids = ids[opts.warmup + opts.deliveries + counted_n:]

        results = send_all(workspace, warm)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results += send_all(workspace, timed_ids)
        cpu = (time.process_time() - cpu0) * 1000 / len(timed_ids)
        wall = (time.perf_counter() - wall0) * 1000 / len(timed_ids)

        queries: dict[str, list] = defaultdict(lambda: [0, 0.0])

        def timing(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries[query_kind(sql)][0] += 1
                queries[query_kind(sql)][1] += time.perf_counter() - began

        with connection.execute_wrapper(timing):
            results += send_all(workspace, counted_ids)
        statements = sum(n for n, _ in queries.values()) / counted_n
        db_ms = sum(t for _, t in queries.values()) * 1000 / counted_n

        profiler = cProfile.Profile(time.process_time)  # CPU time, not wall: waits on the database are left out
        profiler.enable()
        results += send_all(workspace, profiled_ids)
        profiler.disable()

        records, _ = sink.take()
        problems = []
        not_sent = sum(1 for r in results if r != "sent")
        statuses = dict(Delivery.objects.for_workspace(workspace).filter(pk__in=ids).values_list("status").order_by().annotate(
            n=django.db.models.Count("pk")))
        if not_sent:
            problems.append(f"{not_sent} deliveries not sent (statuses {statuses})")
        if len(records) != total:
            problems.append(f"the sink received {len(records)} messages, {total} sent")

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(opts.top)
    stats.sort_stats("tottime").print_stats(opts.top)
    print(f"\nsingle path, {opts.deliveries} transactional emails (after {opts.warmup} warm-up), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {json.dumps(machine(DB))}, "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"  CPU per delivery (this process): {cpu:.2f} ms; wall {wall:.2f} ms")
    print(f"  statements per delivery: {statements:.2f} ({db_ms:.2f} ms of wall in the database driver)")
    for kind, (n, t) in sorted(queries.items(), key=lambda item: -item[1][0]):
        print(f"    {kind}: {n / counted_n:.2f} per delivery, {t * 1000 / counted_n:.3f} ms")
    print(f"  cProfile of {opts.profile} deliveries:")
    print(out.getvalue())
    result = {"deliveries": opts.deliveries, "cpu_ms_per_delivery": round(cpu, 2), "wall_ms_per_delivery": round(wall, 2),
              "statements_per_delivery": statements,
              "statements": {kind: n / counted_n for kind, (n, _) in queries.items()}, "problems": problems}
    print(json.dumps(result))
    if problems:
        print("PROBLEMS: " + "; ".join(problems))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
