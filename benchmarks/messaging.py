"""Messaging benchmark: transactional email to a local SMTP sink and SMS to a local Twilio fake.

    .venv/bin/python benchmarks/messaging.py [--messages 5000] [--clients 4] [--workers 2] [--rate 10]

It creates a fresh database (ulak_bench_messaging), migrates, creates a workspace with
--messages people, an SMTP email channel pointing at an aiosmtpd sink and a Twilio SMS channel
pointing at a loopback HTTP server answering as Twilio's Messages API, and two transactional
messages (Liquid templates using customer attributes, trigger data, a snippet and, for email, a
layout; email open/click tracking on). Then, for each channel, with --workers Celery worker
processes (prefork) rendering and handing off:
  saturated: POST /v1/send/<channel> for half the people from --clients concurrent client
    processes (gunicorn) as fast as they go, with no worker running (API calls/s); then the
    workers start and drain that backlog: deliveries/s between the first and last hand-off;
  steady: the other half from one caller at --rate calls/s (below capacity); the API-call-to-
    provider latency of each delivery (request start → the provider accepted it, i.e. the
    delivery's `sent_at`), p50/p99.
Everything shares this machine's cores: clients, gunicorn, workers, PostgreSQL and the fakes.
"""

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
from common import PG, ROOT, bench_env, percentile, post_each, stop, wait_port
from common import fresh_database as common_fresh_database
from common import manage as common_manage
from common import start as common_start

DB = "ulak_bench_messaging"
PORT = 18932


def env() -> dict:
    return bench_env(DB, WEB_CONCURRENCY="2", PORT=str(PORT), ULAK_SSRF_ALLOWLIST="127.0.0.1/32",
                     ULAK_PUBLIC_URL=f"http://127.0.0.1:{PORT}", ULAK_INGEST_RATE_LIMIT=str(10**9))


def setup_django() -> None:
    os.environ.update(env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(workspace_id: int, people: int, smtp_port: int, twilio_url: str) -> dict:
    """People, channels and templates, through the ORM and Ulak's own services."""
    from accounts.models import Workspace
    from campaigns.services import create_transactional_message
    from channels.content.models import Layout, Snippet
    from channels.configs import write_secrets
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
    return {"email": email_message.pk, "sms": sms_message.pk}


def client_worker(args) -> list[tuple[float, str]]:
    requests, headers = args
    return [(started_at, json.loads(payload)["delivery_id"])
            for started_at, _, payload in post_each(PORT, requests, headers)]


def send_requests(channel: str, message_id: int, people: range) -> list[tuple[str, bytes]]:
    requests = []
    for n in people:
        data = ({"order_id": f"O-{n}", "items": [{"name": "Tea", "qty": 2}, {"name": "Cup", "qty": 1}]}
                if channel == "email" else {"code": f"{n % 1000000:06d}"})
        body = {"transactional_message_id": message_id, "identifiers": {"id": f"user-{n}"}, "message_data": data}
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
    return {"messages": len(rows), "deliveries_per_s": (len(rows) - 1) / (handed_off[-1] - handed_off[0]),
            "latency_p50_ms": percentile(latencies, 50) * 1000, "latency_p99_ms": percentile(latencies, 99) * 1000}


def saturate(channel: str, message_id: int, people: range, clients: int, headers: dict, workers: int) -> dict:
    """The API queues a backlog with no worker running (API calls/s), then --workers worker
    processes drain it: deliveries/s between the first and the last hand-off."""
    requests = send_requests(channel, message_id, people)
    shares = [(requests[i::clients], headers) for i in range(clients)]
    started = time.time()
    with multiprocessing.Pool(clients) as pool:
        results = [item for part in pool.map(client_worker, shares) for item in part]
    api_calls_per_s = len(requests) / (time.time() - started)
    worker = start_worker(channel, workers)
    result = wait_sent({delivery_id: call_started for call_started, delivery_id in results}, started)
    return worker, {**result, "api_calls_per_s": api_calls_per_s}


def start_worker(channel: str, workers: int):
    return common_start([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", channel, "--pool", "prefork",
                         "--concurrency", str(workers), "--loglevel", "WARNING"], env())


def steady(channel: str, message_id: int, people: range, rate: float, headers: dict) -> dict:
    """One caller at a steady `rate` below capacity: the hand-off latency a single message sees."""
    requests = paced(send_requests(channel, message_id, people), rate)
    started = time.time()
    ids = {json.loads(payload)["delivery_id"]: call_started
           for call_started, _, payload in post_each(PORT, requests, headers)}
    return {**wait_sent(ids, started), "rate_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10, help="steady phase: API calls per second")
    opts = parser.parse_args()

    common_fresh_database(DB, env())
    keys = json.loads(common_manage(env(), "create_workspace", "Bench", "--owner-email",
                                    f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123",
                                    "--json"))
    setup_django()
    from tests.support.fakes import FakeHttpServer, FakeSmtpServer, Reply

    def twilio(request):
        return Reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued"})

    results = {}
    with FakeSmtpServer() as smtp, FakeHttpServer(twilio) as twilio_fake:
        messages = seed(keys["workspace_id"], opts.messages, smtp.port, twilio_fake.url)
        web = common_start([sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py"],
                           env())
        worker = None
        try:
            wait_port(PORT)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {keys['app_api_key']}"}
            half = opts.messages // 2
            for channel in ("email", "sms"):
                worker, throughput = saturate(channel, messages[channel], range(1, half + 1), opts.clients, headers,
                                              opts.workers)
                latency = steady(channel, messages[channel], range(half + 1, opts.messages + 1), opts.rate, headers)
                stop(worker)
                results[channel] = {"saturated": throughput, "steady": latency}
                print(f"{channel}: API {throughput['api_calls_per_s']:,.1f} calls/s ({opts.clients} callers); "
                      f"{throughput['messages']:,} queued messages drained at {throughput['deliveries_per_s']:,.1f} "
                      f"deliveries/s rendered and handed off ({opts.workers} workers); "
                      f"{latency['messages']:,} messages at {opts.rate:g}/s: API call → provider "
                      f"p50 {latency['latency_p50_ms']:.0f} ms, p99 {latency['latency_p99_ms']:.0f} ms", flush=True)
            assert len(smtp.messages) == opts.messages, f"SMTP sink got {len(smtp.messages)} messages"
        finally:
            stop(web)
            if worker is not None:
                stop(worker)
    print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                      "cores": os.cpu_count(), "messages": opts.messages, "clients": opts.clients,
                      "workers": opts.workers, "results": results}))


if __name__ == "__main__":
    main()
