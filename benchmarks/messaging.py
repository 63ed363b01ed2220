"""Messaging benchmark: email to a local SMTP sink and SMS to a local Twilio fake, through the
single-delivery path (transactional sends), the batched path (broadcast deliveries) and bare
clients of the same sinks.

    .venv/bin/python benchmarks/messaging.py [--messages 5000] [--clients 4] [--workers 2] [--rate 10]
        [--batch-emails 5000] [--batch-sms 5000] [--bare-messages N] [--bare-connections 1,2]
        [--queue-chunk 1000] [--batch-steady 1000] [--profile-batch 100] [--only single,batch,bare,profile]
        [--channels email,sms] [--sinks process|thread] [--redis redis://127.0.0.1:6379/12]

It creates a fresh database (ulak_bench_messaging), migrates, creates a workspace with enough
people for every phase, an SMTP email channel pointing at an aiosmtpd sink and a Twilio SMS
channel pointing at a loopback HTTP server answering as Twilio's Messages API, and two messages
(Liquid templates using customer attributes, trigger data, a snippet and, for email, a layout;
email open/click tracking on). The sinks (benchmarks/messaging_sinks.py) run in processes of their
own (--sinks thread: in this process, as before) and record every message (Message-ID for email,
`To` for SMS), so each phase checks that every message arrived exactly once. Then, per channel,
with --workers Celery worker processes (prefork, the channel's queue only):

  single (the one-task-per-delivery path, transactional sends):
    saturated: POST /v1/send/<channel> for --messages/2 people from --clients concurrent client
      processes (gunicorn) as fast as they go, with no worker running (API calls/s); then the
      workers start and drain that backlog: deliveries/s between the first and the last `sent_at`;
    steady: the other half from one caller at --rate calls/s (below capacity); the API-call-to-
      provider latency of each delivery (request start → `sent_at`), p50/p99.
  batch (the batched path, channels/batching.py): --batch-emails / --batch-sms broadcast
    deliveries queued through channels.deliveries.queue_delivery, --queue-chunk per transaction,
    with no worker running (each commit publishes `<channel>.send_batch` unless the configuration's
    Redis key says one is on its way; the tasks waiting in the queue are counted), then ANALYZE
    (as autovacuum would; it is off on the CI machine's PostgreSQL); the claim
    statement is timed once against the full backlog (rolled back); then the workers start and
    drain it: deliveries/s between the first and the last `sent_at` (and between the first and the
    last arrival at the sink), the rate of the first and the last tenth, and how many batch tasks
    were sending at once (distinct claim tokens per second).
    Then (--batch-steady, 1000) more broadcast deliveries are queued one at a time, each in its own
    transaction, at --rate a second with the workers running: the batch path's hand-off latency
    (just before queue_delivery → `sent_at`), p50/p99, every message checked at the sink.
  bare: the same number of messages (a message the batch phase sent, its Message-ID and recipient
    replaced; for SMS the same form) into the same sink by a bare client: smtplib over one
    connection per process / a requests.Session (keep-alive) per process, with 1 and with
    --workers processes (--bare-connections). The ratios batch/bare use the bare run with as many
    connections as Ulak had batch tasks sending at once.
  profile: one batch of --profile-batch deliveries sent in this process by
    channels.batching.send_batch (after a warm-up batch of 10): once with every SQL statement
    timed, once under cProfile (where the time goes).

CPU (from /proc), per message, during each drain (from the first delivery done to the last) and
each bare run: the worker processes (and how busy each was), the sink process, the PostgreSQL
backends connected to this database (a backend that ends in the window counts as last seen; the
benchmark's polling connection is left out), Redis, this process, the bare clients, and how busy
the whole machine was; plus how many PostgreSQL connections were opened (pg_stat_database). Redis
and the machine figures include anything else running on this machine meanwhile. A sink using
≥ 85 % of a core is reported as the bottleneck.

It uses its own Redis database (--redis; FLUSHDB'd at the start and at the end) as Celery broker
and cache. Everything shares this machine's cores: clients, gunicorn, workers, PostgreSQL, Redis
and the sinks. The figures go to stdout as lines and a table, and one JSON object at the end; the
exit status is 1 when a message was lost, duplicated or not sent.
"""

import argparse
import cProfile
import json
import multiprocessing
import os
import pstats
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from common import PG, ROOT, bench_env, code_area, machine, percentile, post_each, query_kind, rounded, stop, wait_port
from common import fresh_database as common_fresh_database
from common import manage as common_manage
from common import start as common_start
from messaging_sinks import Sink, bare_http, bare_smtp

DB = "ulak_bench_messaging"
PORT = 18932
REDIS = "redis://127.0.0.1:6379/12"
SINK_BOUND = 0.85  # a sink using this much of one core is the bottleneck
TARGET = 0.5  # issue 13: the batched path at ≥ 50 % of the bare rate
CHANNEL_QUEUE = {"email": "email", "sms": "sms"}
PHASES = ("single", "batch", "bare", "profile")


def env() -> dict:
    return bench_env(DB, REDIS_URL=REDIS, WEB_CONCURRENCY="2", PORT=str(PORT), ULAK_SSRF_ALLOWLIST="127.0.0.1/32",
                     ULAK_PUBLIC_URL=f"http://127.0.0.1:{PORT}", ULAK_INGEST_RATE_LIMIT=str(10**9))


