"""Experiments and delivery rules benchmark (issue 16 "Benchmark"): the added cost per send of the
frequency-cap check and of the A/B variant assignment, and the A/B evaluation tick over many running
tests, each beside a baseline measured in the same run.

    .venv/bin/python benchmarks/experiments.py [--people 100000] [--tests 1000] [--sends-per-test 200]
        [--tick-sample 20000] [--redis redis://127.0.0.1:6379/14]

It creates a fresh database (ulak_bench_experiments), migrates, creates a workspace and generates
--people people with benchmarks/journeys.py's set-based generator, an email channel configuration
whose SMTP server is never reached (the tick only queues the send tasks on the Redis broker; no
Celery worker runs, which the queue's length checks), then:
1. Cap check. --tick-sample due runs at a send step (one email, no `next`) inserted with SQL, and
   `engine.tick` in this process until none is due, timed: (a) without delivery rules, people
   1…S; (b) with two frequency caps (email 3 a day, any channel 5 in 7 days), people S+1…2S, each
   of whom already has 0–2 counted deliveries of the last day (inserted with SQL), so no send is
   capped. After a warm-up tick, the phases (and the variant step's of 2.) alternate in two rounds
   of half the people each; (b − a) / sends is reported, but on a shared 2-core machine the drift
   between rounds is larger than this difference. The figures judged against the target are the
   cap check's own work: the wall time spent inside `rules.before_send` during (b)'s ticks, and,
   measured directly, `rules.cap_state(..., lock=True)` (the person's lock and the count, what
   rules.before_send adds under caps when no running campaign outranks the send) for the people of
   (b), one transaction per 500. Baseline: the hand-written SQL of the check for the same people
   (the advisory lock + one count query for both caps per person, both prepared and sent in one
   round trip, one transaction per 500).
2. Variant assignment. `engine.variant_of` over every person for a 3-variant step with a holdout (a
   pure function), beside a bare hashlib.sha256 over the same seed strings; and the tick of a
   2-variant send step (people 1…S again, no rules) against (a): added ms per send.
3. A/B evaluation tick. --tests active campaigns, each with a 2-variant send step whose winner is
   automatic (opened, 95 %, 100 per variant), each with --sends-per-test sent deliveries split evenly
   between the variants, their `sent` step-log rows and some opened (A 20 %; B 20 %, or 60 % in
   every tenth test, which may then be decided), all made with INSERT … SELECT. Then
   `evaluate_experiments()`: the first look (which creates the decision rows), then the median of 3
   further looks, with the queries issued. Baseline: the hand-written aggregate of every test's
   counts (one GROUP BY over the step log joined to the deliveries).
The figures go to stdout as a readable table and one JSON object at the end.
"""

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import journeys
from common import ROOT, machine, rounded
from common import fresh_database as common_fresh_database
from common import manage as common_manage
from journeys import SEND_WORKFLOW, connect, flush_redis, h, insert_runs, make_campaign, setup_django

DB = "ulak_bench_experiments"
REDIS = "redis://127.0.0.1:6379/14"
CAP_TARGET_MS = 1.0  # added per send (issue 16)
EVALUATE_TARGET_S = 1.0  # one evaluation tick over every running test (issue 16)
CAP_RULES = {"frequency_caps": [{"channel": "email", "limit": 3, "period": {"days": 1}},
                                {"channel": None, "limit": 5, "period": {"days": 7}}], "quiet_hours": None}
WINNER = {"metric": "opened", "confidence": 0.95, "min_per_variant": 100, "auto": True}
# journeys.py's SEND_WORKFLOW reads trigger.plan, which runs inserted with SQL have no trigger data for.
SEND_STEP = {**SEND_WORKFLOW["steps"]["welcome"],
             "content": {"subject": "Welcome {{ customer.first_name }}",
                         "body": "<p>Your {{ customer.plan }} plan is ready.</p>"}}
PLAIN_WORKFLOW = {"start": "welcome", "steps": {"welcome": SEND_STEP}}
VARIANT_WORKFLOW = {"start": "welcome", "steps": {"welcome": {**SEND_STEP, "winner": WINNER, "variants": [
    {"key": "A", "weight": 1, "content": {}},
    {"key": "B", "weight": 1, "content": {"subject": "Hello {{ customer.first_name }}, your plan is ready"}}]}}}
