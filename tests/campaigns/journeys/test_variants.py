"""A/B variants of a send step: a stable draw per person and step, the variant's content over the
step's, a holdout that gets nothing, and metrics per variant."""

from collections import Counter

import pytest

from campaigns.journeys import engine
from campaigns.journeys.selectors import campaign_metrics
from campaigns.models import Journey, JourneyStep
from channels.models import Delivery
from core.errors import InvalidFields
from tests.campaigns.journeys.conftest import campaign, event, feed, identify, tick

pytestmark = pytest.mark.django_db(transaction=True)

AB = {"start": "mail", "steps": {"mail": {
    "type": "send", "channel": "email", "content": {"subject": "Plain", "body": "Hello {{ customer.id }}"},
    "variants": [{"key": "A", "weight": 1, "content": {}},
                 {"key": "B", "weight": 1, "content": {"subject": "Shiny {{ customer.id }}"}}],
    "holdout": {"weight": 1}}}}


def test_people_split_over_variants_and_holdout_stably_with_the_variant_content(tenant_a, track, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=AB, re_entry={"mode": "always"})
    people = [f"p{n}" for n in range(60)]
    for pid in people:
        identify(track, pid, email=f"{pid}@example.test")
        event(track, pid, "go")
    feed(ws)
    tick()
    deliveries = {d.profile.external_id: d for d in Delivery.objects.for_workspace(ws).select_related("profile")}
    held = set(JourneyStep.objects.for_workspace(ws).filter(outcome="holdout").values_list(
        "journey__profile__external_id", flat=True))
    assert set(deliveries) | held == set(people) and not set(deliveries) & held
    split = Counter(d.variant for d in deliveries.values())
    assert set(split) == {"A", "B"} and 10 <= len(held) <= 30 and min(split.values()) >= 10
    for pid, delivery in deliveries.items():
        rendered = engine.render_delivery(delivery)
        assert rendered.subject == ("Plain" if delivery.variant == "A" else f"Shiny {pid}")
    assert all(run.state == "completed" for run in Journey.objects.for_workspace(ws).filter(campaign=made))

    # A second entry draws the same variant for each person.
    for pid in people:
        event(track, pid, "go")
    feed(ws)
    tick()
    again = Counter()
    for delivery in Delivery.objects.for_workspace(ws).select_related("profile"):
        again[(delivery.profile.external_id, delivery.variant)] += 1
    assert all(count == 2 for count in again.values())
    assert {pid for pid, _ in again} == set(deliveries)

    metrics = {row["id"]: row for row in campaign_metrics(made)["steps"]}["mail"]
    assert metrics["variants"]["A"]["deliveries"] == 2 * split["A"]
    assert metrics["variants"]["B"]["deliveries"] == 2 * split["B"]
    assert metrics["variants"]["holdout"] == {"runs": 2 * len(held), "converted": 0}
    assert metrics["outcomes"] == {"sent": 2 * len(deliveries), "holdout": 2 * len(held)}
    # Nothing was sent through a provider yet (no worker ran): no figures, and the reason says why.
    against = metrics["variants"]["B"]["test"]["opened"]["against_control"]
    assert against["z"] is None and against["reason"] == "no_trials"
    assert "against_control" not in metrics["variants"]["A"]["test"]["opened"]
    assert set(metrics["variants"]["A"]["test"]) == {"opened", "clicked", "converted"}

    # Sent, and B's subject opened far more often: the figures favour B.
    from django.utils import timezone

    sent = Delivery.objects.for_workspace(ws)
    sent.update(sent_at=timezone.now())
    sent.filter(variant="B").update(opened_at=timezone.now())
    sent.filter(variant="A", pk__in=list(sent.filter(variant="A").values_list("pk", flat=True)[:2])).update(
        opened_at=timezone.now())
    variants = {row["id"]: row for row in campaign_metrics(made)["steps"]}["mail"]["variants"]
    b = variants["B"]["test"]["opened"]
    assert b["against_control"]["difference"] > 0.5 and b["against_control"]["p_value"] < 0.001
    assert b["probability_to_be_best"] > 0.99 > variants["A"]["test"]["opened"]["probability_to_be_best"]


def test_variant_definitions_are_checked(tenant_a, email_config):
    step = AB["steps"]["mail"]
    cases = {
        "workflow.steps.mail.variants": {**step, "variants": step["variants"][:1]},
        "workflow.steps.mail.variants.1.key": {**step, "variants": [step["variants"][0], {"key": "A"}]},
        "workflow.steps.mail.variants.0.weight": {**step, "variants": [{"key": "A", "weight": 0}, {"key": "B"}]},
        "workflow.steps.mail.variants.1.content.subject": {**step, "variants": [
            {"key": "A"}, {"key": "B", "content": {"subject": "{% if %}"}}]},
        "workflow.steps.mail.holdout.weight": {**step, "holdout": {"weight": -1}},
    }
    for field, bad in cases.items():
        with pytest.raises(InvalidFields) as error:
            campaign(tenant_a.workspace, activate=False, name=field, trigger={"type": "event", "name": "go"},
                     workflow={"start": "mail", "steps": {"mail": bad}})
        assert [e["field"] for e in error.value.errors()] == [field], field


def test_the_campaign_page_shows_each_variant_with_its_rates_and_figures(client, tenant_a, track, email_config):
    from django.urls import reverse
    from django.utils import timezone

    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=AB)
    for pid in ("p1", "p2", "p3", "p4", "p5", "p6"):
        identify(track, pid, email=f"{pid}@example.test")
        event(track, pid, "go")
    feed(ws)
    tick()
    Delivery.objects.for_workspace(ws).update(sent_at=timezone.now())
    client.force_login(tenant_a.owner)
    page = client.get(reverse("admin:campaigns_campaign_change", args=[made.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="variants-mail"' in html and html.count('class="variant-row"') == 3  # A, B, holdout
    assert "<code>holdout</code>" in html and "control" in html
