"""Workspace delivery rules on journey send steps (campaigns/journeys/rules.py): the global holdout,
frequency caps per channel and across channels in a rolling window (skip or wait, exempt campaigns,
priority), exact under 20 concurrent workers, quiet hours on the person's clock across a DST change
and far-apart zones; transactional sends bypass all of it."""

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.journeys import engine, rules
from campaigns.models import DeliveryRules, Journey
from channels.models import Delivery, DeliveryEvent
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, person, runs_of, step_log, tick
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def set_rules(ws, **body):
    return rules.save_rules(workspace=ws, body=body)


def email(key, nxt=None, subject="Hi"):
    return {"type": "send", "channel": "email", "content": {"subject": subject, "body": "Hello"}, "next": nxt}


def sms(key, nxt=None):
    return {"type": "send", "channel": "sms", "content": {"body": "Hello"}, "next": nxt}


def delay(nxt, **duration):
    return {"type": "delay", "duration": duration, "next": nxt}


def chain(*steps):
    """A workflow of (key, step) pairs in order."""
    return {"start": steps[0][0], "steps": dict(steps)}


def deliveries(ws, profile, **filters):
    return Delivery.objects.for_workspace(ws).filter(profile=profile, **filters).order_by("pk")


def outcomes(run):
    return [(step, outcome) for _, step, outcome in step_log(run)]


# --- holdout -------------------------------------------------------------------------------------------

def test_holdout_bucket_is_stable_and_raising_the_percent_only_adds_people():
    ids = [f"cio-{i}" for i in range(2000)]
    buckets = [rules.holdout_bucket(7, cio) for cio in ids]
    assert buckets == [rules.holdout_bucket(7, cio) for cio in ids]
    assert all(0 <= bucket < 100 for bucket in buckets)
    ten, twenty = DeliveryRules(holdout_percent=10), DeliveryRules(holdout_percent=20)
    in_ten = {cio for cio in ids if rules.in_holdout(ten, 7, cio)}
    in_twenty = {cio for cio in ids if rules.in_holdout(twenty, 7, cio)}
    assert in_ten < in_twenty
    assert 150 <= len(in_ten) <= 250 and 330 <= len(in_twenty) <= 470
    # Another workspace draws its own holdout.
    assert in_ten != {cio for cio in ids if rules.in_holdout(ten, 8, cio)}
    assert not any(rules.in_holdout(DeliveryRules(holdout_percent=0), 7, cio) for cio in ids)