BATCH = 500  # the tick's batch (engine.TICK_BATCH): one transaction per batch


def person_ids(workspace_id: int, first: int, last: int) -> list[int]:
    with connect() as conn:
        return [row[0] for row in conn.execute(
            "SELECT p.id FROM generate_series(%s::int, %s::int) g JOIN profiles_profile p ON p.workspace_id = %s"
            " AND p.external_id = 'user-' || g ORDER BY g", [first, last, workspace_id])]


def drain(campaign, workspace, first: int, last: int) -> tuple[int, float]:
    """Due runs at the send step for people first…last, then engine.tick until none is due: (runs, seconds)."""
    from campaigns.journeys import engine

    runs = insert_runs(campaign.pk, workspace.pk, "welcome", first, last, f"bench-{campaign.pk}")
    started = time.perf_counter()
    while engine.tick():
        pass
    return runs, time.perf_counter() - started


class Timed:
    """Wall time spent in a module's function while installed (the engine calls rules.before_send
    through the module, so replacing the attribute times every call the tick makes)."""

    def __init__(self, module, name: str):
        self.module, self.name, self.seconds, self.calls = module, name, 0.0, 0
        self.original = getattr(module, name)

    def __enter__(self):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


def sent(campaign, workspace, runs: int) -> dict:
    """The campaign's step-log outcomes (with the variant); every run must have sent."""
    from campaigns.models import JourneyStep

    outcomes: dict[str, int] = {}
    for outcome, variant in JourneyStep.objects.for_workspace(workspace).filter(campaign=campaign).values_list(
            "outcome", "detail__variant"):
        label = f"{outcome} {variant or ''}".strip()
        outcomes[label] = outcomes.get(label, 0) + 1
    if sum(n for label, n in outcomes.items() if label.startswith("sent")) != runs:
        raise SystemExit(f"{campaign.name}: {runs} runs gave {outcomes}; every run should have sent")
    return outcomes


def insert_prior_deliveries(workspace_id: int, first: int, last: int) -> int:
    """0–2 counted (campaign, sent) email deliveries in the last 20 hours for each person first…last."""
    with connect() as conn:
        rows = conn.execute(f"""
            INSERT INTO channels_delivery (public_id, channel, source, source_id, variant, recipient, content,
                message_data, subject, body, body_plain, rendered_payload, retain_content, send_to_unsubscribed,
                tracked, status, failure_reason, provider_message_id, idempotency_key, attempts, claim_token,
                created_at, sent_at, updated_at, profile_id, workspace_id)
            SELECT substr(md5('prior:' || p.id || ':' || k), 1, 24), 'email', 'campaign', '0', '', p.email,
                '{{}}', '{{}}', 'Earlier', '', '', '{{}}', true, false, true, 'sent', '', '',
                'bench-prior:' || p.id || ':' || k, 1, '', now() - k * interval '7 hours',
                now() - k * interval '7 hours', now(), p.id, p.workspace_id
            FROM generate_series(%(first)s::int, %(last)s::int) g
            JOIN profiles_profile p ON p.workspace_id = %(ws)s AND p.external_id = 'user-' || g
            CROSS JOIN LATERAL generate_series(1, ({h('g', 11)} %% 3)::int) k""",
                            {"ws": workspace_id, "first": first, "last": last}).rowcount
        conn.execute("VACUUM ANALYZE channels_delivery")
    return rows


def cap_baseline(workspace_id: int, profile_ids: list[int]) -> dict:
    """The cap check in hand-written SQL at its cheapest: per person the advisory lock and one
    count of both caps' windows, two server-side prepared statements sent together (psycopg's
    pipeline: one round trip), one transaction per BATCH people."""
    keys = [int.from_bytes(hashlib.sha256(f"caps:{workspace_id}:{pid}".encode()).digest()[:8], "big", signed=True)
            for pid in profile_ids]
    now = datetime.now(UTC)
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    count = """
        SELECT count(*) FILTER (WHERE channel = 'email' AND created_at > %s), count(*)
        FROM channels_delivery WHERE workspace_id = %s AND profile_id = %s
            AND source IN ('campaign', 'broadcast') AND created_at > %s
            AND status NOT IN ('failed', 'suppressed', 'undeliverable')"""
    with connect() as conn:
        conn.autocommit = False
        started = time.perf_counter()
        for low in range(0, len(profile_ids), BATCH):
            for pid, key in zip(profile_ids[low:low + BATCH], keys[low:low + BATCH]):
                with conn.pipeline():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [key], prepare=True)
                    cursor = conn.execute(count, [day, workspace_id, pid, week], prepare=True)
                cursor.fetchone()
            conn.commit()
        elapsed = time.perf_counter() - started
    return {"people": len(profile_ids), "seconds": elapsed, "ms_per_send": elapsed * 1000 / len(profile_ids)}


