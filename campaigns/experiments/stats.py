"""Statistics for A/B tests on conversion-style metrics (opened, clicked, converted: a count of successes out of
a count of trials per variant). Standard library only: `statistics.NormalDist` gives the normal CDF and
quantiles, `random.Random(seed).betavariate` the Beta draws; nothing here approximates what those provide.

Three figures, each documented with its formula and source below and in docs/experiments.md:

* `two_proportion_z_test` — the classical fixed-sample comparison of a variant with the control: z, two-sided
  p-value, "chance to beat control" and a confidence interval of the difference. Valid when looked at once; it
  is what the metrics page shows, not what picks a winner.
* `probability_to_be_best` — Bayesian: with Beta(1 + successes, 1 + failures) posteriors, the probability that
  each variant has the highest true rate and the expected loss of choosing it (Monte Carlo, seeded).
* `msprt` / `SequentialTest` — the mixture sequential probability ratio test (always-valid p-values): the only
  one of the three that may be checked after every batch without inflating false positives; the automatic
  winner uses it.

Bad arguments (negative counts, more successes than trials, a confidence outside (0, 1)) raise ValueError: the
API and the definition validator check user input first, so reaching one here is a programming error.
Figures that the data cannot support (no trials yet, every trial the same outcome) come back as None with a
`reason` code instead of dividing by zero.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist

STANDARD_NORMAL = NormalDist()

# Reason codes for figures that are None (or, for mSPRT, a p-value of 1: no evidence yet).
NO_TRIALS = "no_trials"  # a group has no trials: no rate to compare
NO_VARIANCE = "no_variance"  # every trial in both groups had the same outcome (0 % or 100 % everywhere)
INTERVAL_UNDEFINED = "interval_undefined"  # each group is all-or-nothing: the unpooled standard error is 0


def _check_counts(successes: int, trials: int, name: str) -> None:
    if trials < 0 or successes < 0:
        raise ValueError(f"{name}: counts must not be negative (got {successes} of {trials})")
    if successes > trials:
        raise ValueError(f"{name}: more successes than trials ({successes} of {trials})")


def _check_probability(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value}")


# --- fixed-sample z-test ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZTestResult:
    """A variant against the control. `difference` is variant rate − control rate (absolute, not relative)."""

    control_rate: float | None
    variant_rate: float | None
    difference: float | None
    z: float | None
    p_value: float | None
    chance_to_beat_control: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def two_proportion_z_test(control_successes: int, control_trials: int, variant_successes: int, variant_trials: int,
                          confidence: float = 0.95) -> ZTestResult:
    """Two-proportion z-test of a variant against the control, and a confidence interval of the difference.

    With p₁ = x₁/n₁ (control), p₂ = x₂/n₂ (variant) and d = p₂ − p₁:

    * test statistic, **pooled** standard error (the standard error under H₀: p₁ = p₂, so both groups share
      p̄ = (x₁ + x₂)/(n₁ + n₂)):  z = d / √(p̄(1 − p̄)(1/n₁ + 1/n₂));
    * two-sided p-value: 2·Φ(−|z|);
    * chance to beat control: Φ(z), the one-sided probability Customer.io and Optimizely report (0.5 when the
      rates are equal, near 1 when the variant is clearly better);
    * confidence interval, **unpooled** (Wald) standard error, since the interval is not conditioned on H₀:
      d ± q·√(p₁(1 − p₁)/n₁ + p₂(1 − p₂)/n₂) with q = Φ⁻¹(1 − (1 − confidence)/2), clipped to [−1, 1].

    Φ and Φ⁻¹ are `statistics.NormalDist().cdf` / `.inv_cdf`. Sources: OpenIntro Statistics (4th ed., §6.2,
    "Difference of two proportions"); NIST/SEMATECH e-Handbook §7.3.3; the same figures as R's
    `prop.test(correct = FALSE)` (whose X-squared is z²) and statsmodels' `proportions_ztest`, against which the
    tests check worked examples.

    Degenerate data gives None figures and a `reason`: a group with no trials (`no_trials`: nothing at all but
    the rates that exist); both groups all 0 % or all 100 % (`no_variance`: difference 0, no z, no interval);
    each group all-or-nothing but different, e.g. 0/10 vs 10/10 (`interval_undefined`: z and p exist, the Wald
    interval would have zero width, so it is not given).
    """
    _check_counts(control_successes, control_trials, "control")
    _check_counts(variant_successes, variant_trials, "variant")
    _check_probability(confidence, "confidence")
    control_rate = control_successes / control_trials if control_trials else None
    variant_rate = variant_successes / variant_trials if variant_trials else None
    if control_rate is None or variant_rate is None:
        return ZTestResult(control_rate, variant_rate, None, None, None, None, None, None, confidence, NO_TRIALS)

    difference = variant_rate - control_rate
    pooled = (control_successes + variant_successes) / (control_trials + variant_trials)
    pooled_variance = pooled * (1 - pooled) * (1 / control_trials + 1 / variant_trials)
    if pooled_variance == 0:
        return ZTestResult(control_rate, variant_rate, difference, None, None, None, None, None, confidence,
                           NO_VARIANCE)
    z = difference / math.sqrt(pooled_variance)
    p_value = 2 * STANDARD_NORMAL.cdf(-abs(z))
    chance = STANDARD_NORMAL.cdf(z)

    unpooled_se = math.sqrt(control_rate * (1 - control_rate) / control_trials
                            + variant_rate * (1 - variant_rate) / variant_trials)
    if unpooled_se == 0:
        return ZTestResult(control_rate, variant_rate, difference, z, p_value, chance, None, None, confidence,
                           INTERVAL_UNDEFINED)
    margin = STANDARD_NORMAL.inv_cdf(1 - (1 - confidence) / 2) * unpooled_se
    return ZTestResult(control_rate, variant_rate, difference, z, p_value, chance,
                       max(-1.0, difference - margin), min(1.0, difference + margin), confidence)


# --- Bayesian probability to be best --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BestResult:
    """One variant's Bayesian figures: P(its true rate is the highest) and E[max rate − its rate]."""

    probability_to_be_best: float
    expected_loss: float