def setup_django() -> None:
    os.environ.update(env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


def queue_length(queue: str) -> int:
    """Messages waiting in a Celery queue (the Redis broker keeps each queue as a list)."""
    import redis

    client = redis.Redis.from_url(REDIS)
    return client.llen(queue) if client.type(queue) == b"list" else 0


def seed(workspace_id: int, people: int, smtp_port: int, twilio_url: str) -> dict:
    """People, channels and templates, through the ORM and Ulak's own services."""
    from accounts.models import Workspace
    from campaigns.services import create_transactional_message
    from channels.configs import write_secrets
    from channels.content.models import Layout, Snippet
    from channels.models import ChannelConfig

    workspace = Workspace.objects.get(pk=workspace_id)
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute(
            "INSERT INTO profiles_profile (workspace_id, cio_id, external_id, email, phone, attributes,"
            " attribute_timestamps, time_zone, unsubscribed, suppressed, created_at, updated_at)"
            " SELECT %s, md5(n::text), 'user-' || n, 'user' || n || '@example.test',"
            " '+90555' || lpad(n::text, 7, '0'), jsonb_build_object('first_name', 'Ada ' || n, 'plan', 'pro'),"
            " '{}'::jsonb, '', false, false, now(), now() FROM generate_series(1, %s) AS n",
            [workspace_id, people])
    email = ChannelConfig(workspace=workspace, name="SMTP sink", type="email", provider="smtp",
                          sender="shop@example.test", is_default=True,
                          settings={"host": "127.0.0.1", "port": smtp_port})
    email.save()
    sms = ChannelConfig(workspace=workspace, name="Twilio fake", type="sms", provider="twilio", sender="+15550001111",
                        is_default=True, settings={"account_sid": "AC" + "0" * 32, "base_url": twilio_url})
    write_secrets(sms, {"auth_token": "bench-token"})
    sms.save()
    Snippet.objects.for_workspace(workspace).create(name="footer", value="Ulak Shop · {{ customer.plan }} plan")
    layout = Layout.objects.for_workspace(workspace).create(name="Base",
                                    body="<html><body><div class='c'>{{ content }}</div></body></html>")
    email_message = create_transactional_message(
        workspace=workspace, name="order-confirmation", channel="email", layout=layout,
        subject="Order {{ trigger.order_id }} confirmed",
        body=("<h1>Thanks {{ customer.first_name }}</h1><p>Order {{ trigger.order_id }}: "
              "{% for item in trigger.items %}{{ item.name }} × {{ item.qty }}{% unless forloop.last %}, "
              "{% endunless %}{% endfor %}</p><p><a href='https://shop.example.test/orders/{{ trigger.order_id }}'>"
              "Track it</a></p><p>{{ snippets.footer }}</p>"))
    sms_message = create_transactional_message(
        workspace=workspace, name="otp", channel="sms",
        body="{{ customer.first_name }}, your code is {{ trigger.code }}. {{ snippets.footer }}")
    return {"email": (email_message, email), "sms": (sms_message, sms)}


def trigger_data(channel: str, n: int) -> dict:
    return ({"order_id": f"O-{n}", "items": [{"name": "Tea", "qty": 2}, {"name": "Cup", "qty": 1}]}
            if channel == "email" else {"code": f"{n % 1000000:06d}"})


# --- CPU accounting (/proc) -----------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float, float]]:
    """pid → (command, parent pid, own CPU seconds, CPU seconds of its reaped children); a
    PostgreSQL backend's command is its title (`postgres: 15/main: user database host state`)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as file:
                data = file.read()
        except OSError:
            continue
        command = data[data.index("(") + 1:data.rindex(")")]
        fields = data[data.rindex(")") + 2:].split()  # fields[0] is field 3 (state) of proc(5)
        utime, stime, cutime, cstime = (int(value) / TICK for value in fields[11:15])
        if command == "postgres":
            try:
                with open(f"/proc/{name}/cmdline", "rb") as file:
                    command = file.read().replace(b"\0", b" ").decode(errors="replace").strip() or command
            except OSError:
                pass
        found[int(name)] = (command, int(fields[1]), utime + stime, cutime + cstime)
    return found


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, every core."""
    with open("/proc/stat") as file:
        values = [int(value) / TICK for value in file.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def database_backends(processes: dict) -> dict[int, float]:
    """CPU seconds of each live PostgreSQL backend connected to this benchmark's database."""
    return {pid: own for pid, (command, _, own, _) in processes.items()
            if command.startswith("postgres:") and f" {DB} " in command}


def cpu_snapshot(worker_pid: int | None, sink_pid: int | None) -> dict:
    processes = _processes()
    workers = {}
    if worker_pid in processes:
        workers[worker_pid] = processes[worker_pid][2] + processes[worker_pid][3]
        workers.update({pid: own for pid, (_, parent, own, _) in processes.items() if parent == worker_pid})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "time": time.time(), "workers": workers, "worker_main": worker_pid, "postgres": database_backends(processes),
        "redis": sum(own for command, _, own, _ in processes.values() if command.startswith("redis-server")),
        "sink": processes[sink_pid][2] if sink_pid in processes else None,
        "bench": usage.ru_utime + usage.ru_stime, "children": children.ru_utime + children.ru_stime,
        "machine": _machine(),
    }


def cpu_used(before: dict, after: dict, messages: int) -> dict:
    """CPU between two snapshots, per message, and how busy each part was (share of one core;
    the machine: share of all its cores)."""
    wall = max(after["time"] - before["time"], 1e-9)
    per = (lambda seconds: seconds * 1000 / messages) if messages else (lambda seconds: None)
    workers = {pid: seconds - before["workers"].get(pid, 0.0) for pid, seconds in after["workers"].items()}
    sink = after["sink"] - before["sink"] if after["sink"] is not None and before["sink"] is not None else None
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    return {
        "window_s": wall, "messages": messages,
        "worker_ms_per_message": per(sum(workers.values())),
        "worker_process_busy": [round(seconds / wall, 2) for pid, seconds in sorted(workers.items())
                               if pid != after["worker_main"]],
        "postgres_ms_per_message": per(sum(seconds - before["postgres"].get(pid, 0.0)
                                           for pid, seconds in after["postgres"].items())),
        "redis_ms_per_message": per(after["redis"] - before["redis"]),
        "sink_ms_per_message": per(sink) if sink is not None else None,
        "sink_busy": sink / wall if sink is not None else None,
        "bench_ms_per_message": per(after["bench"] - before["bench"]),
        "reaped_children_ms_per_message": per(after["children"] - before["children"]),
        "machine_busy": busy / total if total else None,
    }


PROGRESS = ("SELECT count(*) FILTER (WHERE status IN ('queued', 'sending')),"
            " count(*) FILTER (WHERE status NOT IN ('queued', 'sending')) FROM channels_delivery WHERE ")


def watch_drain(where: str, params: list, worker_pid: int | None, sink_pid: int | None,
                timeout: float = 6 * 3600) -> dict:
    """Wait until no delivery matching `where` is queued or sending; the CPU used from the first
    poll that saw one done to the end, per delivery done in that window. The database's backends
    are looked at on every poll: one that ends in the window (a worker closing its connection)
    counts with the CPU it had last been seen with; the polling connection's own is left out.
    Polls every 0.25 s for the first 10 s, then every second."""
    started = time.time()
    first, first_done, sessions = None, 0, 0
    backends: dict[int, float] = {}
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        while True:
            pending, done = conn.execute(PROGRESS + where, params).fetchone()
            if first is None and done > 0:
                first, first_done = cpu_snapshot(worker_pid, sink_pid), done
                sessions = database_sessions(conn)
            elif first is not None:
                backends.update(database_backends(_processes()))
            if pending == 0:
                break
            if time.time() - started > timeout:
                raise SystemExit(f"{pending} deliveries still pending after {timeout:.0f} s")
            time.sleep(0.05 if first is None else 0.25 if time.time() - started < 10 else 1.0)
        last = cpu_snapshot(worker_pid, sink_pid)
        time.sleep(1)  # PostgreSQL's statistics may lag a little behind
        opened = database_sessions(conn) - sessions if first is not None else 0
        polling = conn.info.backend_pid
    last["postgres"] = {pid: seconds for pid, seconds in {**backends, **last["postgres"]}.items() if pid != polling}
    if first is None:
        first = last
    return {**cpu_used(first, last, done - first_done), "database_connections_opened": opened}


def database_sessions(conn) -> int:
    """Sessions ever opened to this database (pg_stat_database, PostgreSQL 14 and later)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [DB]).fetchone()[0] or 0


# --- what arrived ---------------------------------------------------------------------------------

def check_arrivals(records: list[tuple], expected: set[str]) -> dict:
    """Every expected key (Message-ID, or the SMS recipient) arrived exactly once, nothing else."""
    keys = Counter(record[2] for record in records)
    return {"received": len(records), "expected": len(expected),
            "duplicated": sum(count - 1 for count in keys.values() if count > 1),
            "missing": len(expected - keys.keys()), "unexpected": len(keys.keys() - expected)}


def arrival_problems(what: str, arrivals: dict) -> list[str]:
    if arrivals["duplicated"] or arrivals["missing"] or arrivals["unexpected"]:
        return [(f"{what}: {arrivals['received']:,} arrived for {arrivals['expected']:,} expected; "
                 f"{arrivals['duplicated']:,} duplicated, {arrivals['missing']:,} missing, "
                 f"{arrivals['unexpected']:,} unexpected")]
    return []


def connection_use(records: list[tuple]) -> dict:
    """How the client used its connections: how many, messages per connection, and how many
    carried messages in the same second on average (seconds with any message)."""
    if not records:
        return {"connections": 0}
    by_second: dict[int, set] = defaultdict(set)
    connections = set()
    for arrived, connection, *_ in records:
        by_second[int(arrived)].add(connection)
        connections.add(connection)
    return {"connections": len(connections), "messages_per_connection": len(records) / len(connections),
            "concurrent_connections": sum(map(len, by_second.values())) / len(by_second)}


def rate(times: list[float]) -> float | None:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None


def tenths(times: list[float]) -> tuple[float | None, float | None]:
    """The rate of the first and of the last tenth of the messages."""
    times = sorted(times)
    tenth = max(len(times) // 10, 2)
    return rate(times[:tenth]), rate(times[-tenth:])


def fmt(value, spec: str = ",.1f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def cpu_line(cpu: dict) -> str:
    return (f"CPU per message: workers {fmt(cpu['worker_ms_per_message'], '.2f')} ms "
            f"(processes busy {', '.join(f'{share:.0%}' for share in cpu['worker_process_busy']) or '–'}), "
            f"PostgreSQL {fmt(cpu['postgres_ms_per_message'], '.2f')} ms (this database's backends), Redis {fmt(cpu['redis_ms_per_message'], '.2f')}"
            f" ms, sink {fmt(cpu['sink_ms_per_message'], '.2f')} ms (busy {fmt(cpu['sink_busy'], '.0%')} of a core)"
            f", this process {fmt(cpu['bench_ms_per_message'], '.2f')} ms; machine busy "
            f"{fmt(cpu['machine_busy'], '.0%')} of {os.cpu_count()} cores; "
            f"{cpu.get('database_connections_opened', 0):,} PostgreSQL connections opened")


def sink_note(cpu: dict, in_process: bool) -> str:
    if in_process:
        return "  (the sink runs in this process: its CPU is not told apart; --sinks process measures it)"
    if cpu.get("sink_busy") is not None and cpu["sink_busy"] >= SINK_BOUND:
        return (f"  ** the sink was the bottleneck: it used {cpu['sink_busy']:.0%} of a core (one Python process, "
                "one thread doing the work)")
    return ""


# --- the single-delivery path (transactional sends through the API) --------------------------------

def client_worker(args) -> list[tuple[float, str]]:
    requests, headers = args
    return [(started_at, json.loads(payload)["delivery_id"])
            for started_at, _, payload in post_each(PORT, requests, headers)]


def send_requests(channel: str, message_id: int, people: range) -> list[tuple[str, bytes]]:
    requests = []
    for n in people:
        body = {"transactional_message_id": message_id, "identifiers": {"id": f"user-{n}"},
                "message_data": trigger_data(channel, n)}
        requests.append((f"/v1/send/{channel}", json.dumps(body).encode()))
    return requests


def paced(requests, rate: float):
    """The requests, released no faster than `rate` per second."""
    started = time.perf_counter()
    for n, request in enumerate(requests):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield request


def wait_sent(ids: dict[str, float], started: float) -> dict:
    """Wait until every delivery in `ids` (public id → API call start) left `queued`/`sending`;
    throughput from `started` and API-call-to-provider latency (the delivery's `sent_at`)."""
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        while True:
            rows = conn.execute("SELECT public_id, status, extract(epoch FROM sent_at) FROM channels_delivery"
                                " WHERE public_id = ANY(%s)", [list(ids)]).fetchall()
            pending = sum(1 for _, status, _ in rows if status in ("queued", "sending"))
            if pending == 0:
                break
            if time.time() - started > 3600:
                raise SystemExit(f"{pending} deliveries still pending after an hour")
            time.sleep(0.1)
    failed = [status for _, status, sent_at in rows if sent_at is None]
    if failed:
        raise SystemExit(f"{len(failed)} deliveries did not reach the provider ({failed[:3]})")
    latencies = [float(sent_at) - ids[public_id] for public_id, _, sent_at in rows]
    handed_off = sorted(float(sent_at) for _, _, sent_at in rows)
    return {"messages": len(rows), "deliveries_per_s": rate(handed_off),
            "latency_p50_ms": percentile(latencies, 50) * 1000, "latency_p99_ms": percentile(latencies, 99) * 1000}


def saturate(channel: str, message_id: int, people: range, clients: int, headers: dict, workers: int,
             sink_pid: int | None):
    """The API queues a backlog with no worker running (API calls/s), then --workers worker
    processes drain it: deliveries/s between the first and the last hand-off, CPU per message."""
    requests = send_requests(channel, message_id, people)
    shares = [(requests[i::clients], headers) for i in range(clients)]
    started = time.time()
    with multiprocessing.Pool(clients) as pool:
        results = [item for part in pool.map(client_worker, shares) for item in part]
    api_calls_per_s = len(requests) / (time.time() - started)
    worker = start_worker(channel, workers)
    ids = {delivery_id: call_started for call_started, delivery_id in results}
    cpu = watch_drain("public_id = ANY(%s)", [list(ids)], worker.pid, sink_pid)
    result = wait_sent(ids, started)
    return worker, {**result, "api_calls_per_s": api_calls_per_s, "cpu": cpu}


def start_worker(channel: str, workers: int):
    return common_start([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", CHANNEL_QUEUE[channel],
                         "--pool", "prefork", "--concurrency", str(workers), "--loglevel", "WARNING"], env())


def steady(channel: str, message_id: int, people: range, rate_per_s: float, headers: dict) -> dict:
    """One caller at a steady `rate` below capacity: the hand-off latency a single message sees."""
    requests = paced(send_requests(channel, message_id, people), rate_per_s)
    started = time.time()
    ids = {json.loads(payload)["delivery_id"]: call_started
           for call_started, _, payload in post_each(PORT, requests, headers)}
    return {**wait_sent(ids, started), "rate_per_s": rate_per_s}


def expected_keys(workspace_id: int, channel: str, source: str, source_id: str) -> set[str]:
    """What the sink must have received once each: `<public id@example.test>` (the SMTP provider's
    Message-ID) for email, the recipient for SMS."""
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        rows = conn.execute("SELECT public_id, recipient FROM channels_delivery WHERE workspace_id = %s"
                            " AND channel = %s AND source = %s AND source_id = %s",
                            [workspace_id, channel, source, source_id]).fetchall()
    return {f"<{public_id}@example.test>" if channel == "email" else recipient for public_id, recipient in rows}


def single_phase(channel: str, message, workspace_id: int, opts, headers: dict, sink: Sink) -> dict:
    half = opts.messages // 2
    worker, throughput = saturate(channel, message.pk, range(1, half + 1), opts.clients, headers, opts.workers,
                                  sink.pid)
    try:
        latency = steady(channel, message.pk, range(half + 1, opts.messages + 1), opts.rate, headers)
    finally:
        stop(worker)
    records, _ = sink.take()
    arrivals = check_arrivals(records, expected_keys(workspace_id, channel, "transactional", str(message.pk)))
    print(f"  single path (transactional, one task per delivery): API {throughput['api_calls_per_s']:,.1f} calls/s "
          f"({opts.clients} callers); {throughput['messages']:,} queued messages drained at "
          f"{fmt(throughput['deliveries_per_s'])} deliveries/s ({opts.workers} worker processes); "
          f"{latency['messages']:,} messages at {opts.rate:g}/s: API call → provider "
          f"p50 {latency['latency_p50_ms']:.0f} ms, p99 {latency['latency_p99_ms']:.0f} ms", flush=True)
    print(f"    drain {cpu_line(throughput['cpu'])}")
    note = sink_note(throughput["cpu"], sink.in_process)
    if note:
        print(note)
    connections = connection_use(records)
    print(f"    sink: {arrivals['received']:,} messages for {arrivals['expected']:,} deliveries, "
          f"{arrivals['duplicated']} duplicated, {arrivals['missing']} missing, {arrivals['unexpected']} unexpected; "
          f"{connections.get('connections', 0)} connections, {fmt(connections.get('messages_per_connection'))} "
          f"messages each", flush=True)
    return {"saturated": throughput, "steady": latency, "arrivals": arrivals, "connections": connections,
            "problems": arrival_problems(f"{channel} single path", arrivals)}


# --- the batched path (broadcast deliveries) --------------------------------------------------------

def queue_backlog(workspace, channel: str, message, config, people: range, source_id: str, chunk: int) -> float:
    """Queue one broadcast delivery per person through queue_delivery, `chunk` per transaction
    (each commit publishes the configuration's batch task unless its key says one is on its way).
    Returns the seconds it took."""
    from django.db import transaction

    from channels.deliveries import queue_delivery
    from channels.models import Delivery
    from core.context import workspace_scope
    from profiles.models import Profile

    started = time.perf_counter()
    with workspace_scope(workspace):
        for first in range(people.start, people.stop, chunk):
            numbers = range(first, min(first + chunk, people.stop))
            profiles = {profile.external_id: profile for profile in Profile.objects.for_workspace(workspace)
                        .filter(external_id__in=[f"user-{n}" for n in numbers])}
            with transaction.atomic():
                for n in numbers:
                    queue_delivery(workspace, channel=channel, source=Delivery.Source.BROADCAST, source_id=source_id,
                                   profile=profiles[f"user-{n}"], message_content=message.content,
                                   channel_config=config, topic=message.topic,
                                   message_data={"trigger": trigger_data(channel, n)}, tracked=message.tracked)
    return time.perf_counter() - started


def claim_probe(workspace, config, size: int) -> float:
    """Milliseconds of one batch claim against the whole backlog, rolled back."""
    from django.db import transaction

    from channels.batching import claim
    from core.context import workspace_scope

    with workspace_scope(workspace), transaction.atomic():
        started = time.perf_counter()
        claim(workspace, config.pk, "bench-probe", size)
        took = time.perf_counter() - started
        transaction.set_rollback(True)
    return took * 1000


def batch_phase(channel: str, message, config, workspace, count: int, opts, sink: Sink) -> dict:
    from django.conf import settings

    source_id = f"bench-batch-{channel}"
    queue = CHANNEL_QUEUE[channel]
    waiting_before = queue_length(queue)
    queued_s = queue_backlog(workspace, channel, message, config, range(1, count + 1), source_id, opts.queue_chunk)
    tasks = queue_length(queue) - waiting_before
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        # What autovacuum does within a minute on a server where it runs (it is off on the CI
        # machine): without it the planner sees the workspace as it was before the backlog.
        conn.execute("ANALYZE channels_delivery")
    probe_ms = claim_probe(workspace, config, settings.ULAK_SEND_BATCH_SIZE)
    print(f"  batch path (batch {settings.ULAK_SEND_BATCH_SIZE}, sub-batch {settings.ULAK_SEND_SUB_BATCH_SIZE}, "
          f"{settings.ULAK_SEND_BATCH_SECONDS} s per task): {count:,} broadcast deliveries queued in {queued_s:,.1f} s "
          f"({count / queued_s:,.0f}/s, {opts.queue_chunk:,} per transaction); {tasks} `{channel}.send_batch` "
          f"task(s) waiting (a commit publishes one when no slot key `send-batch:{config.pk}:<slot>` is held; "
          f"ULAK_SEND_BATCH_KEY_SECONDS = {settings.ULAK_SEND_BATCH_KEY_SECONDS}); one claim of "
          f"{settings.ULAK_SEND_BATCH_SIZE} against the full backlog: {probe_ms:,.1f} ms", flush=True)
    worker = start_worker(channel, opts.workers)
    try:
        cpu = watch_drain("workspace_id = %s AND source = 'broadcast' AND source_id = %s AND channel = %s",
                          [workspace.pk, source_id, channel], worker.pid, sink.pid)
    finally:
        stop(worker)
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        rows = conn.execute("SELECT status, extract(epoch FROM sent_at), claim_token FROM channels_delivery"
                            " WHERE workspace_id = %s AND source = 'broadcast' AND source_id = %s AND channel = %s",
                            [workspace.pk, source_id, channel]).fetchall()
    statuses = Counter(status for status, _, _ in rows)
    sent = sorted(float(at) for status, at, _ in rows if at is not None)
    by_second: dict[int, set] = defaultdict(set)
    for _, at, token in rows:
        if at is not None:
            by_second[int(at)].add(token)
    concurrent_tasks = sum(map(len, by_second.values())) / len(by_second) if by_second else None
    records, sample = sink.take()
    arrivals = check_arrivals(records, expected_keys(workspace.pk, channel, "broadcast", source_id))
    connections = connection_use(records)
    first, last = tenths(sent)
    result = {
        "messages": count, "settings": {name: getattr(settings, f"ULAK_SEND_{name.upper()}") for name in
                                        ("batch_size", "sub_batch_size", "batch_seconds", "batch_key_seconds")},
        "queued_s": queued_s, "queued_per_s": count / queued_s, "tasks_waiting": tasks,
        "claim_ms_full_backlog": probe_ms, "statuses": dict(statuses), "deliveries_per_s": rate(sent),
        "arrivals_per_s": rate([record[0] for record in records]), "first_tenth_per_s": first,
        "last_tenth_per_s": last, "concurrent_batch_tasks": concurrent_tasks,
        "batch_tasks": len({token for _, at, token in rows if at is not None}),
        "cpu": cpu, "arrivals": arrivals, "connections": connections,
        "problems": arrival_problems(f"{channel} batch path", arrivals),
    }
    if statuses != {"sent": count}:
        result["problems"].append(f"{channel} batch path: statuses {dict(statuses)}, expected {count:,} sent")
    print(f"    drained at {fmt(result['deliveries_per_s'])} deliveries/s by `sent_at` "
          f"({fmt(result['arrivals_per_s'])}/s by arrival at the sink; first tenth {fmt(first)}/s, last tenth "
          f"{fmt(last)}/s); {fmt(concurrent_tasks, '.2f')} batch tasks sending at once on average "
          f"({result['batch_tasks']} tasks in all, {opts.workers} worker processes)", flush=True)
    print(f"    drain {cpu_line(cpu)}")
    note = sink_note(cpu, sink.in_process)
    if note:
        print(note)
    print(f"    sink: {arrivals['received']:,} messages for {arrivals['expected']:,} deliveries, "
          f"{arrivals['duplicated']} duplicated, {arrivals['missing']} missing, {arrivals['unexpected']} unexpected; "
          f"statuses {dict(statuses)}; {connections.get('connections', 0)} connections, "
          f"{fmt(connections.get('messages_per_connection'))} messages each, "
          f"{fmt(connections.get('concurrent_connections'), '.2f')} in use at once", flush=True)
    if opts.batch_steady:
        result["steady"] = batch_steady(channel, message, config, workspace, range(count + 1, count + 1 + opts.batch_steady),
                                        opts, sink)
        result["problems"] += result["steady"].pop("problems")
    return result, sample


def batch_steady(channel: str, message, config, workspace, people: range, opts, sink: Sink) -> dict:
    """Broadcast deliveries queued one at a time (each its own transaction, whose commit publishes
    the configuration's batch task unless one is on its way) at a steady --rate with the workers
    running: the hand-off latency of the batch path, from just before queue_delivery to `sent_at`."""
    from django.db import transaction

    from channels.deliveries import queue_delivery
    from channels.models import Delivery
    from core.context import workspace_scope
    from profiles.models import Profile

    source_id = f"bench-batch-steady-{channel}"
    worker = start_worker(channel, opts.workers)
    try:
        time.sleep(3)  # the worker processes start (a delivery queued before would wait for them)
        with workspace_scope(workspace):
            profiles = {profile.external_id: profile for profile in Profile.objects.for_workspace(workspace)
                        .filter(external_id__in=[f"user-{n}" for n in people])}
            ids, started = {}, time.time()
            for index, n in enumerate(people):
                pause = started + index / opts.rate - time.time()
                if pause > 0:
                    time.sleep(pause)
                called = time.time()
                with transaction.atomic():
                    delivery, _ = queue_delivery(workspace, channel=channel, source=Delivery.Source.BROADCAST,
                                                 source_id=source_id, profile=profiles[f"user-{n}"],
                                                 message_content=message.content, channel_config=config,
                                                 topic=message.topic, tracked=message.tracked,
                                                 message_data={"trigger": trigger_data(channel, n)})
                ids[delivery.public_id] = called
        handed = wait_sent(ids, started)
    finally:
        stop(worker)
    records, _ = sink.take()
    arrivals = check_arrivals(records, expected_keys(workspace.pk, channel, "broadcast", source_id))
    print(f"    steady: {len(ids):,} broadcast deliveries queued one by one at {opts.rate:g}/s: queue_delivery → "
          f"provider p50 {handed['latency_p50_ms']:.0f} ms, p99 {handed['latency_p99_ms']:.0f} ms; sink: "
          f"{arrivals['received']:,} received, {arrivals['duplicated']} duplicated, {arrivals['missing']} missing",
          flush=True)
    return {**handed, "rate_per_s": opts.rate, "arrivals": arrivals,
            "problems": arrival_problems(f"{channel} batch path, steady", arrivals)}


# --- bare clients -----------------------------------------------------------------------------------

def bare_phase(channel: str, sample, count: int, connections: list[int], sink: Sink) -> dict:
    """The same sink, the same number of messages of the same size, sent by a bare client over
    `n` connections (one process each) for each n in `connections`."""
    import base64

    results = {}
    for processes in connections:
        before = cpu_snapshot(None, sink.pid)
        if channel == "email":
            sender, raw = sample
            times = bare_smtp(sink.port, sender, raw, count, processes)
            expected = {f"<bare-{n}@example.test>" for n in range(1, count + 1)}
            size = len(raw)
        else:
            form = [(name, value) for name, values in sample.items() for value in values]
            auth = "Basic " + base64.b64encode(b"AC" + b"0" * 32 + b":bench-token").decode()
            url = f"{sink.url}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
            times = bare_http(url, auth, form, count, processes)
            expected = {f"+1999{n:07d}" for n in range(1, count + 1)}
            size = None
        after = cpu_snapshot(None, sink.pid)
        records, _ = sink.take()
        arrivals = check_arrivals(records, expected)
        cpu = cpu_used(before, after, count)
        measured = {"connections": processes, "messages": count, "per_s": rate(times), "message_bytes": size,
                    "cpu": cpu, "arrivals": arrivals,
                    "problems": arrival_problems(f"{channel} bare x{processes}", arrivals)}
        results[processes] = measured
        client = "smtplib, one connection" if channel == "email" else "requests.Session (keep-alive)"
        print(f"  bare {client} per process, {processes} process{'es' if processes > 1 else ''}: {count:,} messages"
              f"{f' of {size:,} bytes' if size else ''} at {fmt(measured['per_s'])}/s; CPU per message: client "
              f"{fmt(cpu['reaped_children_ms_per_message'], '.2f')} ms, sink {fmt(cpu['sink_ms_per_message'], '.2f')}"
              f" ms (busy {fmt(cpu['sink_busy'], '.0%')} of a core); machine busy {fmt(cpu['machine_busy'], '.0%')}",
              flush=True)
        note = sink_note(cpu, sink.in_process)
        if note:
            print(note)
    return results


# --- one batch in this process, timed and profiled ----------------------------------------------------

def statement_kind(sql: str) -> str:
    """common.query_kind, with the batch claim (a WITH … UPDATE) named as such."""
    if sql.lstrip().upper().startswith("WITH PICKED"):
        return "claim (WITH … UPDATE channels_delivery)"
    return query_kind(sql)


# Pipeline stages of channels.batching.send_batch: (file, function, label); cumulative profiled
# time. Indented labels are parts of the stage above them.
STAGES = (
    ("channels/batching.py", "claim", "claim (one statement)"),
    ("channels/consent.py", "load_consent", "consent facts (bulk)"),
    ("channels/sending.py", "prepare", "render + build the message"),
    ("channels/content/rendering.py", "render_delivery", "  of which rendering (Liquid, layout, snippets)"),
    ("channels/content/rendering.py", "rows", "    of which loading the snippets"),
    ("channels/outgoing.py", "build_outgoing", "  of which building (tracking, headers)"),
    ("channels/sending.py", "take_rate", "rate limit"),
    ("channels/sending.py", "mark_started", "started marker"),
    ("channels/sending.py", "call_provider", "provider calls"),
    ("channels/providers/email.py", "_envelope", "  of which MIME encoding (email.message().as_bytes)"),
    ("channels/providers/email.py", "_transact", "  of which the SMTP exchange"),
    ("channels/safe_http.py", "safe_request", "  of which the HTTP request (SSRF check, connect, exchange)"),
    ("channels/feedback.py", "record_delivery_events", "results + events (bulk)"),
    ("core/bulk.py", "update_rows", "  of which the deliveries' changes (core.bulk.update_rows)"),
    ("profiles/services.py", "insert_events", "  of which person events"),
    ("profiles/services.py", "keep_segments_live", "  of which live-segment checks"),
    ("channels/reporting.py", "fan_out_many", "  of which reporting webhooks"),
    ("channels/sending.py", "after_sent", "after_sent (early statuses)"),
)


def stages(stats: pstats.Stats) -> dict:
    """Cumulative profiled time of each pipeline stage, as a share of send_batch's."""
    cumulative: dict[tuple[str, str], float] = defaultdict(float)
    for (filename, _, name), (_, _, _, cumtime, _) in stats.stats.items():
        for path, function, _ in (*STAGES, ("channels/batching.py", "send_batch", "")):
            if filename.endswith(path) and name == function:
                cumulative[(path, function)] += cumtime
    total = cumulative.get(("channels/batching.py", "send_batch")) or 1e-9
    shares = {label: round(cumulative.get((path, function), 0.0) * 100 / total, 1)
              for path, function, label in STAGES}
    shares["the rest (commits, loading the batch's rows, Python)"] = round(
        100 - sum(share for label, share in shares.items() if not label.startswith(" ")), 1)
    return {label: share for label, share in shares.items() if share or not label.startswith(" ")}


def profile_phase(channel: str, message, config, workspace, size: int, sink: Sink) -> dict:
    """Queue 10 + 2 × `size` deliveries, send a warm-up batch of 10, then one batch of `size` with
    every statement timed and another under cProfile."""
    from django.db import connection

    from channels import batching
    from channels.models import ChannelConfig
    from core.context import workspace_scope

    source_id = f"bench-profile-{channel}"
    queue_backlog(workspace, channel, message, config, range(1, 11 + 2 * size), source_id, 1000)
    queries: dict[str, list] = defaultdict(lambda: [0, 0.0])

    def timing(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries[statement_kind(sql)][0] += 1
            queries[statement_kind(sql)][1] += time.perf_counter() - started

    with workspace_scope(workspace):
        config = ChannelConfig.objects.for_workspace(workspace).get(pk=config.pk)
        batching.send_batch(workspace, config, uuid.uuid4().hex, size=10)
        with connection.execute_wrapper(timing):
            started = time.perf_counter()
            timed = batching.send_batch(workspace, config, uuid.uuid4().hex, size=size)
            wall = time.perf_counter() - started
        profiler = cProfile.Profile()
        profiler.enable()
        profiled = batching.send_batch(workspace, config, uuid.uuid4().hex, size=size)
        profiler.disable()
    records, _ = sink.take()
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        by_area[code_area(filename, name, depth=2)] += tottime
        total += tottime
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    count = sum(n for n, _ in queries.values())
    db = sum(t for _, t in queries.values())
    sent = timed.sent or 1
    result = {
        "batch": size, "sent": [timed.sent, profiled.sent], "received_by_sink": len(records),
        "wall_ms_per_delivery": wall * 1000 / sent, "statements_per_delivery": count / sent,
        "db_ms_per_delivery": db * 1000 / sent, "other_ms_per_delivery": (wall - db) * 1000 / sent,
        "queries": {kind: {"per_delivery": n / sent, "ms_per_delivery": t * 1000 / sent}
                    for kind, (n, t) in sorted(queries.items(), key=lambda item: -item[1][1])},
        "profile_stages": stages(stats),
        "profile_areas": {name: round(seconds * 100 / total, 1)
                          for name, seconds in sorted(by_area.items(), key=lambda item: -item[1])[:12]},
        "profile_top": [{"function": f"{code_area(filename, name, depth=2)}:{Path(filename).name}:{line}({name})", "calls": calls,
                         "tottime_ms": round(tottime * 1000, 1), "cumtime_ms": round(cumtime * 1000, 1)}
                        for (filename, line, name), (_, calls, tottime, cumtime, _) in top],
        "problems": [],
    }
    if timed.sent != size or profiled.sent != size or len(records) != 10 + 2 * size:
        result["problems"].append(f"{channel} profile: sent {timed.sent} and {profiled.sent} of {size}, "
                                  f"sink received {len(records)} of {10 + 2 * size}")
    print(f"  one batch of {size} in this process (statements timed, no profiler): "
          f"{result['wall_ms_per_delivery']:.2f} ms per delivery = {result['db_ms_per_delivery']:.2f} ms in "
          f"{result['statements_per_delivery']:.2f} SQL statements + {result['other_ms_per_delivery']:.2f} ms "
          f"everything else (rendering, provider call, Python)", flush=True)
    for kind, row in list(result["queries"].items())[:8]:
        print(f"    {kind}: {row['per_delivery']:.2f} per delivery, {row['ms_per_delivery']:.3f} ms per delivery")
    print("  cProfile of another batch, stages of send_batch (% of its time, profiler overhead included):")
    for name, share in result["profile_stages"].items():
        print(f"    {name}: {share} %")
    print("  the same, own time by area (% of profiled time):")
    print("    " + "; ".join(f"{name} {share}" for name, share in result["profile_areas"].items()), flush=True)
    return result


# --- the run ------------------------------------------------------------------------------------------

def ratio(a, b):
    return a / b if a and b else None


def summary(results: dict, workers: int) -> None:
    """The table: rates, the bare baseline with as many connections as Ulak used, the ratios."""
    print("\n| measure | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))

    def row(label, cell):
        print(f"| {label} | " + " | ".join(cell(result) for result in results.values()) + " |")

    def batch(result):
        return result.get("batch")

    def matching(result):
        """The bare run with as many connections as Ulak's batch tasks sending at once."""
        bare = result.get("bare") or {}
        if not bare:
            return None
        wanted = max(1, round((batch(result) or {}).get("concurrent_batch_tasks") or 1))
        return bare.get(wanted) or bare[min(bare, key=lambda n: abs(n - wanted))]

    def bare_for(result, n):
        return (result.get("bare") or {}).get(n)

    def single_rate(result):
        return (result.get("single") or {}).get("saturated", {}).get("deliveries_per_s")

    def batch_rate(result):
        return (batch(result) or {}).get("deliveries_per_s")

    row(f"single path (transactional), backlog drain, {workers} processes, deliveries/s",
        lambda r: fmt(single_rate(r)))
    row(f"batch path (broadcast), backlog drain, {workers} processes, deliveries/s (by sent_at; by sink arrival)",
        lambda r: f"{fmt(batch_rate(r))} ({fmt((batch(r) or {}).get('arrivals_per_s'))})")
    row("batch tasks sending at once (average)", lambda r: fmt((batch(r) or {}).get("concurrent_batch_tasks"), ".2f"))
    counts = sorted({n for r in results.values() for n in (r.get("bare") or {})})
    for n in counts:
        row(f"bare client, {n} connection{'s' if n > 1 else ''}, messages/s (sink busy)",
            lambda r, n=n: (f"{fmt((bare_for(r, n) or {}).get('per_s'))} "
                            f"({fmt(((bare_for(r, n) or {}).get('cpu') or {}).get('sink_busy'), '.0%')})"))
    row("batch / bare (bare with as many connections as batch tasks at once)",
        lambda r: (f"{fmt(ratio(batch_rate(r), (matching(r) or {}).get('per_s')), '.1%')} "
                   f"(bare x{(matching(r) or {}).get('connections', '–')})"))
    row(f"single / bare (bare x{workers})",
        lambda r: fmt(ratio(single_rate(r), (bare_for(r, workers) or {}).get("per_s")), ".1%"))
    row("batch / single", lambda r: fmt(ratio(batch_rate(r), single_rate(r)), ".2f") + (
        "x" if ratio(batch_rate(r), single_rate(r)) else ""))
    row("worker CPU ms per message: single / batch",
        lambda r: (f"{fmt(((r.get('single') or {}).get('saturated') or {}).get('cpu', {}).get('worker_ms_per_message'), '.2f')}"
                   f" / {fmt(((batch(r) or {}).get('cpu') or {}).get('worker_ms_per_message'), '.2f')}"))
    def latency(phase):
        return "–" if not phase else f"{phase['latency_p50_ms']:,.0f} / {phase['latency_p99_ms']:,.0f} ms"

    row("single path at a steady rate: API call → provider, p50 / p99",
        lambda r: latency((r.get("single") or {}).get("steady")))
    row("batch path at a steady rate: queue_delivery → provider, p50 / p99",
        lambda r: latency((batch(r) or {}).get("steady")))
    row(f"target: batch ≥ {TARGET:.0%} of bare", lambda r: (
        "–" if ratio(batch_rate(r), (matching(r) or {}).get("per_s")) is None else
        "met" if ratio(batch_rate(r), (matching(r) or {}).get("per_s")) >= TARGET else
        f"missed by {TARGET * (matching(r) or {}).get('per_s') - batch_rate(r):,.0f}/s"))


def main() -> None:
    global REDIS
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000, help="single path: transactional sends per channel")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes per channel")
    parser.add_argument("--rate", type=float, default=10, help="steady phases (single path, batch path): messages per second")
    parser.add_argument("--batch-emails", type=int, default=5000, help="batch path: broadcast emails in the backlog")
    parser.add_argument("--batch-sms", type=int, default=5000, help="batch path: broadcast SMS in the backlog")
    parser.add_argument("--bare-messages", type=int, default=None,
                        help="bare clients: messages per run (default: the channel's batch size)")
    parser.add_argument("--bare-connections", default=None,
                        help="bare clients: comma-separated connection counts (default: 1 and --workers)")
    parser.add_argument("--queue-chunk", type=int, default=1000, help="batch path: deliveries queued per transaction")
    parser.add_argument("--batch-steady", type=int, default=1000,
                        help="batch path: deliveries then queued one by one at --rate with the workers running (0: none)")
    parser.add_argument("--profile-batch", type=int, default=100, help="profile: deliveries in the profiled batch")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases ({', '.join(PHASES)})")
    parser.add_argument("--channels", default="email,sms", help="comma-separated channels (email, sms)")
    parser.add_argument("--sinks", choices=("process", "thread"), default="process",
                        help="run the SMTP sink and the Twilio fake in processes of their own, or in this one")
    parser.add_argument("--redis", default=REDIS, help="a Redis database of its own: broker and cache (flushed)")
    opts = parser.parse_args()
    REDIS = opts.redis
    only = [phase for phase in opts.only.split(",") if phase]
    channels = [channel for channel in opts.channels.split(",") if channel]
    if set(only) - set(PHASES) or set(channels) - set(CHANNEL_QUEUE):
        raise SystemExit(f"--only takes {', '.join(PHASES)}; --channels takes email, sms")
    if "bare" in only and "batch" not in only:
        raise SystemExit("--only bare needs batch too: the bare client sends a message the batch phase sent")
    connections = sorted({int(n) for n in (opts.bare_connections or f"1,{opts.workers}").split(",")})
    sizes = {"email": opts.batch_emails, "sms": opts.batch_sms}
    people = max([opts.messages] + [sizes[channel] + opts.batch_steady for channel in channels]
                 + [11 + 2 * opts.profile_batch])

    in_process = opts.sinks == "thread"
    flush_redis()
    with Sink("smtp", in_process=in_process) as smtp, Sink("twilio", in_process=in_process) as twilio:
        common_fresh_database(DB, env())
        keys = json.loads(common_manage(env(), "create_workspace", "Bench", "--owner-email",
                                        f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123",
                                        "--json"))
        setup_django()
        from accounts.models import Workspace

        workspace = Workspace.objects.get(pk=keys["workspace_id"])
        seeded = seed(workspace.pk, people, smtp.port, twilio.url)
        sinks = {"email": smtp, "sms": twilio}
        results = {channel: {} for channel in channels}
        web = None
        try:
            if "single" in only:
                web = common_start([sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c",
                                    "config/gunicorn.py"], env())
                wait_port(PORT)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {keys['app_api_key']}"}
            for channel in channels:
                message, config = seeded[channel]
                sink = sinks[channel]
                print(f"\n{channel} ({'SMTP sink' if channel == 'email' else 'Twilio fake'}, "
                      f"{'in this process' if in_process else 'a process of its own'}):", flush=True)
                if "single" in only:
                    results[channel]["single"] = single_phase(channel, message, workspace.pk, opts, headers, sink)
                sample = None
                if "batch" in only:
                    results[channel]["batch"], sample = batch_phase(channel, message, config, workspace,
                                                                    sizes[channel], opts, sink)
                if "bare" in only:
                    results[channel]["bare"] = bare_phase(channel, sample, opts.bare_messages or sizes[channel],
                                                          connections, sink)
                if "profile" in only:
                    results[channel]["profile"] = profile_phase(channel, message, config, workspace,
                                                                opts.profile_batch, sink)
        finally:
            if web is not None:
                stop(web)
    flush_redis()

    summary(results, opts.workers)
    problems = [problem for channel in results.values() for name, phase in channel.items()
                for run in (phase.values() if name == "bare" else [phase]) for problem in run["problems"]]
    print(json.dumps(rounded({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(DB), "messages": opts.messages,
        "batch": sizes, "clients": opts.clients, "workers": opts.workers, "sinks": opts.sinks, "phases": only,
        "results": results, "problems": problems})))
    if problems:
        print("\nPROBLEMS:\n" + "\n".join(f"- {problem}" for problem in problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