def cap_check_in_process(rule_row, probe: list, now) -> dict:
    """What rules.before_send adds for a send under caps (no higher-priority campaign running): the
    person's advisory lock and the one aggregate of cap_state, one transaction per BATCH, as the
    baseline does it."""
    from django.db import transaction

    from campaigns.journeys import rules

    counted = 0
    started = time.perf_counter()
    for low in range(0, len(probe), BATCH):
        with transaction.atomic():
            for journey in probe[low:low + BATCH]:
                counted += rules.cap_state(rule_row, journey, "email", now, lock=True)[0]["count"]
    elapsed = time.perf_counter() - started
    return {"ms_per_send": elapsed * 1000 / len(probe), "counted": counted}


def bench_caps(workspace, sample: int) -> dict:
    """The three tick phases in two rounds (plain, variants, capped, then again with the other half
    of each phase's people), so drift of the shared machine hits all three alike."""
    from campaigns.journeys import rules, services
    from campaigns.models import DeliveryRules, Journey

    DeliveryRules.objects.for_workspace(workspace).delete()
    warm = make_campaign(workspace, "bench-warm-up", PLAIN_WORKFLOW, trigger={"type": "event", "name": "bench_warm"})
    warmed, _ = drain(warm, workspace, 1, min(BATCH, sample))  # templates, connections, caches warm before (a)
    sent(warm, workspace, warmed)
    phases = {name: {"campaign": make_campaign(workspace, f"bench-{name}", workflow,
                                               trigger={"type": "event", "name": f"bench_{name}"}),
                     "first": first, "runs": 0, "rounds_ms_per_send": [], "seconds": 0.0}
              for name, workflow, first in (("plain", PLAIN_WORKFLOW, 1), ("variants", VARIANT_WORKFLOW, 1),
                                            ("capped", PLAIN_WORKFLOW, sample + 1))}
    prior = insert_prior_deliveries(workspace.pk, sample + 1, 2 * sample)
    ids = person_ids(workspace.pk, sample + 1, 2 * sample)
    baseline = cap_baseline(workspace.pk, ids)
    print(f"  baseline, hand-written SQL (advisory lock + one count per person, prepared, one round trip, "
          f"{BATCH} per transaction) over "
          f"{len(ids):,} people with {prior:,} prior deliveries: {baseline['seconds']:,.2f} s = "
          f"{baseline['ms_per_send']:.3f} ms per send", flush=True)
    rule_row, now = rules.save_rules(workspace=workspace, body=CAP_RULES), datetime.now(UTC)
    probe = [Journey(workspace_id=workspace.pk, profile_id=pid) for pid in ids]
    check = cap_check_in_process(rule_row, probe[:20], now)  # warm-up, not timed
    check = cap_check_in_process(rule_row, probe, now)
    cap_state_ms, counted = check["ms_per_send"], check["counted"]
    print(f"  the cap check's own work in-process (rules.cap_state with the person's lock, {BATCH} per "
          f"transaction) over the same {len(probe):,} people ({counted / len(probe):.2f} counted deliveries per "
          f"person): {cap_state_ms:.3f} ms per send ({cap_state_ms / baseline['ms_per_send']:.2f}x the SQL "
          f"baseline; target < {CAP_TARGET_MS:g} ms: {'met' if cap_state_ms < CAP_TARGET_MS else 'missed'})",
          flush=True)
    half = sample // 2
    for low, high in ((0, half - 1), (half, sample - 1)):
        for name, phase in phases.items():
            if name == "capped":
                rules.save_rules(workspace=workspace, body=CAP_RULES)
            else:
                DeliveryRules.objects.for_workspace(workspace).delete()  # no delivery rules at all
            with Timed(rules, "before_send") as inside:
                runs, seconds = drain(phase["campaign"], workspace, phase["first"] + low, phase["first"] + high)
            phase["before_send_seconds"] = phase.get("before_send_seconds", 0.0) + inside.seconds
            phase["runs"] += runs
            phase["seconds"] += seconds
            phase["rounds_ms_per_send"].append(seconds * 1000 / runs)
    DeliveryRules.objects.for_workspace(workspace).delete()
    for name, phase in phases.items():
        made = phase.pop("campaign")
        phase.update(sends=phase["runs"], ms_per_send=phase["seconds"] * 1000 / phase["runs"],
                     outcomes=sent(made, workspace, phase["runs"]))
        services.pause_campaign(campaign=made)  # the A/B tick below sees only its own tests
    services.pause_campaign(campaign=warm)
    a, ab, b = phases["plain"], phases["variants"], phases["capped"]
    for label, phase in (("(a) no delivery rules", a), ("(c) 2-variant send step, no rules", ab),
                         ("(b) with the two caps", b)):
        print(f"  {label}: {phase['sends']:,} sends in {phase['seconds']:,.2f} s = {phase['ms_per_send']:.3f} ms per "
              f"send (rounds: {', '.join(f'{ms:.3f}' for ms in phase['rounds_ms_per_send'])} ms; "
              f"{', '.join(f'{k}: {v:,}' for k, v in phase['outcomes'].items())})", flush=True)
    added = b["ms_per_send"] - a["ms_per_send"]
    in_tick = b["before_send_seconds"] * 1000 / b["sends"]
    print(f"  inside rules.before_send during the capped tick: {in_tick:.3f} ms per send (without rules: "
          f"{a['before_send_seconds'] * 1000 / a['sends']:.3f} ms; target < {CAP_TARGET_MS:g} ms: "
          f"{'met' if in_tick < CAP_TARGET_MS else 'missed'})", flush=True)
    spread = max(abs(x - y) for x, y in (a["rounds_ms_per_send"], b["rounds_ms_per_send"]))
    print(f"  tick with caps − tick without: {added:.3f} ms per send (the rounds of one phase differ by up to "
          f"{spread:.3f} ms: the machine's drift, beside which a difference this small is not resolved); by the "
          f"2-variant step: {ab['ms_per_send'] - a['ms_per_send']:.3f} ms per send", flush=True)
    return {"sample": sample, "warm_up_sends": warmed, "plain": a, "capped": b, "prior_deliveries": prior,
            "baseline": baseline, "added_ms_per_send": added, "cap_check_ms_per_send": cap_state_ms,
            "before_send_in_tick_ms_per_send": in_tick,
            "cap_check_sample": len(probe), "target_ms": CAP_TARGET_MS, "met": cap_state_ms < CAP_TARGET_MS,
            "variants_tick": ab, "variants_added_ms_per_send": ab["ms_per_send"] - a["ms_per_send"]}