def probability_to_be_best(variants: Mapping[Hashable, tuple[int, int]], draws: int = 20000,
                           seed: int | str = 0) -> dict[Hashable, BestResult]:
    """Probability to be best and expected loss per variant, from Beta posteriors sampled by Monte Carlo.

    Each variant's true rate θᵢ gets a uniform Beta(1, 1) prior, so after sᵢ successes and fᵢ = nᵢ − sᵢ
    failures its posterior is Beta(1 + sᵢ, 1 + fᵢ) (conjugacy of Beta and binomial). Per draw one θᵢ is sampled
    for every variant with `random.Random(seed).betavariate`; then

    * probability to be best:  P(θᵢ = maxⱼ θⱼ) ≈ share of draws where variant i is the highest;
    * expected loss:            E[maxⱼ θⱼ − θᵢ] ≈ mean over draws (in rate units: what choosing i costs, on
      average, against the best; stopping when the leader's loss is below a threshold is the "expected loss"
      rule of Chris Stucchio, "Bayesian A/B Testing at VWO", 2015).

    Sources: Gelman et al., Bayesian Data Analysis (3rd ed.) §2.4 (Beta–binomial); Evan Miller, "Formulas for
    Bayesian A/B Testing" (2014), whose closed form for two variants the tests use to check this estimate.

    Monte Carlo error: each probability is a mean of `draws` Bernoulli indicators, so its standard error is
    √(p(1 − p)/draws) ≤ 0.5/√draws; the estimate is within 1/√draws (two standard errors, ≈ 0.007 at the
    default 20,000 draws) of the exact value about 95 % of the time. The same seed gives the same figures (the
    variants are drawn in the mapping's order), so a page shows stable numbers between reloads.
    """
    if len(variants) < 2:
        raise ValueError("probability_to_be_best needs at least two variants")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    keys = list(variants)
    params = []
    for key in keys:
        successes, trials = variants[key]
        _check_counts(successes, trials, str(key))
        params.append((1 + successes, 1 + trials - successes))

    rng = random.Random(seed)
    wins = [0] * len(keys)
    losses = [0.0] * len(keys)
    for _ in range(draws):
        sample = [rng.betavariate(a, b) for a, b in params]
        best = max(sample)
        wins[sample.index(best)] += 1
        for i, value in enumerate(sample):
            losses[i] += best - value
    return {key: BestResult(wins[i] / draws, losses[i] / draws) for i, key in enumerate(keys)}


