"""The automatic winner of an A/B test on a send step: the beat service looks at every running test
with an always-valid sequential test, keeps the decision with its figures and time, and the engine
sends the winner to everybody after it."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from campaigns.journeys.experiments import evaluate_experiments
from campaigns.models import JourneyStep, VariantDecision
from channels.models import Delivery
from core.errors import InvalidFields
from tests.campaigns.conftest import make_config
from tests.campaigns.journeys.conftest import campaign, event, feed, identify, tick
from tests.helpers import app_client_with_scopes

pytestmark = pytest.mark.django_db(transaction=True)


def ab(**winner):
    return {"start": "mail", "steps": {"mail": {
        "type": "send", "channel": "email", "content": {"subject": "Plain", "body": "Hello {{ customer.id }}"},
        "variants": [{"key": "A", "weight": 1, "content": {}},
                     {"key": "B", "weight": 1, "content": {"subject": "Shiny {{ customer.id }}"}}],
        "winner": {"metric": "opened", "confidence": 0.95, "min_per_variant": 10, "auto": True, **winner}}}}


def enter(ws, track, people, name="go"):
    for pid in people:
        identify(track, pid, email=f"{pid}@example.test")
        event(track, pid, name)
    feed(ws)
    tick()


def mark(ws, *, opened: dict[str, float]):
    """Every delivery sent; of each variant's, the share given opened."""
    deliveries = Delivery.objects.for_workspace(ws)
    deliveries.update(sent_at=timezone.now())
    for variant, share in opened.items():
        ids = list(deliveries.filter(variant=variant).order_by("pk").values_list("pk", flat=True))
        deliveries.filter(pk__in=ids[:round(len(ids) * share)]).update(opened_at=timezone.now())


def evaluate_at(moment):
    with time_machine.travel(moment, tick=False):
        return evaluate_experiments(now=moment)


def test_a_far_better_variant_wins_and_later_sends_all_get_it(tenant_a, tenant_b, track, track_b, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=ab(), re_entry={"mode": "always"})
    make_config(tenant_b.workspace, settings={"host": "127.0.0.1", "port": 9})
    other = campaign(tenant_b.workspace, trigger={"type": "event", "name": "go"}, workflow=ab())
    enter(ws, track, [f"p{n}" for n in range(80)])
    enter(tenant_b.workspace, track_b, [f"q{n}" for n in range(6)])
    split = {v: Delivery.objects.for_workspace(ws).filter(variant=v).count() for v in ("A", "B")}
    assert min(split.values()) >= 20

    # Sent but nothing opened yet: no evidence, no winner; the test's state is kept.
    Delivery.objects.for_workspace(ws).update(sent_at=timezone.now())
    start = timezone.now()
    assert evaluate_at(start)["decided"] == 0
    decision = VariantDecision.objects.for_workspace(ws).get(campaign=made, step="mail")
    assert decision.winner == "" and decision.state["B"]["alpha"] == pytest.approx(0.05)

    mark(ws, opened={"A": 0.0, "B": 1.0})
    decided_at = start + timedelta(minutes=1)
    assert evaluate_at(decided_at)["decided"] == 1
    decision.refresh_from_db()
    assert decision.winner == "B" and decision.decided_at == decided_at
    figures = decision.figures
    assert figures["metric"] == "opened" and figures["control"] == "A"
    assert figures["variants"]["B"] == {"sent": split["B"], "opened": split["B"], "rate": 1.0}
    assert figures["variants"]["A"] == {"sent": split["A"], "opened": 0, "rate": 0.0}
    assert figures["tests"]["B"]["winner"] == "variant" and figures["tests"]["B"]["p_value"] <= 0.05
    # A decision is final: later looks leave it alone.
    evaluate_at(decided_at + timedelta(minutes=1))
    decision.refresh_from_db()
    assert decision.winner == "B" and decision.decided_at == decided_at

    # The other workspace's test saw none of these sends and decided nothing.
    theirs = VariantDecision.objects.for_workspace(tenant_b.workspace).get(campaign=other)
    assert theirs.winner == "" and theirs.state["B"]["looks"] == 0
    assert not VariantDecision.objects.for_workspace(tenant_b.workspace).filter(campaign=made).exists()

    # New runs, including people who drew A before, all get B's content; the log says why.
    before = set(Delivery.objects.for_workspace(ws).values_list("pk", flat=True))
    enter(ws, track, [f"p{n}" for n in range(20)] + [f"n{n}" for n in range(20)])
    later = Delivery.objects.for_workspace(ws).exclude(pk__in=before).select_related("profile")
    assert later.count() == 40 and {d.variant for d in later} == {"B"}
    from campaigns.journeys import engine

    assert all(engine.render_delivery(d).subject == f"Shiny {d.profile.external_id}" for d in later)
    details = JourneyStep.objects.for_workspace(ws).filter(delivery__in=later).values_list("detail", flat=True)
    assert all(detail["variant"] == "B" and detail["by"] == "winner" for detail in details)

    # The metrics API and the console page show the decision.
    client = app_client_with_scopes(tenant_a, "read")
    response = client.get(f"/v1/campaigns/{made.pk}/metrics")
    assert response.status_code == 200
    step = {row["id"]: row for row in response.json()["metrics"]["steps"]}["mail"]
    assert step["decision"]["winner"] == "B" and step["decision"]["figures"]["tests"]["B"]["winner"] == "variant"
    assert step["decision"]["decided_at"].startswith(decided_at.isoformat()[:19])
    assert app_client_with_scopes(tenant_b, "read").get(f"/v1/campaigns/{made.pk}/metrics").status_code == 404
    theirs_metrics = app_client_with_scopes(tenant_b, "read").get(f"/v1/campaigns/{other.pk}/metrics").json()
    assert {row["id"]: row for row in theirs_metrics["metrics"]["steps"]}["mail"]["decision"] is None

    from django.test import Client
    from django.urls import reverse

    console = Client()
    console.force_login(tenant_a.owner)
    page = console.get(reverse("admin:campaigns_campaign_change", args=[made.pk])).content.decode()
    assert 'class="variant-winner"' in page and "Winner: <code>B</code>" in page


