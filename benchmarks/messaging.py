"""Messaging benchmark: transactional email to a local SMTP sink and SMS to a local Twilio fake.

    .venv/bin/python benchmarks/messaging.py [--messages 5000] [--clients 4] [--workers 2]

It creates a fresh database (ulak_bench_messaging), migrates, creates a workspace with
--messages people, an SMTP email channel pointing at an aiosmtpd sink and a Twilio SMS channel
pointing at a loopback HTTP server answering as Twilio's Messages API, and two transactional
messages (Liquid templates using customer attributes, trigger data, a snippet and, for email, a
layout; email open/click tracking on). Then, for each channel:
  POST /v1/send/<channel> once per person from --clients concurrent client processes (gunicorn),
  with --workers Celery worker processes (prefork) on the channel's queue rendering and handing
  off. Reported: deliveries/s from the first API call until the last delivery is `sent`, and the
  API-call-to-provider latency per delivery (request start → the provider accepted it, i.e. the
  delivery's `sent_at`) p50/p99. Everything shares this machine's cores.
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
    from campaigns.models import Layout, Snippet, TransactionalMessage
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
    Snippet.unscoped.create(workspace=workspace, name="footer", value="Ulak Shop · {{ customer.plan }} plan")
    layout = Layout.unscoped.create(workspace=workspace, name="Base",
                                    body="<html><body><div class='c'>{{ content }}</div></body></html>")
    email_message = TransactionalMessage.unscoped.create(
        workspace=workspace, name="order-confirmation", channel="email", layout=layout,
        subject="Order {{ trigger.order_id }} confirmed",
        body=("<h1>Thanks {{ customer.first_name }}</h1><p>Order {{ trigger.order_id }}: "
              "{% for item in trigger.items %}{{ item.name }} × {{ item.qty }}{% unless forloop.last %}, "
              "{% endunless %}{% endfor %}</p><p><a href='https://shop.example.test/orders/{{ trigger.order_id }}'>"
              "Track it</a></p><p>{{ snippets.footer }}</p>"))
    sms_message = TransactionalMessage.unscoped.create(
        workspace=workspace, name="otp", channel="sms",
        body="{{ customer.first_name }}, your code is {{ trigger.code }}. {{ snippets.footer }}")
    return {"email": email_message.pk, "sms": sms_message.pk}


def client_worker(args) -> list[tuple[float, str]]:
    requests, headers = args
    return [(started_at, json.loads(payload)["delivery_id"])
            for started_at, _, payload in post_each(PORT, requests, headers)]


def run_channel(channel: str, message_id: int, people: int, clients: int, app_key: str) -> dict:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {app_key}"}
    requests = []
    for n in range(1, people + 1):
        data = ({"order_id": f"O-{n}", "items": [{"name": "Tea", "qty": 2}, {"name": "Cup", "qty": 1}]}
                if channel == "email" else {"code": f"{n % 1000000:06d}"})
        body = {"transactional_message_id": message_id, "identifiers": {"id": f"user-{n}"}, "message_data": data}
        requests.append((f"/v1/send/{channel}", json.dumps(body).encode()))
    shares = [(requests[i::clients], headers) for i in range(clients)]
    started = time.time()
    with multiprocessing.Pool(clients) as pool:
        results = [item for part in pool.map(client_worker, shares) for item in part]
    api_done = time.time()
    ids = {delivery_id: call_started for call_started, delivery_id in results}
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        while True:
            pending, failed = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('queued', 'sending')),"
                " count(*) FILTER (WHERE status NOT IN ('queued', 'sending', 'sent', 'delivered'))"
                " FROM channels_delivery WHERE channel = %s", [channel]).fetchone()
            if pending == 0:
                break
            if time.time() - started > 3600:
                raise SystemExit(f"{channel}: {pending} deliveries still pending after an hour")
            time.sleep(0.2)
        rows = conn.execute("SELECT public_id, extract(epoch FROM sent_at) FROM channels_delivery"
                            " WHERE channel = %s AND sent_at IS NOT NULL", [channel]).fetchall()
    if failed:
        raise SystemExit(f"{channel}: {failed} deliveries did not reach the provider")
    latencies = [float(sent_at) - ids[public_id] for public_id, sent_at in rows if public_id in ids]
    finished = max(float(sent_at) for _, sent_at in rows)
    return {
        "messages": len(rows), "api_calls_per_s": people / (api_done - started),
        "deliveries_per_s": len(rows) / (finished - started),
        "latency_p50_ms": percentile(latencies, 50) * 1000, "latency_p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()

    common_fresh_database(DB, env())
    keys = json.loads(common_manage(env(), "create_workspace", "Bench", "--owner-email",
                                    f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123",
                                    "--json"))
    setup_django()
    from core.testing.fakes import FakeHttpServer, FakeSmtpServer, Reply

    def twilio(request):
        return Reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued"})

    results = {}
    with FakeSmtpServer() as smtp, FakeHttpServer(twilio) as twilio_fake:
        messages = seed(keys["workspace_id"], opts.messages, smtp.port, twilio_fake.url)
        web = common_start([sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py"],
                           env())
        worker = common_start([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "email,sms",
                               "--pool", "prefork", "--concurrency", str(opts.workers), "--loglevel", "WARNING"],
                              env())
        try:
            wait_port(PORT)
            for channel in ("email", "sms"):
                results[channel] = run_channel(channel, messages[channel], opts.messages, opts.clients,
                                               keys["app_api_key"])
                r = results[channel]
                print(f"{channel}: {r['messages']:,} messages, {r['deliveries_per_s']:,.0f} deliveries/s rendered and"
                      f" handed off ({opts.workers} workers); API {r['api_calls_per_s']:,.0f} calls/s;"
                      f" API call → provider p50 {r['latency_p50_ms']:.0f} ms, p99 {r['latency_p99_ms']:.0f} ms",
                      flush=True)
            assert len(smtp.messages) == opts.messages, f"SMTP sink got {len(smtp.messages)} messages"
        finally:
            stop(web)
            stop(worker)
    print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                      "cores": os.cpu_count(), "messages": opts.messages, "clients": opts.clients,
                      "workers": opts.workers, "results": results}))


if __name__ == "__main__":
    main()
