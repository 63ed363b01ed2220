"""The automatic winner of A/B tests on journey send steps (a send step's `winner`, docs/journeys.md
"A/B variants", docs/experiments.md).

Beat runs `journeys.evaluate_experiments` every minute. For each active or draining campaign with a
send step whose `winner.auto` is true and that has no winner yet, one aggregate query per campaign
gives every variant's messages sent and successes on the chosen metric (opened, clicked, converted);
then each challenger is compared with the control (the first variant) by an mSPRT
(`stats.SequentialTest`), valid however often it is looked at. With k challengers each comparison gets
alpha = (1 − confidence) / k (Bonferroni), so the chance of picking a winner among equal variants stays
≤ 1 − confidence. The tests' states are kept on the step's `VariantDecision` between ticks.

The winner is a challenger that beats the control (the one with the best rate if several do at the
same look), or the control once every challenger is found worse. From then on the engine sends the
winner's content to everybody not held out (engine.decided_winner); the decision keeps its figures
(each variant's counts and rate, each test's always-valid p-value) and its time.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from campaigns.experiments.stats import SequentialTest
from campaigns.journeys.selectors import _variant_counts
from campaigns.models import Campaign, CampaignState, JourneyStep, VariantDecision


def auto_steps(campaign: Campaign) -> dict[str, dict]:
    """The campaign's send steps with variants and an automatic winner: key → step."""
    steps = (campaign.workflow or {}).get("steps") or {}
    return {key: step for key, step in steps.items()
            if step.get("type") == "send" and step.get("variants") and (step.get("winner") or {}).get("auto")}


def evaluate_experiments(*, now=None) -> dict:
    """Look once at every running automatic A/B test (all workspaces); returns how many steps were
    looked at and how many were decided."""
    now = now or timezone.now()
    looked = decided = 0
    campaigns = Campaign.unscoped.filter(state__in=(CampaignState.ACTIVE, CampaignState.DRAINING)).only(
        "pk", "workspace_id", "workflow").order_by("pk")
    for campaign in campaigns:
        steps = auto_steps(campaign)
        if not steps:
            continue
        done = set(VariantDecision.objects.for_workspace(campaign.workspace_id).filter(
            campaign=campaign, step__in=list(steps)).exclude(winner="").values_list("step", flat=True))
        pending = {key: step for key, step in steps.items() if key not in done}
        if not pending:
            continue
        log = JourneyStep.objects.for_workspace(campaign.workspace_id).filter(campaign=campaign,
                                                                                step__in=list(pending))
        counts = _variant_counts(campaign, log)
        for key, step in pending.items():
            looked += 1
            decided += bool(_evaluate_step(campaign, key, step, counts.get(key, {}), now))
    return {"looked": looked, "decided": decided}


@transaction.atomic
def _evaluate_step(campaign: Campaign, key: str, step: dict, counts: dict[str, dict], now) -> str:
    """One look at one step's test (its decision row locked: overlapping ticks look in turn)."""
    rows = VariantDecision.objects.for_workspace(campaign.workspace_id)
    rows.get_or_create(campaign=campaign, step=key)
    decision = rows.select_for_update().get(campaign=campaign, step=key)
    if decision.winner:
        return ""
    winner_rule = step["winner"]
    metric = winner_rule["metric"]
    keys = [item["key"] for item in step["variants"]]
    control, challengers = keys[0], keys[1:]
    alpha = (1 - winner_rule["confidence"]) / len(challengers)
    minimum = winner_rule["min_per_variant"]

    def tally(variant: str) -> tuple[int, int]:
        row = counts.get(variant) or {}
        return row.get(metric, 0), row.get("sent", 0)

    tests: dict[str, SequentialTest] = {}
    for challenger in challengers:
        state = (decision.state or {}).get(challenger)
        # A test whose settings changed with an edit of the definition starts again.
        if state and state.get("alpha") == alpha and state.get("min_per_variant") == minimum:
            tests[challenger] = SequentialTest.from_state(state)
        else:
            tests[challenger] = SequentialTest(alpha=alpha, min_per_variant=minimum)
        tests[challenger].look(*tally(control), *tally(challenger))
    decision.state = {challenger: test.state() for challenger, test in tests.items()}

    def rate(variant: str) -> float:
        successes, sent = tally(variant)
        return successes / sent if sent else 0.0

    better = [challenger for challenger, test in tests.items() if test.winner == "variant"]
    winner = ""
    if better:
        winner = max(better, key=rate)
    elif all(test.winner == "control" for test in tests.values()):
        winner = control
    if winner:
        decision.winner, decision.decided_at = winner, now
        decision.figures = {
            "metric": metric, "confidence": winner_rule["confidence"], "alpha": alpha, "control": control,
            "variants": {variant: {"sent": tally(variant)[1], metric: tally(variant)[0], "rate": rate(variant)}
                         for variant in keys},
            "tests": {challenger: {"p_value": test.p_value, "looks": test.looks, "winner": test.winner,
                                   "difference": test.decided_difference}
                      for challenger, test in tests.items()},
        }
    decision.save()
    return winner
