"""Broadcast A/B tests on a sample (a send step's `sample`): each trigger's sample gets the variants at
once, the rest wait, then get the variant that did best in THAT trigger's sample, decided once and
kept with its figures; ties go to the control, the holdout gets nothing, an automatic winner
already decided wins, and nobody gets two messages from the step."""

import copy
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from campaigns.journeys import broadcast_ab, broadcasts, engine
from campaigns.journeys.experiments import evaluate_experiments
from campaigns.journeys.selectors import campaign_metrics
from campaigns.models import Campaign, Journey, JourneyStep, VariantDecision
from tests.campaigns.journeys.conftest import T0, campaign, tick
from tests.helpers import app_client_with_scopes
from tests.support.factories import ProfileFactory, make_member

pytestmark = pytest.mark.django_db

WAIT = timedelta(hours=4)
NEWS = {"start": "mail", "steps": {"mail": {
    "type": "send", "channel": "email", "content": {"subject": "Plain", "body": "Hello {{ customer.id }}"},
    "variants": [{"key": "A", "content": {}}, {"key": "B", "content": {"subject": "Shiny"}}],
    "winner": {"metric": "opened", "auto": False},
    "sample": {"percent": 20, "wait": {"hours": 4}}}}}


def newsletter(ws, name="News", **changes):
    workflow = copy.deepcopy(NEWS)
    workflow["steps"]["mail"].update(changes)
    return campaign(ws, type="broadcast", name=name, workflow=workflow)


@pytest.fixture
def people(tenant_a):
    return [ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test")
            for n in range(100)]


def send(made, body=None):
    """Trigger the broadcast, fix its recipients and tick (the sample sends)."""
    trigger, _ = broadcasts.trigger_broadcast(campaign=made, body=body or {})
    assert broadcasts.start_due() == 1
    tick()
    trigger.refresh_from_db()
    return trigger


def sample_of(made, people, percent=20) -> set[int]:
    return {p.pk for p in people
            if broadcast_ab.sample_bucket(made.workspace_id, made.pk, "mail", p.cio_id) < percent}


def sends(trigger) -> dict:
    """The trigger's step-log rows that made a delivery, by person; nobody has two."""
    rows = (JourneyStep.objects.for_workspace(trigger.workspace_id)
            .filter(journey__trigger_ref__startswith=f"broadcast:{trigger.pk}:", delivery__isnull=False)
            .select_related("delivery"))
    out = {}
    for row in rows:
        assert row.delivery.profile_id not in out, "two deliveries from the step for one person"
        out[row.delivery.profile_id] = row
    return out


def mark(rows, *, opened: dict[str, float]):
    """The rows' deliveries sent; of each variant's, the share given opened."""
    now = timezone.now()
    for row in rows:
        row.delivery.sent_at = now
        row.delivery.save(update_fields=["sent_at"])
    for variant, share in opened.items():
        mine = sorted((row.delivery for row in rows if row.delivery.variant == variant), key=lambda d: d.pk)
        for delivery in mine[:round(len(mine) * share)]:
            delivery.opened_at = now
            delivery.save(update_fields=["opened_at"])


def status(tenant, made, trigger):
    response = app_client_with_scopes(tenant, "read").get(f"/v1/campaigns/{made.pk}/triggers/{trigger.pk}")
    assert response.status_code == 200, response.content
    return response.json()["trigger"]["ab_tests"]