def test_people_in_the_holdout_get_no_marketing_message_and_go_on(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    held = set_rules(ws, holdout_percent=50)
    made = campaign(ws, trigger={"type": "event", "name": "signed_up"},
                    workflow=chain(("hello", email("hello", "mark")),
                                   ("mark", {"type": "update_attributes", "attributes": {"welcomed": True}})))
    names = [f"p{i}" for i in range(20)]
    for name in names:
        identify(track, name, email=f"{name}@example.test")
        event(track, name, "signed_up")
    feed(ws)
    tick()
    out, messaged = [], []
    for name in names:
        profile = person(ws, name)
        run = runs_of(made, profile=profile)[0]
        assert run.state == "completed"
        assert profile.attributes["welcomed"] is True  # the run went on past the send step
        if rules.in_holdout(held, ws.pk, profile.cio_id):
            out.append(name)
            assert outcomes(run)[0] == ("hello", "holdout")
            assert not deliveries(ws, profile).exists()
        else:
            messaged.append(name)
            assert outcomes(run)[0] == ("hello", "sent")
            assert deliveries(ws, profile).count() == 1
    assert out and messaged


# --- frequency caps --------------------------------------------------------------------------------------

def test_a_per_channel_cap_in_a_rolling_window_skips_and_records_the_capped_send(tenant_a, track, clock,
                                                                                   email_config, sms_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 2, "period": {"hours": 24}}])
    made = campaign(ws, trigger={"type": "event", "name": "go"}, when_capped="skip", workflow=chain(
        ("e1", email("e1", "d1")), ("d1", delay("e2", hours=10)), ("e2", email("e2", "d2")),
        ("d2", delay("e3", hours=10)), ("e3", email("e3", "s1")), ("s1", sms("s1", "d3")),
        ("d3", delay("e4", hours=5)), ("e4", email("e4"))))
    identify(track, "ada", email="ada@example.test", phone="+15550002222")
    event(track, "ada", "go")
    feed(ws)
    ada = person(ws, "ada")
    tick()  # t0: e1
    clock.shift(timedelta(hours=10))
    tick()  # t10: e2 (2 in the window)
    clock.shift(timedelta(hours=10))
    tick()  # t20: e3 capped (t0 and t10 are in the window); the SMS is not capped by an email cap
    clock.shift(timedelta(hours=5))
    tick()  # t25: the window is (t1, t25]: only t10 is in it, e4 goes
    run = runs_of(made)[0]
    assert run.state == "completed"
    sends = [(step, outcome) for step, outcome in outcomes(run) if step in ("e1", "e2", "e3", "e4", "s1")]
    assert sends == [("e1", "sent"), ("e2", "sent"), ("e3", "capped"), ("s1", "sent"), ("e4", "sent")]
    capped = deliveries(ws, ada, status="undeliverable").get()
    assert (capped.channel, capped.failure_reason, capped.source) == ("email", "frequency cap", "campaign")
    assert list(DeliveryEvent.objects.for_workspace(ws).filter(delivery=capped).values_list("kind", flat=True)
                .order_by("pk")) == ["queued", "undeliverable"]
    assert deliveries(ws, ada).exclude(status="undeliverable").count() == 4


def test_a_cap_across_channels_waits_for_the_oldest_delivery_to_leave_the_window(tenant_a, track, clock,
                                                                                  email_config, sms_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": None, "limit": 2, "period": {"days": 1}}])
    made = campaign(ws, trigger={"type": "event", "name": "go"},
                    workflow=chain(("e1", email("e1", "s1")), ("s1", sms("s1", "e2")), ("e2", email("e2"))))
    identify(track, "ada", email="ada@example.test", phone="+15550002222")
    event(track, "ada", "go")
    feed(ws)
    ada = person(ws, "ada")
    tick()
    run = runs_of(made)[0]
    assert (run.state, run.step, run.wait, run.next_run_at) == ("waiting", "e2", {}, T0 + timedelta(days=1))
    assert outcomes(run)[-1] == ("e2", "capped_waiting")
    clock.shift(timedelta(days=1) - timedelta(seconds=1))
    assert tick() == 0
    clock.shift(timedelta(seconds=1))
    assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed" and outcomes(run)[-1] == ("e2", "sent")
    assert list(deliveries(ws, ada).values_list("channel", "status")) == [
        ("email", "queued"), ("sms", "queued"), ("email", "queued")]


def test_an_exempt_campaign_ignores_caps_and_its_sends_count_for_the_others(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": None, "limit": 1, "period": {"days": 1}}])
    exempt = campaign(ws, name="Receipts", trigger={"type": "event", "name": "paid"}, exempt_from_caps=True,
                      workflow=chain(("a", email("a", "b")), ("b", email("b"))))
    other = campaign(ws, name="Offers", trigger={"type": "event", "name": "browsed"}, when_capped="skip",
                     workflow=chain(("offer", email("offer"))))
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "paid")
    feed(ws)
    tick()
    assert outcomes(runs_of(exempt)[0]) == [("a", "sent"), ("b", "sent")]
    event(track, "ada", "browsed")
    feed(ws)
    tick()
    assert outcomes(runs_of(other)[0]) == [("offer", "capped")]


def test_transactional_sends_bypass_caps_holdout_and_quiet_hours(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    set_rules(ws, holdout_percent=50, quiet_hours={"start": "00:00", "end": "23:59", "timezone": "UTC"},
              frequency_caps=[{"channel": None, "limit": 1, "period": {"days": 1}}])
    identify(track, "ada", email="ada@example.test")
    feed(ws)
    ada = person(ws, "ada")
    for _ in range(3):
        response = tenant_a.app_client().post("/v1/send/email", {"identifiers": {"id": "ada"}, "subject": "S",
                                                                 "body": "B"}, format="json")
        assert response.status_code == 200, response.content
    assert list(deliveries(ws, ada).values_list("source", "status")) == [("transactional", "queued")] * 3


def test_a_higher_priority_campaign_due_within_a_minute_wins_the_last_slot(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 1, "period": {"days": 1}}])
    low = campaign(ws, name="Newsletter", trigger={"type": "event", "name": "go"}, when_capped="skip",
                   workflow=chain(("news", email("news"))))
    high = campaign(ws, name="Cart", trigger={"type": "event", "name": "go"}, priority=10, when_capped="skip",
                    workflow=chain(("pause", delay("cart", seconds=30)), ("cart", email("cart"))))
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "go")
    feed(ws)
    tick()  # the newsletter would take the last slot while the cart reminder is due in 30 s: it yields
    low_run = runs_of(low)[0]
    assert outcomes(low_run) == [("news", "yielded")]
    assert low_run.next_run_at == T0 + timedelta(minutes=1)
    clock.shift(timedelta(seconds=30))
    tick()
    clock.shift(timedelta(seconds=30))
    tick()
    assert [o for o in outcomes(runs_of(high)[0]) if o[0] == "cart"] == [("cart", "sent")]
    assert outcomes(runs_of(low)[0]) == [("news", "yielded"), ("news", "capped")]