# --- always-valid sequential test (mSPRT) ---------------------------------------------------------------------------

DEFAULT_TAU = 0.05


@dataclass(frozen=True)
class MsprtResult:
    """One look of the mixture SPRT. `p_value` is min(1, 1/Λ) for this look alone; the always-valid p-value is the
    running minimum over looks (`SequentialTest` keeps it)."""

    difference: float | None
    variance: float | None
    likelihood_ratio: float | None
    p_value: float
    rejects: bool
    reason: str | None = None


def msprt(control_successes: int, control_trials: int, variant_successes: int, variant_trials: int,
          tau: float = DEFAULT_TAU, alpha: float = 0.05) -> MsprtResult:
    """Mixture sequential probability ratio test for the difference of two proportions (normal approximation).

    Johari, Koomen, Pekelis & Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
    Research 70(3), 2022; arXiv:1512.04922), the method behind Optimizely's Stats Engine (Pekelis, Walsh &
    Johari, "The New Stats Engine", 2015). With d = p₂ − p₁ (variant − control), V its estimated variance and a
    normal mixing distribution θ ~ N(0, τ²) over the true difference, the mixture likelihood ratio against
    H₀: θ = 0 is

        Λ = ∫ exp(θ·d/V − θ²/(2V)) dN(0, τ²)(θ) = √(V / (V + τ²)) · exp(τ²·d² / (2V(V + τ²)))

    Under H₀, Λ over successive looks is a non-negative martingale with mean 1, so by Ville's inequality
    P(Λ ever ≥ 1/α) ≤ α: the running minimum of min(1, 1/Λ) is a p-value that stays valid however often it is
    looked at, and stopping the first time it is ≤ α keeps the false-positive rate ≤ α.

    V is the pooled estimate p̄(1 − p̄)(1/n₁ + 1/n₂), the variance of d under H₀ — the hypothesis whose error rate
    is controlled; unlike the unpooled one it does not collapse when one arm happens to have no successes yet.
    Plugging in an estimate is the normal approximation the paper and Stats Engine use; it is accurate once each
    arm has a reasonable sample, hence `SequentialTest`'s minimum per variant.

    τ is the spread of the differences one expects (absolute rate units, default 0.05 = 5 points): any τ keeps the
    guarantee, it only moves where the test is most sensitive (effects near τ are found soonest).

    No trials in a group or no variance (all 0 % / all 100 % in both) means no evidence: p-value 1 and a reason.
    """
    _check_counts(control_successes, control_trials, "control")
    _check_counts(variant_successes, variant_trials, "variant")
    _check_probability(alpha, "alpha")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if not control_trials or not variant_trials:
        return MsprtResult(None, None, None, 1.0, False, NO_TRIALS)
    difference = variant_successes / variant_trials - control_successes / control_trials
    pooled = (control_successes + variant_successes) / (control_trials + variant_trials)
    variance = pooled * (1 - pooled) * (1 / control_trials + 1 / variant_trials)
    if variance == 0:
        return MsprtResult(difference, 0.0, None, 1.0, False, NO_VARIANCE)
    tau2 = tau * tau
    log_ratio = (0.5 * math.log(variance / (variance + tau2))
                 + tau2 * difference ** 2 / (2 * variance * (variance + tau2)))
    # In logs: Λ can overflow a float long after the decision is obvious; p = min(1, e^(−log Λ)).
    likelihood_ratio = math.exp(log_ratio) if log_ratio < 700 else math.inf
    p_value = min(1.0, math.exp(-log_ratio)) if log_ratio > -700 else 1.0
    return MsprtResult(difference, variance, likelihood_ratio, p_value, p_value <= alpha)