def test_the_sample_gets_the_variants_and_after_the_wait_the_rest_get_the_winner(tenant_a, people, email_config,
                                                                                  clock):
    ws = tenant_a.workspace
    made = newsletter(ws)
    trigger = send(made)
    assert trigger.recipients == 100 and trigger.processed_at == T0
    sample = sample_of(made, people)
    assert 10 <= len(sample) <= 32  # about 20 %
    first = sends(trigger)
    assert set(first) == sample
    split = Counter(row.delivery.variant for row in first.values())
    assert set(split) == {"A", "B"}
    runs = {run.profile_id: run for run in Journey.objects.for_workspace(ws).filter(campaign=made)
            .select_related("profile", "workspace")}
    for pid, row in first.items():
        run = runs[pid]
        run.step = "mail"  # where the run was when it drew (it has moved on): the draw is the engine's own
        assert row.delivery.variant == engine.variant_of(run, made.workflow["steps"]["mail"])
        assert row.delivery.content["subject"] == ("Plain" if row.delivery.variant == "A" else "Shiny")
        assert row.detail == {"delivery_id": row.delivery.public_id, "variant": row.delivery.variant,
                              "sample": True, "trigger": trigger.pk}
    until = T0 + WAIT
    rest = [run for pid, run in runs.items() if pid not in sample]
    assert all((run.state, run.step, run.wait, run.next_run_at) == ("waiting", "mail", {}, until) for run in rest)
    held = JourneyStep.objects.for_workspace(ws).filter(campaign=made, outcome="ab_waiting")
    assert held.count() == len(rest)
    assert {row.detail["until"] for row in held} == {until.isoformat()}
    assert status(tenant_a, made, trigger) == [{
        "step": "mail", "metric": "opened", "sample_percent": 20, "wait": {"hours": 4}, "sample_size": len(sample),
        "held_for_winner": len(rest), "rest_sent": 0, "wait_ends_at": int(until.timestamp()), "winner": None,
        "decided_at": None, "figures": None}]

    # Before the wait ends nothing more goes out.
    clock.move_to(T0 + timedelta(hours=3))
    assert tick() == 0
    mark(list(first.values()), opened={"B": 1.0})
    decided_at = until + timedelta(minutes=1)
    clock.move_to(decided_at)
    assert tick() == len(rest)

    everyone = sends(trigger)
    assert set(everyone) == {p.pk for p in people}
    later = [row for pid, row in everyone.items() if pid not in sample]
    assert {row.delivery.variant for row in later} == {"B"}
    assert {row.delivery.content["subject"] for row in later} == {"Shiny"}
    assert all(row.detail == {"delivery_id": row.delivery.public_id, "variant": "B", "by": "sample_winner",
                              "trigger": trigger.pk} for row in later)
    decision = VariantDecision.objects.for_workspace(ws).get(trigger=trigger, step="mail")
    assert (decision.campaign_id, decision.winner, decision.decided_at) == (made.pk, "B", decided_at)
    assert decision.figures == {"metric": "opened", "control": "A", "by": "sample", "sample_percent": 20,
                                "variants": {"A": {"sent": split["A"], "opened": 0, "rate": 0.0},
                                             "B": {"sent": split["B"], "opened": split["B"], "rate": 1.0}}}
    # Decided once: the step's later runs change nothing, and everybody's run is over.
    clock.move_to(decided_at + timedelta(hours=1))
    assert tick() == 0
    assert {run.state for run in Journey.objects.for_workspace(ws).filter(campaign=made)} == {"completed"}
    shown = status(tenant_a, made, trigger)[0]
    assert (shown["winner"], shown["decided_at"], shown["rest_sent"]) == ("B", int(decided_at.timestamp()), len(rest))
    assert shown["figures"]["variants"]["B"] == {"sent": split["B"], "opened": split["B"], "rate": 1.0}
    # The step's metrics count every send per variant; the per-trigger decision is not the step's own.
    metrics = {row["id"]: row for row in campaign_metrics(made)["steps"]}["mail"]
    assert metrics["variants"]["B"]["deliveries"] == split["B"] + len(rest)
    assert metrics["variants"]["A"]["channel"] == "email" and metrics["decision"] is None
    assert metrics["waiting"] == 0 and metrics["completed"] == 100