def test_without_a_higher_priority_run_due_nothing_yields(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 1, "period": {"days": 1}}])
    low = campaign(ws, name="Newsletter", trigger={"type": "event", "name": "go"}, workflow=chain(("news", email("news"))))
    campaign(ws, name="Cart", trigger={"type": "event", "name": "carted"}, priority=10,
             workflow=chain(("pause", delay("cart", minutes=5)), ("cart", email("cart"))))
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "carted")
    feed(ws)
    tick()  # the cart reminder now waits 5 minutes: not due within the minute
    event(track, "ada", "go")
    feed(ws)
    tick()
    assert outcomes(runs_of(low)[0]) == [("news", "sent")]


@pytest.mark.parametrize("rival_priority, asked", [(None, False), (0, False), (10, True)])
def test_the_priority_question_is_asked_only_when_a_running_campaign_outranks_the_send(
        tenant_a, track, clock, email_config, rival_priority, asked):
    """The cap check's cost per send (issue 16 benchmark): with no running campaign of a higher
    priority in the workspace, nobody can take the slot, and no query looks for such runs."""
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 3, "period": {"days": 1}}])
    news = campaign(ws, name="Newsletter", trigger={"type": "event", "name": "go"}, workflow=chain(("news", email("news"))))
    if rival_priority is not None:
        campaign(ws, name="Cart", trigger={"type": "event", "name": "carted"}, priority=rival_priority,
                 workflow=chain(("cart", email("cart"))))
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "go")
    feed(ws)
    with CaptureQueriesContext(connection) as queries:
        tick()
    assert outcomes(runs_of(news)[0]) == [("news", "sent")]
    priority_questions = [q["sql"] for q in queries if '"campaigns_campaign"."priority" >' in q["sql"]]
    assert len(priority_questions) == (1 if asked else 0), priority_questions


def test_twenty_parallel_sends_for_one_person_against_a_cap_of_3_send_exactly_3(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 3, "period": {"days": 1}}])
    made = [campaign(ws, name=f"C{i}", trigger={"type": "event", "name": "go"}, when_capped="skip",
                     workflow=chain(("hello", email("hello")))) for i in range(20)]
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "go")
    feed(ws)
    ada = person(ws, "ada")
    assert Journey.objects.for_workspace(ws).filter(state="active").count() == 20
    start, errors, advanced = threading.Barrier(20), [], []

    def worker():
        try:
            start.wait(timeout=30)
            advanced.append(engine.tick(batch_size=1, max_batches=1))
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and sum(advanced) == 20
    assert deliveries(ws, ada).exclude(status="undeliverable").count() == 3
    assert deliveries(ws, ada, status="undeliverable", failure_reason="frequency cap").count() == 17
    results = sorted(outcomes(runs_of(c)[0])[0][1] for c in made)
    assert results == ["capped"] * 17 + ["sent"] * 3