def test_equal_variants_are_not_decided_however_often_looked_at(tenant_a, track, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=ab())
    enter(ws, track, [f"p{n}" for n in range(60)])
    mark(ws, opened={"A": 0.5, "B": 0.5})
    start = timezone.now()
    for minute in range(5):
        assert evaluate_at(start + timedelta(minutes=minute))["decided"] == 0
    decision = VariantDecision.objects.for_workspace(ws).get(campaign=made, step="mail")
    assert decision.winner == "" and decision.decided_at is None and decision.figures == {}
    assert decision.state["B"]["looks"] == 5 and decision.state["B"]["p_value"] > 0.05


def test_no_decision_before_each_variant_has_its_minimum(tenant_a, track, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=ab(min_per_variant=100))
    enter(ws, track, [f"p{n}" for n in range(40)])
    mark(ws, opened={"A": 0.0, "B": 1.0})
    assert evaluate_experiments()["decided"] == 0
    decision = VariantDecision.objects.for_workspace(ws).get(campaign=made, step="mail")
    assert decision.winner == "" and decision.state["B"]["looks"] == 0
    # Without `auto` nothing is looked at.
    manual = campaign(ws, name="Manual", trigger={"type": "event", "name": "other"}, workflow=ab(auto=False))
    evaluate_experiments()
    assert not VariantDecision.objects.for_workspace(ws).filter(campaign=manual).exists()


def test_winner_definitions_are_checked(tenant_a, email_config):
    step = ab()["steps"]["mail"]
    cases = {
        "workflow.steps.mail.winner.metric": {"metric": "replied"},
        "workflow.steps.mail.winner.confidence": {"metric": "opened", "confidence": 0.5},
        "workflow.steps.mail.winner.min_per_variant": {"metric": "clicked", "min_per_variant": 5},
        "workflow.steps.mail.winner.auto": {"metric": "converted", "auto": "yes"},
        "workflow.steps.mail.winner.after": {"metric": "opened", "after": 3},
        "workflow.steps.mail.winner": ["opened"],
    }
    for field, winner in cases.items():
        with pytest.raises(InvalidFields) as error:
            campaign(tenant_a.workspace, activate=False, name=field, trigger={"type": "event", "name": "go"},
                     workflow={"start": "mail", "steps": {"mail": {**step, "winner": winner}}})
        assert [e["field"] for e in error.value.errors()] == [field], field
    made = campaign(tenant_a.workspace, activate=False, trigger={"type": "event", "name": "go"},
                    workflow={"start": "mail", "steps": {"mail": {**step, "winner": {"metric": "clicked"}}}})
    assert made.workflow["steps"]["mail"]["winner"] == {"metric": "clicked", "confidence": 0.95,
                                                        "min_per_variant": 100, "auto": True}


def test_one_look_costs_the_same_queries_for_two_or_twelve_tests(tenant_a, tenant_b, track, email_config):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ws = tenant_a.workspace
    made = [campaign(ws, name=f"AB {n}", trigger={"type": "event", "name": f"go{n}"}, workflow=ab())
            for n in range(2)]
    enter(ws, track, [f"p{n}" for n in range(30)], name="go0")
    mark(ws, opened={"A": 0.2, "B": 0.3})

    def look() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert evaluate_experiments()["looked"] == len(made)
        return len(queries)

    few = look()
    made += [campaign(ws, name=f"AB {n}", trigger={"type": "event", "name": f"go{n}"}, workflow=ab())
             for n in range(2, 12)]
    assert look() == few
    assert VariantDecision.objects.for_workspace(ws).filter(campaign__in=made).count() == 12
    first = VariantDecision.objects.for_workspace(ws).get(campaign=made[0], step="mail")
    assert first.state["B"]["looks"] == 2  # about 15 sends per variant, over min_per_variant 10: both looks counted
