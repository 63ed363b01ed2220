"""The automatic winner of A/B tests on journey send steps (a send step's `winner`, docs/journeys.md
"A/B variants", docs/experiments.md).

Beat runs `journeys.evaluate_experiments` every minute. It finds every send step of an active or
draining campaign whose `winner.auto` is true and that has no winner yet, and looks at them a
workspace at a time with a fixed handful of statements whatever the number of tests: one INSERT of
the missing decision rows, one SELECT … FOR UPDATE of the rows (overlapping ticks look in turn), one
aggregate of every variant's messages sent and successes on each metric (opened, clicked, converted)
over the step log joined to the deliveries, and one UPDATE of the rows that changed. Each
challenger is compared with the control (the first variant) by an mSPRT (`stats.SequentialTest`),
valid however often it is looked at; `decide` is that comparison, free of the database, and is what
the false-positive simulation in tests/campaigns/test_experiment_wiring.py drives. With k challengers each comparison gets
alpha = (1 − confidence) / k (Bonferroni), so the chance of picking a winner among equal variants stays
≤ 1 − confidence. The tests' states are kept on the step's `VariantDecision` between ticks.

The winner is a challenger that beats the control (the one with the best rate if several do at the
same look), or the control once every challenger is found worse. From then on the engine sends the
winner's content to everybody not held out (engine.decided_winner); the decision keeps its figures
(each variant's counts and rate, each test's always-valid p-value) and its time.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from campaigns.experiments.stats import SequentialTest
from campaigns.models import Campaign, CampaignState, JourneyStep, VariantDecision
from core.bulk import update_rows

METRICS = ("opened", "clicked", "converted")


def auto_steps(campaign: Campaign) -> dict[str, dict]:
    """The campaign's send steps with variants and an automatic winner: key → step. A broadcast's
    step tested on a `sample` is not one: each trigger decides its own (broadcast_ab.py)."""
    steps = (campaign.workflow or {}).get("steps") or {}
    return {key: step for key, step in steps.items()
            if step.get("type") == "send" and step.get("variants") and (step.get("winner") or {}).get("auto")
            and not step.get("sample")}


def decide(rule: dict, keys: list[str], counts: dict[str, dict], state: dict) -> tuple[dict, str, dict]:
    """One look at one step's test. `rule` is the step's `winner`, `keys` its variants (control
    first), `counts` each variant's {"sent", <metric>} so far, `state` the tests' stored states.
    Returns the new state, the winner ("" while undecided) and, once decided, the figures."""
    metric = rule["metric"]
    control, challengers = keys[0], keys[1:]
    alpha = (1 - rule["confidence"]) / len(challengers)
    minimum = rule["min_per_variant"]

    def tally(variant: str) -> tuple[int, int]:
        row = counts.get(variant) or {}
        return row.get(metric, 0), row.get("sent", 0)

    def rate(variant: str) -> float:
        successes, sent = tally(variant)
        return successes / sent if sent else 0.0

    tests: dict[str, SequentialTest] = {}
    for challenger in challengers:
        kept = (state or {}).get(challenger)
        # A test whose settings changed with an edit of the definition starts again.
        if kept and kept.get("alpha") == alpha and kept.get("min_per_variant") == minimum:
            tests[challenger] = SequentialTest.from_state(kept)
        else:
            tests[challenger] = SequentialTest(alpha=alpha, min_per_variant=minimum)
        tests[challenger].look(*tally(control), *tally(challenger))
    new_state = {challenger: test.state() for challenger, test in tests.items()}
    better = [challenger for challenger, test in tests.items() if test.winner == "variant"]
    winner = ""
    if better:
        winner = max(better, key=rate)
    elif all(test.winner == "control" for test in tests.values()):
        winner = control
    if not winner:
        return new_state, "", {}
    figures = {
        "metric": metric, "confidence": rule["confidence"], "alpha": alpha, "control": control,
        "variants": {variant: {"sent": tally(variant)[1], metric: tally(variant)[0], "rate": rate(variant)}
                     for variant in keys},
        "tests": {challenger: {"p_value": test.p_value, "looks": test.looks, "winner": test.winner,
                               "difference": test.decided_difference}
                  for challenger, test in tests.items()},
    }
    return new_state, winner, figures


def evaluate_experiments(*, now=None) -> dict:
    """Look once at every running automatic A/B test (all workspaces); returns how many steps were
    looked at and how many were decided."""
    now = now or timezone.now()
    by_workspace: dict[int, dict[tuple[int, str], dict]] = defaultdict(dict)
    campaigns = Campaign.unscoped.filter(state__in=(CampaignState.ACTIVE, CampaignState.DRAINING)).only(
        "pk", "workspace_id", "workflow").order_by("pk")
    for campaign in campaigns:
        for key, step in auto_steps(campaign).items():
            by_workspace[campaign.workspace_id][(campaign.pk, key)] = step
    looked = decided = 0
    for workspace_id, steps in by_workspace.items():
        seen, won = _evaluate_workspace(workspace_id, steps, now)
        looked, decided = looked + seen, decided + won
    return {"looked": looked, "decided": decided}


@transaction.atomic
def _evaluate_workspace(workspace_id: int, steps: dict[tuple[int, str], dict], now) -> tuple[int, int]:
    """One look at each of a workspace's running tests: (looked at, decided)."""
    rows = VariantDecision.objects.for_workspace(workspace_id)
    campaign_ids = sorted({campaign_id for campaign_id, _ in steps})
    keys = sorted({key for _, key in steps})
    locked = rows.filter(campaign_id__in=campaign_ids, step__in=keys, trigger__isnull=True).order_by("pk")
    found = {(row.campaign_id, row.step): row for row in locked.select_for_update()}
    missing = [pair for pair in steps if pair not in found]
    if missing:  # a test's first look (a concurrent first look may have made the row: then it is locked here)
        rows.bulk_create([VariantDecision(workspace_id=workspace_id, campaign_id=campaign_id, step=key)
                          for campaign_id, key in missing], ignore_conflicts=True)
        found.update({(row.campaign_id, row.step): row for row in locked.filter(
            campaign_id__in={campaign_id for campaign_id, _ in missing}).select_for_update()})
    decisions = {pair: row for pair, row in found.items() if pair in steps and not row.winner}
    if not decisions:
        return 0, 0
    counts = variant_tallies(workspace_id, campaign_ids, keys)
    changed = []
    won = 0
    for pair, decision in decisions.items():
        step = steps[pair]
        state, winner, figures = decide(step["winner"], [item["key"] for item in step["variants"]],
                                        counts.get(pair, {}), decision.state)
        decision.state, decision.updated_at = state, now
        if winner:
            decision.winner, decision.decided_at, decision.figures = winner, now, figures
            won += 1
        changed.append(decision)
    _save_decisions(workspace_id, changed)
    return len(decisions), won