def test_two_batches_taking_the_same_peoples_cap_locks_do_not_deadlock(tenant_a, track, clock, email_config, caplog):
    """Each capped send holds its person's lock until the batch commits; a batch goes through its
    runs in (workspace, person) order, so two batches that share people take the locks in one
    order. Here batch 1 holds runs A-ada, A-bob and batch 2 B-bob, B-ada (given in that order):
    both wait behind the locks of ada and bob held elsewhere, then start at once. Taken in the
    order given, 1 would hold ada and 2 bob, each waiting for the other."""
    ws = tenant_a.workspace
    set_rules(ws, frequency_caps=[{"channel": "email", "limit": 5, "period": {"days": 1}}])
    a, b = (campaign(ws, name=name, trigger={"type": "event", "name": "go"}, workflow=chain(("hello", email("hello"))))
            for name in ("A", "B"))
    for pid in ("ada", "bob"):
        identify(track, pid, email=f"{pid}@example.test")
        event(track, pid, "go")
    feed(ws)
    ada, bob = person(ws, "ada"), person(ws, "bob")
    run = {(made.name, who.external_id): Journey.objects.for_workspace(ws).get(campaign=made, profile=who)
           for made in (a, b) for who in (ada, bob)}
    batches = [[run["A", "ada"].pk, run["A", "bob"].pk], [run["B", "bob"].pk, run["B", "ada"].pk]]
    errors = []

    def worker(ids):
        try:
            with transaction.atomic():
                claimed = {j.pk: j for j in Journey.unscoped.filter(pk__in=ids).select_related(
                    "profile", "campaign", "workspace").select_for_update(of=("self",))}
                engine.advance_batch([claimed[pk] for pk in ids], now=timezone.now())
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def waiting():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())")
            return cursor.fetchone()[0]

    threads = [threading.Thread(target=worker, args=(ids,)) for ids in batches]
    with caplog.at_level(logging.WARNING, logger="campaigns.journeys.engine"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s), pg_advisory_xact_lock(%s)",
                           [rules.person_lock_key(ws.pk, ada.pk), rules.person_lock_key(ws.pk, bob.pk)])
        for thread in threads:
            thread.start()
        assert wait_until(lambda: waiting() == 2, timeout=30), "the batches never queued behind the locks"
    for thread in threads:  # the locks are released: both batches run
        thread.join(timeout=60)
    assert not errors
    assert not [r for r in caplog.records if "batch failed" in r.getMessage()], "a batch deadlocked and was redone"
    assert sorted(outcomes(j)[0][1] for j in Journey.objects.for_workspace(ws)) == ["sent"] * 4
    assert deliveries(ws, ada).count() == deliveries(ws, bob).count() == 2


# --- quiet hours -----------------------------------------------------------------------------------------