def test_each_trigger_has_its_own_sample_and_decision_and_a_tie_goes_to_the_control(tenant_a, people,
                                                                                     email_config, clock):
    ws = tenant_a.workspace
    made = newsletter(ws)
    first = send(made)
    mark(list(sends(first).values()), opened={"B": 1.0})
    clock.move_to(T0 + WAIT + timedelta(minutes=1))
    second = send(made)  # the same tick sends the first trigger's rest
    assert {row.delivery.variant for pid, row in sends(first).items()
            if row.detail.get("by") == "sample_winner"} == {"B"}
    sample = sends(second)
    assert set(sample) == sample_of(made, people)  # the same people: the draw is the person's at this step
    # In the second sample half of A's messages are opened and none of B's. Counted together with the
    # first sample (all of B's opened), B would win; counted alone, A does.
    mark(list(sample.values()), opened={"A": 0.5})
    clock.move_to(second.processed_at + WAIT)
    tick()
    rest = [row for row in sends(second).values() if row.detail.get("by") == "sample_winner"]
    assert len(rest) == 100 - len(sample) and {row.delivery.variant for row in rest} == {"A"}
    decisions = {row.trigger_id: row for row in VariantDecision.objects.for_workspace(ws).filter(campaign=made)}
    assert set(decisions) == {first.pk, second.pk}
    assert decisions[first.pk].winner == "B" and decisions[second.pk].winner == "A"
    in_a = sum(row.delivery.variant == "A" for row in sample.values())
    assert decisions[second.pk].figures["variants"]["A"] == {"sent": in_a, "opened": round(in_a * 0.5),
                                                             "rate": round(in_a * 0.5) / in_a}
    assert decisions[second.pk].figures["variants"]["B"]["opened"] == 0

    # A third trigger whose sample opens nothing: a tie, the control wins.
    third = send(made)
    mark(list(sends(third).values()), opened={})
    clock.move_to(third.processed_at + WAIT)
    tick()
    decision = VariantDecision.objects.for_workspace(ws).get(trigger=third, step="mail")
    assert decision.winner == "A"
    assert {key: row["rate"] for key, row in decision.figures["variants"].items()} == {"A": 0.0, "B": 0.0}
    assert {row.delivery.variant for row in sends(third).values()
            if row.detail.get("by") == "sample_winner"} == {"A"}


def test_an_equal_rate_is_a_tie_for_the_control(tenant_a, people, email_config, clock):
    made = newsletter(tenant_a.workspace, winner={"metric": "clicked", "auto": False})
    trigger = send(made)
    rows = list(sends(trigger).values())
    mark(rows, opened={})
    for row in rows:  # every sample message clicked: 100 % each
        row.delivery.clicked_at = timezone.now()
        row.delivery.save(update_fields=["clicked_at"])
    clock.move_to(T0 + WAIT)
    tick()
    decision = VariantDecision.objects.for_workspace(tenant_a.workspace).get(trigger=trigger)
    assert decision.winner == "A" and decision.figures["metric"] == "clicked"
    assert {key: row["rate"] for key, row in decision.figures["variants"].items()} == {"A": 1.0, "B": 1.0}


def test_the_holdout_gets_nothing_in_the_sample_or_after_the_wait(tenant_a, people, email_config, clock):
    ws = tenant_a.workspace
    made = newsletter(ws, holdout={"weight": 1}, sample={"percent": 30, "wait": {"minutes": 30}})
    trigger = send(made)
    held = set(JourneyStep.objects.for_workspace(ws).filter(campaign=made, outcome="holdout")
               .values_list("journey__profile_id", flat=True))
    assert 15 <= len(held) <= 50
    assert not held & set(sends(trigger))
    mark(list(sends(trigger).values()), opened={"A": 1.0})
    clock.move_to(T0 + timedelta(minutes=30))
    tick()
    everyone = sends(trigger)
    assert set(everyone) == {p.pk for p in people} - held
    assert not JourneyStep.objects.for_workspace(ws).filter(campaign=made, outcome="holdout").exclude(
        detail={"variant": "holdout"}).exists()
    # Held-out people never waited for the winner either.
    waited = set(JourneyStep.objects.for_workspace(ws).filter(campaign=made, outcome="ab_waiting")
                 .values_list("journey__profile_id", flat=True))
    assert not waited & held
    assert VariantDecision.objects.for_workspace(ws).get(trigger=trigger).winner == "A"