def _save_decisions(workspace_id: int, decisions: list[VariantDecision]) -> None:
    """The looks' new states (and winners) in one UPDATE … FROM unnest(…) (core.bulk): Django's
    bulk_update builds a CASE per field and row, which cost more than the whole look over 1,000 tests."""
    update_rows(VariantDecision, decisions, ("state", "winner", "decided_at", "figures", "updated_at"),
                workspace_id=workspace_id)


def variant_tallies(workspace_id: int, campaign_ids: list[int], keys: list[str]) -> dict[tuple[int, str], dict]:
    """Every variant's messages sent and successes on each metric, for the send steps `keys` of the
    campaigns (one aggregate over the step log's `sent` rows joined to their deliveries):
    (campaign, step) → variant → {"sent", "opened", "clicked", "converted"}."""
    log = (JourneyStep.objects.for_workspace(workspace_id)
           .filter(campaign_id__in=campaign_ids, step__in=keys, outcome="sent", delivery__isnull=False)
           .annotate(variant=KeyTextTransform("variant", "detail")).filter(variant__isnull=False))
    out: dict[tuple[int, str], dict] = defaultdict(dict)
    for row in log.values("campaign_id", "step", "variant").annotate(
            sent=Count("pk", filter=Q(delivery__sent_at__isnull=False)),
            **{metric: Count("pk", filter=Q(**{f"delivery__{metric}_at__isnull": False})) for metric in METRICS},
    ).order_by():
        out[(row.pop("campaign_id"), row.pop("step"))][row.pop("variant")] = row
    return out