@dataclass(frozen=True)
class SequentialDecision:
    """The state after a look: the always-valid p-value so far, and the winner once decided."""

    looks: int
    p_value: float
    decided: bool
    winner: str | None  # "control" | "variant" | None
    difference: float | None  # variant − control at this look (at the deciding look once decided)


class SequentialTest:
    """An mSPRT comparison of one variant with the control across repeated looks (e.g. every beat tick).

    Feed it the cumulative counts at each look with `look(...)`. Looks before both arms have `min_per_variant`
    trials are not counted (the normal approximation needs a sample). From then on it keeps the running minimum of
    the mSPRT p-value — the always-valid p-value — and decides the first time it is ≤ alpha: the winner is the arm
    with the higher observed rate at that look. A decision is final; later looks do not change it.

    With several variants against one control, give each pair alpha / (number of variants) (Bonferroni) to keep the
    family-wise false-positive rate ≤ alpha. `state()` / `from_state()` let a caller store the test between ticks.
    """

    def __init__(self, *, alpha: float = 0.05, tau: float = DEFAULT_TAU, min_per_variant: int = 100) -> None:
        _check_probability(alpha, "alpha")
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if min_per_variant < 1:
            raise ValueError(f"min_per_variant must be at least 1, got {min_per_variant}")
        self.alpha = alpha
        self.tau = tau
        self.min_per_variant = min_per_variant
        self.looks = 0
        self.p_value = 1.0
        self.winner: str | None = None
        self.decided_difference: float | None = None

    @property
    def decided(self) -> bool:
        return self.winner is not None

    def look(self, control_successes: int, control_trials: int, variant_successes: int,
             variant_trials: int) -> SequentialDecision:
        """Take one look at cumulative counts and return the decision so far."""
        if self.decided:
            return self._decision(self.decided_difference)
        if min(control_trials, variant_trials) < self.min_per_variant:
            _check_counts(control_successes, control_trials, "control")
            _check_counts(variant_successes, variant_trials, "variant")
            return self._decision(None)
        result = msprt(control_successes, control_trials, variant_successes, variant_trials, tau=self.tau,
                       alpha=self.alpha)
        self.looks += 1
        self.p_value = min(self.p_value, result.p_value)
        if self.p_value <= self.alpha:
            self.winner = "variant" if result.difference > 0 else "control"
            self.decided_difference = result.difference
        return self._decision(result.difference)

    def _decision(self, difference: float | None) -> SequentialDecision:
        return SequentialDecision(self.looks, self.p_value, self.decided, self.winner, difference)

    def state(self) -> dict:
        """A JSON-ready snapshot, to keep the test between looks (e.g. on the experiment row)."""
        return {"alpha": self.alpha, "tau": self.tau, "min_per_variant": self.min_per_variant, "looks": self.looks,
                "p_value": self.p_value, "winner": self.winner, "decided_difference": self.decided_difference}

    @classmethod
    def from_state(cls, state: Mapping) -> SequentialTest:
        test = cls(alpha=state["alpha"], tau=state["tau"], min_per_variant=state["min_per_variant"])
        test.looks = state["looks"]
        test.p_value = state["p_value"]
        test.winner = state["winner"]
        test.decided_difference = state["decided_difference"]
        return test