def test_the_beats_sequential_test_leaves_a_sample_step_to_each_trigger(tenant_a, people, email_config, clock):
    ws = tenant_a.workspace
    made = newsletter(ws, winner={"metric": "opened", "min_per_variant": 10},  # auto (its default) is true
                      sample={"percent": 60, "wait": {"hours": 4}})
    trigger = send(made)
    mark(list(sends(trigger).values()), opened={"B": 1.0})
    # B is far better in the sample, but the beat does not judge the step across triggers.
    assert evaluate_experiments(now=timezone.now())["decided"] == 0
    assert not VariantDecision.objects.for_workspace(ws).filter(campaign=made, trigger__isnull=True).exists()
    clock.move_to(T0 + WAIT)
    tick()
    rest = [row for row in sends(trigger).values() if "sample" not in row.detail]
    assert rest and all(row.detail["by"] == "sample_winner" and row.delivery.variant == "B" for row in rest)
    assert VariantDecision.objects.for_workspace(ws).get(trigger=trigger).winner == "B"


def test_the_wait_counts_from_when_the_first_run_reaches_the_step(tenant_a, people, email_config, clock):
    """A sample step behind a delay: the sample goes out when the runs get there, and the rest wait
    the full `wait` from then (not from when the trigger fixed its recipients)."""
    ws = tenant_a.workspace
    workflow = copy.deepcopy(NEWS)
    workflow["start"] = "later"
    workflow["steps"]["later"] = {"type": "delay", "duration": {"days": 1}, "next": "mail"}
    made = campaign(ws, type="broadcast", name="Later", workflow=workflow)
    trigger = send(made)
    assert sends(trigger) == {}
    assert not VariantDecision.objects.for_workspace(ws).filter(trigger=trigger).exists()
    arrived = T0 + timedelta(days=1)
    clock.move_to(arrived)
    tick()
    sample = sample_of(made, people)
    first = sends(trigger)
    assert set(first) == sample  # the rest wait: nobody got a winner decided on nothing
    test = VariantDecision.objects.for_workspace(ws).get(trigger=trigger)
    assert (test.started_at, test.winner) == (arrived, "")
    until = arrived + WAIT
    held = JourneyStep.objects.for_workspace(ws).filter(campaign=made, outcome="ab_waiting")
    assert held.count() == len(people) - len(sample)
    assert {row.detail["until"] for row in held} == {until.isoformat()}
    assert status(tenant_a, made, trigger)[0]["wait_ends_at"] == int(until.timestamp())
    mark(list(first.values()), opened={"B": 1.0})
    clock.move_to(until)
    tick()
    rest = [row for row in sends(trigger).values() if "sample" not in row.detail]
    assert len(rest) == len(people) - len(sample)
    assert all(row.delivery.variant == "B" and row.detail["by"] == "sample_winner" for row in rest)


def test_the_decision_costs_one_aggregate_and_a_few_reads_whatever_the_number_of_runs(tenant_a, people,
                                                                                     email_config, clock):
    made = newsletter(tenant_a.workspace)
    trigger = send(made)
    mark(list(sends(trigger).values()), opened={"B": 1.0})
    clock.move_to(T0 + WAIT)
    with CaptureQueriesContext(connection) as captured:
        advanced = tick()
    assert advanced >= 60
    sql = [query["sql"] for query in captured.captured_queries]
    assert not any("campaigns_broadcasttrigger" in q for q in sql)
    assert sum("campaigns_variantdecision" in q for q in sql) == 4  # the auto winner, the test's row (once per batch), lock, save
    assert sum("campaigns_journeystep" in q and "@>" in q for q in sql) == 1  # the sample's aggregate