def bench_variant_of(workspace) -> dict:
    from campaigns.journeys import engine

    with connect() as conn:
        cio_ids = [row[0] for row in conn.execute(
            "SELECT cio_id FROM profiles_profile WHERE workspace_id = %s ORDER BY id", [workspace.pk])]
    step = {"variants": [{"key": key, "weight": 1} for key in "ABC"], "holdout": {"weight": 1}}
    runs = [SimpleNamespace(workspace_id=workspace.pk, campaign_id=1, step="welcome",
                            profile=SimpleNamespace(cio_id=cio)) for cio in cio_ids]
    seeds = [f"{workspace.pk}:1:welcome:{cio}".encode() for cio in cio_ids]
    started = time.perf_counter()
    split: dict[str, int] = {}
    for run in runs:
        variant = engine.variant_of(run, step)
        split[variant] = split.get(variant, 0) + 1
    ulak = (time.perf_counter() - started) * 1e6 / len(runs)
    started = time.perf_counter()
    for seed in seeds:
        hashlib.sha256(seed).digest()
    bare = (time.perf_counter() - started) * 1e6 / len(seeds)
    print(f"  engine.variant_of over {len(runs):,} people (3 variants + holdout): {ulak:.2f} µs per call "
          f"(split {split}); baseline, bare hashlib.sha256 over the same seeds: {bare:.2f} µs", flush=True)
    return {"people": len(runs), "us_per_call": ulak, "baseline_us_per_call": bare, "split": split}