def test_quiet_hours_hold_until_they_end_on_the_persons_clock_across_a_dst_change(tenant_a, track, email_config):
    import time_machine

    ws = tenant_a.workspace
    set_rules(ws, quiet_hours={"start": "21:00", "end": "08:00", "timezone": None})
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=chain(("hello", email("hello"))))
    # Saturday 2026-03-07 22:30 in New York (EST, UTC-5); clocks spring forward that night.
    with time_machine.travel(datetime(2026, 3, 8, 3, 30, tzinfo=UTC), tick=False) as clock:
        identify(track, "ada", email="ada@example.test", timezone="America/New_York")
        event(track, "ada", "go")
        feed(ws)
        tick()
        run = runs_of(made)[0]
        # 08:00 on Sunday is EDT (UTC-4): 12:00 UTC, not 13:00.
        assert (run.state, run.wait, run.next_run_at) == ("waiting", {}, datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
        assert outcomes(run) == [("hello", "quiet_hold")]
        assert not deliveries(ws, person(ws, "ada")).exists()
        clock.move_to(datetime(2026, 3, 8, 11, 59, tzinfo=UTC))
        assert tick() == 0
        clock.move_to(datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
        assert tick() == 1
    run.refresh_from_db()
    assert run.state == "completed" and outcomes(run) == [("hello", "quiet_hold"), ("hello", "sent")]


def test_quiet_hours_in_far_apart_zones_and_skip(tenant_a, track, clock, email_config):
    """At 10:00 UTC it is 19:00 in Tokyo (not quiet) and 02:00 in Los Angeles (quiet). A person
    without a zone of their own falls back to the rules' time zone (Los Angeles here)."""
    ws = tenant_a.workspace
    set_rules(ws, quiet_hours={"start": "21:00", "end": "08:00", "timezone": "America/Los_Angeles"})
    hold = campaign(ws, name="Hold", trigger={"type": "event", "name": "go"}, workflow=chain(("hello", email("hello"))))
    skip = campaign(ws, name="Skip", trigger={"type": "event", "name": "skip"}, when_quiet="skip",
                    workflow=chain(("hello", email("hello"))))
    identify(track, "tokyo", email="t@example.test", timezone="Asia/Tokyo")
    identify(track, "la", email="l@example.test", timezone="America/Los_Angeles")
    identify(track, "nozone", email="n@example.test")
    for name in ("tokyo", "la", "nozone"):
        event(track, name, "go")
    event(track, "la", "skip")
    feed(ws)
    tick()
    run = {name: runs_of(hold, profile=person(ws, name))[0] for name in ("tokyo", "la", "nozone")}
    assert outcomes(run["tokyo"]) == [("hello", "sent")]
    # 08:00 PST on 2026-03-02 is 16:00 UTC.
    for name in ("la", "nozone"):
        assert outcomes(run[name]) == [("hello", "quiet_hold")]
        assert run[name].next_run_at == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    skipped = runs_of(skip)[0]
    assert skipped.state == "completed" and outcomes(skipped) == [("hello", "quiet_skipped")]
    assert list(deliveries(ws, person(ws, "la")).values_list("source_id", flat=True)) == []


# --- the App API ---------------------------------------------------------------------------------------

RULES = {"frequency_caps": [{"channel": "email", "limit": 3, "period": {"days": 1}},
                            {"channel": None, "limit": 5, "period": {"weeks": 1}}],
         "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Europe/Istanbul"}, "holdout_percent": 10}


def fields_of(response) -> dict:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def test_get_answers_the_defaults_then_put_replaces_the_rules(tenant_a):
    from tests.helpers import app_client_with_scopes

    client = tenant_a.app_client()
    assert client.get("/v1/delivery_rules").json() == {"delivery_rules": {
        "frequency_caps": [], "quiet_hours": None, "holdout_percent": 0, "updated": None}}
    response = client.put("/v1/delivery_rules", RULES, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()["delivery_rules"]
    assert {k: v for k, v in answer.items() if k != "updated"} == RULES and isinstance(answer["updated"], int)
    assert app_client_with_scopes(tenant_a, "read").get("/v1/delivery_rules/").json()["delivery_rules"] == answer
    # PUT is a replacement: what it leaves out takes its default.
    client.put("/v1/delivery_rules", {"holdout_percent": 5}, format="json")
    row = DeliveryRules.objects.for_workspace(tenant_a.workspace).get()
    assert (row.frequency_caps, row.quiet_hours, row.holdout_percent) == ([], None, 5)


def test_bad_rules_are_a_400_naming_each_field_and_change_nothing(tenant_a):
    client = tenant_a.app_client()
    client.put("/v1/delivery_rules", RULES, format="json")
    response = client.put("/v1/delivery_rules", {
        "frequency_caps": [{"channel": "email", "limit": 3, "period": {"days": 0}},
                           {"channel": "fax", "limit": 0, "period": {"days": 1}}, "x"],
        "quiet_hours": {"start": "25:00", "end": "08:00", "timezone": "Mars/Olympus"},
        "holdout_percent": 51, "extra": True}, format="json")
    assert response.status_code == 400
    assert fields_of(response) == {
        "frequency_caps.0.period.days": "must be a whole number above 0",
        "frequency_caps.1.channel": "must be null (all channels) or one of email, sms, whatsapp, push, webhook, in_app",
        "frequency_caps.2": 'must be {"channel": "email" | null, "limit": N, "period": {"days": N}}',
        "quiet_hours.start": "must be a time of day, 00:00 to 23:59",
        "holdout_percent": "must be a whole number from 0 to 50",
        "extra": "unknown field; use frequency_caps, quiet_hours, holdout_percent"}
    assert fields_of(client.put("/v1/delivery_rules", {"quiet_hours": {"start": "08:00", "end": "08:00"}},
                                format="json")) == {"quiet_hours.end": "must differ from start"}
    assert fields_of(client.put("/v1/delivery_rules", ["x"], format="json")) == {None: "must be a JSON object"}
    row = DeliveryRules.objects.for_workspace(tenant_a.workspace).get()
    assert (row.frequency_caps, row.quiet_hours, row.holdout_percent) == (
        RULES["frequency_caps"], RULES["quiet_hours"], 10)


def test_rules_need_the_read_or_write_scope(tenant_a):
    from tests.helpers import app_client_with_scopes

    assert app_client_with_scopes(tenant_a, "read").put("/v1/delivery_rules", RULES, format="json").status_code == 403
    assert app_client_with_scopes(tenant_a, "write").get("/v1/delivery_rules").status_code == 403
    assert app_client_with_scopes(tenant_a, "write").put("/v1/delivery_rules", RULES, format="json").status_code == 200
    assert not DeliveryRules.objects.for_workspace(tenant_a.workspace).filter(holdout_percent=0).exists()


def test_each_workspace_has_its_own_rules(two_tenants):
    a, b = two_tenants
    a.app_client().put("/v1/delivery_rules", RULES, format="json")
    assert b.app_client().get("/v1/delivery_rules").json()["delivery_rules"]["holdout_percent"] == 0
    b.app_client().put("/v1/delivery_rules", {"holdout_percent": 20}, format="json")
    assert a.app_client().get("/v1/delivery_rules").json()["delivery_rules"]["holdout_percent"] == 10
    assert DeliveryRules.unscoped.count() == 2


def test_campaign_rule_fields_in_the_definition(two_tenants):
    a, b = two_tenants
    client = a.app_client()
    body = {"name": "Offers", "trigger": {"type": "event", "name": "go"}, "priority": 5, "exempt_from_caps": True,
            "when_capped": "skip", "when_quiet": "skip"}
    made = client.post("/v1/campaigns", body, format="json").json()["campaign"]
    assert {k: made[k] for k in ("priority", "exempt_from_caps", "when_capped", "when_quiet")} == {
        "priority": 5, "exempt_from_caps": True, "when_capped": "skip", "when_quiet": "skip"}
    patched = client.patch(f"/v1/campaigns/{made['id']}", {"priority": -1}, format="json").json()["campaign"]
    assert (patched["priority"], patched["when_capped"]) == (-1, "skip")
    response = client.post("/v1/campaigns", {**body, "priority": "high", "exempt_from_caps": "yes",
                                             "when_capped": "later", "when_quiet": 1}, format="json")
    assert response.status_code == 400
    assert fields_of(response) == {"priority": "must be a whole number from -1000 to 1000",
                                   "exempt_from_caps": "must be true or false",
                                   "when_capped": "must be one of wait, skip", "when_quiet": "must be one of hold, skip"}
    assert b.app_client().patch(f"/v1/campaigns/{made['id']}", {"priority": 1}, format="json").status_code == 404


# --- the console --------------------------------------------------------------------------------------------

def admin_url(view="changelist", *args):
    from django.urls import reverse

    return reverse(f"admin:campaigns_deliveryrules_{view}", args=args)


def admin_form(**overrides):
    import json

    data = {"frequency_caps": json.dumps(RULES["frequency_caps"]), "quiet_hours": json.dumps(RULES["quiet_hours"]),
            "holdout_percent": "10", **overrides}
    return data


def test_the_delivery_rules_page_sets_the_workspace_rules_through_the_cleaner(client, tenant_a):
    client.force_login(tenant_a.owner)
    response = client.get(admin_url())
    assert response.status_code == 302 and response["Location"] == admin_url("add")
    response = client.post(admin_url("add"), admin_form(
        frequency_caps='[{"channel": "email", "limit": 3, "period": {"days": 0}}]', holdout_percent="60"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["frequency_caps"] == ["frequency_caps.0.period.days: must be a whole number above 0"]
    assert errors["holdout_percent"] == ["must be a whole number from 0 to 50"]
    assert not DeliveryRules.objects.for_workspace(tenant_a.workspace).exists()
    response = client.post(admin_url("add"), admin_form())
    assert response.status_code == 302
    row = DeliveryRules.objects.for_workspace(tenant_a.workspace).get()
    assert (row.frequency_caps, row.quiet_hours, row.holdout_percent) == (
        RULES["frequency_caps"], RULES["quiet_hours"], 10)
    # One row per workspace: the list and the add form lead to it.
    assert client.get(admin_url())["Location"] == admin_url("change", row.pk)
    assert client.get(admin_url("add")).status_code == 403
    response = client.post(admin_url("change", row.pk), admin_form(quiet_hours="null", holdout_percent="0"))
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.quiet_hours, row.holdout_percent) == (None, 0)


def test_the_delivery_rules_page_is_the_workspaces_own_and_role_gated(client, two_tenants):
    from accounts.roles import Role
    from tests.support.factories import make_member

    a, b = two_tenants
    row = rules.save_rules(workspace=a.workspace, body=RULES)
    client.force_login(b.owner)
    assert client.get(admin_url("change", row.pk)).status_code == 404
    assert client.post(admin_url("change", row.pk), admin_form(holdout_percent="0")).status_code == 404
    client.force_login(make_member(a.workspace, Role.ANALYST))  # may view, not change
    assert client.get(admin_url("change", row.pk)).status_code == 200
    assert client.post(admin_url("change", row.pk), admin_form(holdout_percent="0")).status_code == 403
    client.force_login(make_member(a.workspace, Role.COMPLIANCE))
    assert client.get(admin_url("change", row.pk)).status_code == 403
    row.refresh_from_db()
    assert row.holdout_percent == 10


def test_the_campaign_page_edits_the_campaign_rule_fields(client, tenant_a, email_config):
    import json

    from django.urls import reverse

    made = campaign(tenant_a.workspace, activate=False, trigger={"type": "event", "name": "go"},
                    workflow=chain(("hello", email("hello"))))
    client.force_login(tenant_a.owner)
    page = reverse("admin:campaigns_campaign_change", args=[made.pk])
    assert 'name="when_capped"' in client.get(page).content.decode()
    form = {"name": "Welcome", "key": "", "description": "", "type": "triggered", "journey_key": "",
            "priority": "7", "exempt_from_caps": "on", "when_capped": "skip", "when_quiet": "hold",
            **{k: json.dumps(v) for k, v in {"trigger": {"type": "event", "name": "go"}, "audience": None,
                                             "re_entry": {}, "exit": {}, "goal": None,
                                             "workflow": made.workflow}.items()}}
    response = client.post(page, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    made.refresh_from_db()
    assert (made.priority, made.exempt_from_caps, made.when_capped, made.when_quiet) == (7, True, "skip", "hold")