def test_bad_sample_definitions_are_400s_naming_the_field(tenant_a, email_config):
    client = tenant_a.app_client()
    step = NEWS["steps"]["mail"]
    cases = {
        "workflow.steps.mail.sample": {**step, "winner": None},
        "workflow.steps.mail.sample.percent": {**step, "sample": {"percent": 100, "wait": {"hours": 1}}},
        "workflow.steps.mail.sample.wait": {**step, "sample": {"percent": 10}},
        "workflow.steps.mail.sample.wait.years": {**step, "sample": {"percent": 10, "wait": {"years": 1}}},
        "workflow.steps.mail.sample.every": {**step, "sample": {"percent": 10, "wait": {"hours": 1}, "every": 2}},
        "workflow.steps.mail.variants": {key: value for key, value in step.items() if key != "variants"},
    }
    cases_sample_shape = {**step, "sample": "20%"}
    for field, bad in [*cases.items(), ("workflow.steps.mail.sample", cases_sample_shape),
                       ("workflow.steps.mail.sample.percent", {**step, "sample": {"percent": 0, "wait": {"hours": 1}}})]:
        body = {"name": field, "type": "broadcast", "workflow": {"start": "mail", "steps": {"mail": bad}}}
        response = client.post("/v1/campaigns", body, format="json")
        assert response.status_code == 400, (field, response.content)
        assert [error["field"] for error in response.json()["errors"]] == [field], field
    # A triggered campaign has nobody to wait for.
    response = client.post("/v1/campaigns", {"name": "T", "trigger": {"type": "event", "name": "go"},
                                             "workflow": NEWS}, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["workflow.steps.mail.sample"]
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()
    made = client.post("/v1/campaigns", {"name": "Good", "type": "broadcast", "workflow": NEWS}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["campaign"]["workflow"]["steps"]["mail"]["sample"] == {"percent": 20, "wait": {"hours": 4}}


def test_another_workspace_sees_nothing_of_the_test_and_the_console_shows_it(two_tenants, email_config, clock):
    tenant_a, tenant_b = two_tenants
    ws = tenant_a.workspace
    people = [ProfileFactory(workspace=ws, external_id=f"p{n}", email=f"p{n}@example.test") for n in range(40)]
    made = newsletter(ws)
    trigger = send(made)
    mark(list(sends(trigger).values()), opened={"B": 1.0})
    clock.move_to(T0 + WAIT)
    tick()
    assert len(sends(trigger)) == len(people)
    url = f"/v1/campaigns/{made.pk}/triggers/{trigger.pk}"
    assert app_client_with_scopes(tenant_b, "read").get(url).status_code == 404
    assert app_client_with_scopes(tenant_a, "write").get(url).status_code == 403
    assert status(tenant_a, made, trigger)[0]["winner"] == "B"

    console = Client()
    console.force_login(tenant_a.owner)
    page = console.get(reverse("admin:campaigns_campaign_change", args=[made.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="broadcast-tests"' in html and html.count('class="broadcast-test-row"') == 1
    assert "Winner: <code>B</code>" in html and "100.0 %" in html
    other = Client()
    other.force_login(tenant_b.owner)
    assert other.get(reverse("admin:campaigns_campaign_change", args=[made.pk])).status_code == 404


def test_analysts_see_the_test_and_roles_without_campaigns_do_not(tenant_a, people, email_config, clock):
    made = newsletter(tenant_a.workspace)
    trigger = send(made)
    mark(list(sends(trigger).values()), opened={"B": 1.0})
    clock.move_to(T0 + WAIT)
    tick()
    page = reverse("admin:campaigns_campaign_change", args=[made.pk])
    analyst = Client()
    analyst.force_login(make_member(tenant_a.workspace, Role.ANALYST))
    response = analyst.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="broadcast-test-row"') == 1 and "Winner: <code>B</code>" in html
    compliance = Client()
    compliance.force_login(make_member(tenant_a.workspace, Role.COMPLIANCE))
    assert compliance.get(page).status_code == 403
    # A key without `read` does not see the trigger or its test either.
    url = f"/v1/campaigns/{made.pk}/triggers/{trigger.pk}"
    assert app_client_with_scopes(tenant_a, "compliance").get(url).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_agree_on_one_winner_and_send_once(tenant_a, email_config, clock):
    ws = tenant_a.workspace
    people = [ProfileFactory(workspace=ws, external_id=f"p{n}", email=f"p{n}@example.test") for n in range(100)]
    made = newsletter(ws)
    trigger = send(made)
    mark(list(sends(trigger).values()), opened={"B": 1.0})
    clock.move_to(T0 + WAIT)
    start, errors, advanced = threading.Barrier(8), [], []

    def worker():
        try:
            start.wait(timeout=30)
            advanced.append(engine.tick(batch_size=5, max_batches=30))
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    everyone = sends(trigger)
    assert set(everyone) == {p.pk for p in people}
    rest = [row for row in everyone.values() if "sample" not in row.detail]
    assert sum(advanced) == len(rest) and {row.delivery.variant for row in rest} == {"B"}
    assert VariantDecision.objects.for_workspace(ws).filter(trigger=trigger).count() == 1
