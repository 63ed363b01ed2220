"""Per campaign: the global holdout's lift (goal conversion of held-out runs against messaged runs,
with the difference's interval) and Customer.io's journey metrics (runs by the period they started:
triggered, started, messaged, never messaged, converted, exited early)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.journeys import rules, selectors
from campaigns.models import Journey
from tests.campaigns.journeys.conftest import T0, campaign, event, feed, identify, person, runs_of, tick
from tests.helpers import app_client_with_scopes

pytestmark = pytest.mark.django_db(transaction=True)

MAIL = {"subject": "Hi", "body": "Hello"}
GOAL = {"event": {"name": "purchase"}, "within": {"days": 3}}


def flow():
    return {"start": "hello", "steps": {
        "hello": {"type": "send", "channel": "email", "content": MAIL, "next": "pause"},
        "pause": {"type": "delay", "duration": {"days": 5}}}}


def test_holdout_lift_compares_goal_conversion_of_held_out_and_messaged_runs(tenant_a, tenant_b, track, clock,
                                                                            email_config):
    ws = tenant_a.workspace
    held_rules = rules.save_rules(workspace=ws, body={"holdout_percent": 50})
    made = campaign(ws, trigger={"type": "event", "name": "go"}, goal=GOAL, workflow=flow())
    names = [f"p{i}" for i in range(30)]
    for name in names:
        identify(track, name, email=f"{name}@example.test")
        event(track, name, "go")
    feed(ws)
    tick()
    held = [n for n in names if rules.in_holdout(held_rules, ws.pk, person(ws, n).cio_id)]
    messaged = [n for n in names if n not in held]
    assert held and messaged
    # Every messaged person buys; one held-out person does.
    for name in [*messaged, held[0]]:
        event(track, name, "purchase")
    feed(ws)

    lift = selectors.holdout_lift(made)
    assert lift["held_out"] == {"runs": len(held), "converted": 1, "rate": 1 / len(held)}
    assert lift["messaged"] == {"runs": len(messaged), "converted": len(messaged), "rate": 1.0}
    assert lift["lift"] == pytest.approx(1 - 1 / len(held))
    assert lift["relative_lift"] == pytest.approx((1 - 1 / len(held)) / (1 / len(held)))
    low, high = lift["test"]["ci_low"], lift["test"]["ci_high"]
    assert 0 < low < lift["lift"] < high and lift["test"]["p_value"] < 0.001
    answer = tenant_a.app_client().get(f"/v1/campaigns/{made.pk}/metrics")
    assert answer.status_code == 200
    assert answer.json()["metrics"]["holdout_lift"]["held_out"]["runs"] == len(held)

    # The console's campaign page shows the lift and the journey metrics; not to another workspace.
    console = Client()
    console.force_login(tenant_a.owner)
    url = reverse("admin:campaigns_campaign_change", args=[made.pk])
    page = console.get(url).content.decode()
    assert 'id="campaign-holdout-lift"' in page and f"<td>Held out (no message)</td><td>{len(held)}</td>" in page
    assert page.count('class="journey-metric-row"') == 14
    console.force_login(tenant_b.owner)
    assert console.get(url).status_code == 404


def test_holdout_lift_without_a_holdout_has_no_figures(tenant_a, track, clock, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, workflow=flow())
    identify(track, "ada", email="ada@example.test")
    event(track, "ada", "go")
    feed(ws)
    tick()
    lift = selectors.holdout_lift(made)
    assert lift["goal"] is False and lift["held_out"] == {"runs": 0, "converted": 0, "rate": None}
    assert lift["messaged"]["runs"] == 1 and lift["lift"] is None and lift["test"]["p_value"] is None


def test_journey_metrics_count_runs_by_the_period_they_started(tenant_a, tenant_b, track, clock, email_config):
    ws = tenant_a.workspace
    made = campaign(ws, trigger={"type": "event", "name": "go"}, goal=GOAL,
                    exit={"events": ["quit"]}, re_entry={"mode": "always"},
                    workflow={"start": "check", "steps": {
                        "check": {"type": "branch", "condition": {"attribute": {"field": "vip", "operator": "eq",
                                                                                 "value": True}},
                                  "yes": "hello", "no": None},
                        "hello": {"type": "send", "channel": "email", "content": MAIL, "next": "pause"},
                        "pause": {"type": "delay", "duration": {"days": 5}}}})
    identify(track, "ada", email="ada@example.test", vip=True)
    identify(track, "bob", email="bob@example.test", vip=False)
    event(track, "ada", "go")
    event(track, "bob", "go")
    feed(ws)
    tick()  # day 0: ada messaged and waiting, bob ended without a message
    clock.shift(timedelta(days=2))
    identify(track, "cem", email="cem@example.test", vip=True)
    event(track, "cem", "go")
    feed(ws)
    tick()
    event(track, "cem", "purchase")
    event(track, "ada", "quit")
    feed(ws)
    assert [run.state for run in runs_of(made)] == ["exited", "completed", "waiting"]

    api = tenant_a.app_client()
    start, end = int(T0.timestamp()), int((T0 + timedelta(days=3)).timestamp())
    answer = api.get(f"/v1/campaigns/{made.pk}/journey_metrics", {"start": start, "end": end, "resolution": "daily"})
    assert answer.status_code == 200, answer.content
    metrics = answer.json()["journey_metrics"]
    assert metrics["periods"] == [start + day * 86400 - 10 * 3600 for day in range(4)]  # days start at midnight
    assert metrics["started"] == metrics["triggered"] == [2, 0, 1, 0]
    assert metrics["messaged"] == [1, 0, 1, 0]
    assert metrics["never_messaged"] == [1, 0, 0, 0]
    assert metrics["converted"] == [0, 0, 1, 0]
    assert metrics["exited_early"] == [1, 0, 0, 0]
    hourly = api.get(f"/v1/campaigns/{made.pk}/journey_metrics",
                     {"start": start, "end": start + 3600, "resolution": "hourly"}).json()["journey_metrics"]
    assert hourly["started"] == [2, 0]
    monthly = api.get(f"/v1/campaigns/{made.pk}/journey_metrics",
                      {"start": start, "end": end, "resolution": "monthly"}).json()["journey_metrics"]
    assert monthly["started"] == [3] and monthly["converted"] == [1]
    assert Journey.objects.for_workspace(ws).filter(campaign=made).count() == 3

    # Another workspace's campaign is a 404; a key without `read` is refused.
    other = tenant_b.app_client().get(f"/v1/campaigns/{made.pk}/journey_metrics",
                                      {"start": start, "end": end, "resolution": "daily"})
    assert other.status_code == 404
    no_read = app_client_with_scopes(tenant_a, "write")
    assert no_read.get(f"/v1/campaigns/{made.pk}/journey_metrics",
                       {"start": start, "end": end, "resolution": "daily"}).status_code == 403


@pytest.mark.parametrize(("query", "field"), [
    ({"end": 2, "resolution": "daily"}, "start"),
    ({"start": 1, "resolution": "daily"}, "end"),
    ({"start": 1, "end": 2}, "resolution"),
    ({"start": 1, "end": 2, "resolution": "yearly"}, "resolution"),
    ({"start": "soon", "end": 2, "resolution": "daily"}, "start"),
    ({"start": 5, "end": 2, "resolution": "daily"}, "end"),
    ({"start": 1, "end": 200_000_000, "resolution": "hourly"}, "end"),
])
def test_journey_metrics_need_start_end_and_resolution(tenant_a, email_config, query, field):
    made = campaign(tenant_a.workspace, trigger={"type": "event", "name": "go"}, workflow=flow())
    answer = tenant_a.app_client().get(f"/v1/campaigns/{made.pk}/journey_metrics", query)
    assert answer.status_code == 400
    assert field in str(answer.json())