# --- 3. the A/B evaluation tick ---------------------------------------------------------------------------------

def insert_tests(workspace_id: int, campaign_ids: list[int], sends: int) -> dict:
    """For each campaign: `sends` completed runs (people 1…sends), a sent delivery each (variant A
    for even, B for odd person numbers; opened by a seeded hash: A 20 %, B 20 % or 60 % when the
    campaign id is a multiple of 10) and its `sent` step-log row."""
    with connect() as conn:
        runs = conn.execute("""
            INSERT INTO campaigns_journey (workspace_id, campaign_id, profile_id, key, exclusive, state, exit_reason,
                step, seq, next_run_at, wait, trigger_ref, trigger_data, data, entered_at, updated_at, ended_at,
                version)
            SELECT c.workspace_id, c.id, p.id, '', true, 'completed', '', '', 1, NULL, '{}'::jsonb,
                'bench-ab:' || g, '{}'::jsonb, '{}'::jsonb, now(), now(), now(), c.version
            FROM campaigns_campaign c CROSS JOIN generate_series(1, %(sends)s::int) g
            JOIN profiles_profile p ON p.workspace_id = c.workspace_id AND p.external_id = 'user-' || g
            WHERE c.workspace_id = %(ws)s AND c.id = ANY(%(ids)s)""",
                            {"ws": workspace_id, "ids": campaign_ids, "sends": sends}).rowcount
        opened = f"{h('j.id', 17)} %% 100 < CASE WHEN v.variant = 'A' OR j.campaign_id %% 10 <> 0 THEN 20 ELSE 60 END"
        steps = conn.execute(f"""
            WITH d AS (
                INSERT INTO channels_delivery (public_id, channel, source, source_id, variant, recipient, content,
                    message_data, subject, body, body_plain, rendered_payload, retain_content, send_to_unsubscribed,
                    tracked, status, failure_reason, provider_message_id, idempotency_key, attempts, claim_token,
                    created_at, sent_at, opened_at, updated_at, profile_id, workspace_id)
                SELECT substr(md5('ab:' || j.id), 1, 24), 'email', 'campaign', j.campaign_id::text, v.variant,
                    p.email, '{{}}', '{{}}', 'Hello', '', '', '{{}}', true, false, true,
                    CASE WHEN {opened} THEN 'opened' ELSE 'sent' END, '', '', 'journey:' || j.id || ':1', 1, '',
                    now(), now(), CASE WHEN {opened} THEN now() END, now(), j.profile_id, j.workspace_id
                FROM campaigns_journey j
                JOIN profiles_profile p ON p.id = j.profile_id
                CROSS JOIN LATERAL (SELECT CASE WHEN split_part(j.trigger_ref, ':', 2)::int %% 2 = 0
                                           THEN 'A' ELSE 'B' END AS variant) v
                WHERE j.workspace_id = %(ws)s AND j.campaign_id = ANY(%(ids)s)
                RETURNING id, public_id, variant, idempotency_key, source_id, workspace_id)
            INSERT INTO campaigns_journeystep (workspace_id, journey_id, campaign_id, seq, step, type, outcome, detail,
                delivery_id, created_at)
            SELECT d.workspace_id, split_part(d.idempotency_key, ':', 2)::bigint, d.source_id::bigint, 1, 'welcome',
                'send', 'sent', jsonb_build_object('delivery_id', d.public_id, 'variant', d.variant), d.id, now()
            FROM d""", {"ws": workspace_id, "ids": campaign_ids}).rowcount
        for table in ("campaigns_journey", "channels_delivery", "campaigns_journeystep"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return {"runs": runs, "deliveries": steps, "step_rows": steps}


def tallies_baseline(workspace_id: int, campaign_ids: list[int]) -> tuple[float, int]:
    with connect() as conn:
        started = time.perf_counter()
        rows = conn.execute("""
            SELECT s.campaign_id, s.step, s.detail ->> 'variant', count(d.sent_at), count(d.opened_at),
                count(d.clicked_at), count(d.converted_at)
            FROM campaigns_journeystep s JOIN channels_delivery d ON d.id = s.delivery_id
            WHERE s.workspace_id = %s AND s.campaign_id = ANY(%s) AND s.step = 'welcome' AND s.outcome = 'sent'
                AND s.detail ->> 'variant' IS NOT NULL
            GROUP BY 1, 2, 3""", [workspace_id, campaign_ids]).fetchall()
        return time.perf_counter() - started, len(rows)


def bench_evaluate(workspace, tests: int, sends: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from campaigns.journeys.experiments import evaluate_experiments

    started = time.perf_counter()
    ids = [make_campaign(workspace, f"bench-ab-{i}", VARIANT_WORKFLOW,
                         trigger={"type": "event", "name": f"bench_ab_{i}"}).pk for i in range(tests)]
    made = time.perf_counter() - started
    data = insert_tests(workspace.pk, ids, sends)
    print(f"  {tests:,} campaigns created and activated in {made:,.1f} s; {data['deliveries']:,} sent deliveries "
          f"with their step-log rows inserted with SQL", flush=True)
    looks = []
    for _ in range(4):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = evaluate_experiments()
            elapsed = time.perf_counter() - started
        looks.append({"seconds": elapsed, "queries": len(queries.captured_queries), **result})
    first, later = looks[0], looks[1:]
    median = statistics.median(look["seconds"] for look in later)
    decided = sum(look["decided"] for look in looks)
    baseline = [tallies_baseline(workspace.pk, ids) for _ in range(4)]
    baseline_median = statistics.median(seconds for seconds, _ in baseline[1:])
    print(f"  first look (creates the decision rows): {first['seconds']:.3f} s, {first['queries']} queries, "
          f"{first['looked']:,} tests looked at, {first['decided']:,} decided", flush=True)
    times = ", ".join(f"{look['seconds']:.3f} s" for look in later)
    print(f"  3 further looks: {times} (median {median:.3f} s; "
          f"{later[0]['queries']} queries, {later[0]['looked']:,} undecided tests looked at each)", flush=True)
    met = max(first["seconds"], median) < EVALUATE_TARGET_S
    print(f"  baseline, one hand-written GROUP BY of every test's counts ({baseline[0][1]:,} variant rows): first "
          f"{baseline[0][0]:.3f} s, median of 3 more {baseline_median:.3f} s; target < {EVALUATE_TARGET_S:g} s: "
          f"{'met' if met else 'missed'}", flush=True)
    return {"tests": tests, "sends_per_test": sends, "campaigns_created_s": made, **data, "looks": looks,
            "first_s": first["seconds"], "median_s": median, "decided": decided,
            "baseline_first_s": baseline[0][0], "baseline_median_s": baseline_median,
            "baseline_rows": baseline[0][1], "target_s": EVALUATE_TARGET_S, "met": met}


def unsent_deliveries(workspace) -> tuple[int, int]:
    """The deliveries the ticks made (keyed journey:<run>:<seq>; not the prior ones inserted with SQL):
    (still queued, all) — no worker ran, so none was sent."""
    from channels.models import Delivery, DeliveryStatus

    rows = Delivery.objects.for_workspace(workspace).filter(idempotency_key__startswith="journey:")
    return rows.filter(status=DeliveryStatus.QUEUED).count(), rows.count()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--tests", type=int, default=1000, help="running A/B tests (active campaigns)")
    parser.add_argument("--sends-per-test", type=int, default=200)
    parser.add_argument("--tick-sample", type=int, default=20_000, help="sends per timed tick phase")
    parser.add_argument("--database", default=DB, help=f"database to (re)create, default {DB}")
    parser.add_argument("--redis", default=REDIS, help="a Redis database of its own: broker and cache (flushed)")
    opts = parser.parse_args()
    if opts.people < 2 * opts.tick_sample or opts.people < opts.sends_per_test:
        raise SystemExit("--people must be at least 2 × --tick-sample and at least --sends-per-test")
    journeys.DB, journeys.REDIS = opts.database, opts.redis  # the helpers reused from journeys.py read these

    flush_redis()
    common_fresh_database(journeys.DB, journeys.env())
    keys = json.loads(common_manage(journeys.env(), "create_workspace", "Bench", "--owner-email",
                                    f"bench-{uuid.uuid4().hex[:6]}@ulak.test", "--password", "bench-pass-123",
                                    "--json"))
    generated = journeys.generate(keys["workspace_id"], opts.people)
    print(f"Generated {opts.people:,} people in {generated:,.1f} s", flush=True)
    sys.path.insert(0, str(ROOT))
    setup_django()
    from accounts.models import Workspace
    from channels.models import ChannelConfig

    workspace = Workspace.objects.get(pk=keys["workspace_id"])
    ChannelConfig(workspace=workspace, name="SMTP sink (never reached)", type="email", provider="smtp",
                  sender="hello@bench.test", is_default=True, settings={"host": "127.0.0.1", "port": 2525}).save()
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(journeys.DB), "people": opts.people,
               "load_average_at_start": list(os.getloadavg())}  # a busy machine inflates the per-send differences

    print(f"\n1. Cap check and 2. variant step, {opts.tick_sample:,} sends per phase (engine.tick in-process):",
          flush=True)
    results["caps"] = bench_caps(workspace, opts.tick_sample)
    queued, made = unsent_deliveries(workspace)
    expected = results["caps"]["warm_up_sends"] + sum(results["caps"][k]["sends"]
                                                      for k in ("plain", "capped", "variants_tick"))
    if queued != made or made < expected:
        raise SystemExit(f"{made:,} deliveries made, {queued:,} still queued, {expected:,} expected: "
                         "something sent them, or sends are missing")
    print(f"  {queued:,} deliveries queued, none sent (no worker runs)", flush=True)
    print("\n2. Variant assignment (pure function):", flush=True)
    results["variant_of"] = bench_variant_of(workspace)
    print(f"\n3. A/B evaluation tick over {opts.tests:,} running tests, {opts.sends_per_test:,} sends each:",
          flush=True)
    results["evaluate"] = bench_evaluate(workspace, opts.tests, opts.sends_per_test)
    flush_redis()
    results["load_average_at_end"] = list(os.getloadavg())

    caps, variant, evaluate = results["caps"], results["variant_of"], results["evaluate"]
    print("\n| measure | Ulak | baseline (same run) | target | verdict |\n|---|---|---|---|---|")
    print(f"| cap check per send: lock + cap_state in-process | {caps['cap_check_ms_per_send']:.3f} ms | "
          f"{caps['baseline']['ms_per_send']:.3f} ms (SQL lock + count) | < {CAP_TARGET_MS:g} ms | "
          f"{'met' if caps['met'] else 'missed'} |")
    print(f"| time inside rules.before_send per capped send, in the tick | "
          f"{caps['before_send_in_tick_ms_per_send']:.3f} ms | — | < {CAP_TARGET_MS:g} ms | "
          f"{'met' if caps['before_send_in_tick_ms_per_send'] < CAP_TARGET_MS else 'missed'} |")
    print(f"| tick with 2 caps − tick without, per send | {caps['added_ms_per_send']:.3f} ms | "
          f"{caps['plain']['ms_per_send']:.3f} ms per plain send | — | — |")
    print(f"| engine.variant_of, per call | {variant['us_per_call']:.2f} µs | {variant['baseline_us_per_call']:.2f} µs "
          f"(sha256) | — | — |")
    print(f"| 2-variant send step, added per send (tick) | {caps['variants_added_ms_per_send']:.3f} ms | "
          f"{caps['plain']['ms_per_send']:.3f} ms per plain send | — | — |")
    print(f"| A/B evaluation tick, {evaluate['tests']:,} tests, first / median of 3 | {evaluate['first_s']:.3f} / "
          f"{evaluate['median_s']:.3f} s | {evaluate['baseline_first_s']:.3f} / {evaluate['baseline_median_s']:.3f} s "
          f"(SQL GROUP BY) | < {EVALUATE_TARGET_S:g} s | {'met' if evaluate['met'] else 'missed'} |")
    print(json.dumps(rounded(results)))


if __name__ == "__main__":
    main()
