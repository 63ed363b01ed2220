"""The automatic winner as the beat task wires it (campaigns/journeys/experiments.py `decide`: the
stored state round-tripped through JSON between looks, Bonferroni over the challengers, the pick
among several winners): with equal variants looked at every tick, the chance that any winner is
declared stays at or below 1 − confidence; with a real difference the better variant wins."""

import json
import math
import random

import pytest

from campaigns.journeys.experiments import decide

CONFIDENCE, PER_TICK, TICKS, EXPERIMENTS = 0.95, 40, 50, 300
ALPHA = 1 - CONFIDENCE
# Monte Carlo margin: a rate estimated from 300 experiments has standard error √(α(1−α)/300) ≈ 0.0126
# at α = 0.05; a procedure whose true family-wise rate were exactly α exceeds α + 2 SE ~2.5 % of the time.
FPR_BOUND = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)
RULE = {"metric": "opened", "confidence": CONFIDENCE, "min_per_variant": 100, "auto": True}


def run(rates: dict[str, float], seed: int) -> dict[str, int]:
    """EXPERIMENTS tests; each tick adds PER_TICK sends per variant (opened with the variant's true
    rate) and looks once, as the beat task does, keeping the state as the database keeps it (JSON).
    Returns how often each variant was declared the winner (and "" for never decided)."""
    rng = random.Random(seed)
    keys = list(rates)
    outcomes = dict.fromkeys([*keys, ""], 0)
    for _ in range(EXPERIMENTS):
        counts = {key: {"sent": 0, "opened": 0} for key in keys}
        state, winner = {}, ""
        for _ in range(TICKS):
            for key in keys:
                counts[key]["sent"] += PER_TICK
                counts[key]["opened"] += sum(rng.random() < rates[key] for _ in range(PER_TICK))
            state, winner, figures = decide(RULE, keys, counts, json.loads(json.dumps(state)))
            if winner:
                assert figures["variants"][winner]["sent"] == counts[winner]["sent"]
                break
        outcomes[winner] += 1
    return outcomes


@pytest.mark.parametrize("variants", [2, 3])
def test_equal_variants_checked_every_tick_stay_within_alpha(variants):
    outcomes = run({key: 0.2 for key in "ABC"[:variants]}, seed=variants)
    false_positives = EXPERIMENTS - outcomes[""]
    assert false_positives / EXPERIMENTS <= FPR_BOUND, outcomes


def test_a_better_challenger_is_found_and_a_worse_one_is_not_picked():
    outcomes = run({"A": 0.2, "B": 0.2, "C": 0.3}, seed=7)
    assert outcomes["C"] >= 0.8 * EXPERIMENTS, outcomes
    # Picking the equal challenger B is a false positive: rare.
    assert outcomes["B"] <= FPR_BOUND * EXPERIMENTS, outcomes


def test_a_changed_rule_starts_the_test_again():
    counts = {"A": {"sent": 500, "opened": 100}, "B": {"sent": 500, "opened": 101}}
    state, winner, _ = decide(RULE, ["A", "B"], counts, {})
    assert winner == "" and state["B"]["looks"] == 1
    state, _, _ = decide(RULE, ["A", "B"], counts, state)
    assert state["B"]["looks"] == 2
    state, _, _ = decide({**RULE, "confidence": 0.99}, ["A", "B"], counts, state)
    assert state["B"]["looks"] == 1 and state["B"]["alpha"] == pytest.approx(0.01)
