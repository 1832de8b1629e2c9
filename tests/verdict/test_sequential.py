"""Sequential looks: boundaries against published values and scipy, and per-look decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gate.errors import InputError
from gate.result import Decision
from gate.spec.models import MetricTolerance
from gate.verdict.sequential import (
    LookSchedule,
    critical_values,
    decide_look,
    item_order,
    run_sequential,
    spent_alpha,
)
from gate.verdict.stats import PairedScores

ACC_2 = MetricTolerance(task="qa", metric="acc", max_drop=2.0)
QUARTERS = (0.25, 0.5, 0.75, 1.0)


def test_obrien_fleming_matches_published_boundaries() -> None:
    # Lan-DeMets O'Brien-Fleming spending, 4 equally spaced looks, one-sided alpha 0.025
    # (e.g. gsDesign sfLDOF / EAST): 4.3326, 2.9631, 2.3590, 2.0141.
    got = critical_values(QUARTERS, 0.025, "obrien-fleming")
    assert got == pytest.approx((4.3326, 2.9631, 2.3590, 2.0141), abs=2e-4)


@pytest.mark.parametrize("spending", ["hwang-shih-decani", "obrien-fleming", "pocock"])
def test_boundaries_spend_exactly_the_planned_alpha(spending: str) -> None:
    # P(cross by look k) = alpha(t_k), computed independently with scipy's multivariate normal.
    fractions = (0.2, 0.45, 0.7, 1.0)
    alpha = 0.05
    c = critical_values(fractions, alpha, spending)
    for k in range(1, len(fractions) + 1):
        t = np.array(fractions[:k])
        cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
        stay = stats.multivariate_normal.cdf(np.array(c[:k]), mean=np.zeros(k), cov=cov, abseps=1e-6, releps=1e-6)
        assert 1 - stay == pytest.approx(spent_alpha(fractions[k - 1], alpha, spending), abs=2e-4)


def test_single_look_is_the_fixed_sample_test() -> None:
    plan = LookSchedule.for_items(500, looks=1, confidence=0.95)
    assert plan.look_sizes == [500]
    assert plan.confidence_at(0) == pytest.approx(0.95)


def test_default_plan() -> None:
    plan = LookSchedule.for_items(1000)
    assert plan.look_sizes == [250, 500, 750, 1000]
    assert plan.spending == "hwang-shih-decani"
    assert plan.nominal == sorted(plan.nominal, reverse=True)
    assert 0.95 < plan.confidence_at(3) < 0.965


def test_interim_looks_decide_at_half_their_planned_error() -> None:
    # Hwang-Shih-DeCani (gamma -2), one-sided 0.05, looks at quarters. Look 1 by hand:
    # alpha(0.25) = 0.05 (1 - e^0.5) / (1 - e^2) = 0.0050768, decided at 1 - 0.5 * 0.0050768.
    spent = 0.05 * (1 - math.exp(0.5)) / (1 - math.exp(2.0))
    assert spent == pytest.approx(0.0050768, abs=1e-7)
    c = critical_values(QUARTERS, 0.05, "hwang-shih-decani")
    plan = LookSchedule.for_items(1000)
    assert plan.interim_share == 0.5
    assert plan.nominal[0] == pytest.approx(1 - 0.5 * spent, abs=1e-9)
    assert plan.nominal == pytest.approx([1 - 0.5 * stats.norm.sf(x) for x in c[:3]] + [stats.norm.cdf(c[3])], abs=1e-12)
    assert plan.nominal == pytest.approx([0.99746, 0.99493, 0.98996, 0.96149], abs=5e-6)
    # The plain design spends the whole planned error at every look; the last look is the same.
    plain = LookSchedule.for_items(1000, interim_share=1.0)
    assert plain.nominal == pytest.approx(list(stats.norm.cdf(c)), abs=1e-12)
    assert plain.nominal[-1] == plan.nominal[-1]
    assert LookSchedule.for_items(1000, looks=1).nominal == [pytest.approx(0.95)]
    with pytest.raises(InputError) as info:
        LookSchedule.for_items(1000, interim_share=0.0)
    assert str(info.value) == (
        "interim share 0.0 is outside (0, 1]\n  Hint: use 0.5 (the default) or 1 for the plain design"
    )


def test_interim_look_bound_by_hand() -> None:
    # 40 symmetric per-item differences as the first of four looks at 160 items: the Student-t
    # bound at the look's decision level 1 - 0.8 * 0.5 * alpha(0.25) (skewness 0: Hall = t).
    d = np.array([-0.3, -0.1, 0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.1] * 2) * 0.1 + 0.02
    d = np.r_[d, 0.1 - d + 0.02]
    base = 5.0 + np.zeros(160)
    diffs = np.r_[d, np.zeros(120)]
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.08)
    plan = LookSchedule.for_items(160)
    scores = PairedScores(base, base - diffs, "mean")
    decision = decide_look(tol, scores, plan, 0)
    look = decision.result
    spent = 0.05 * (1 - math.exp(0.5)) / (1 - math.exp(2.0))
    q = stats.t.ppf(1 - 0.8 * 0.5 * spent, 39)
    se = d.std(ddof=1) / math.sqrt(40)
    assert (look.n, look.look, look.confidence) == (40, 1, pytest.approx(1 - 0.5 * spent))
    assert (look.ci_low, look.ci_high) == (pytest.approx(d.mean() - q * se), pytest.approx(d.mean() + q * se))
    # mean 0.06, se 0.00716: 0.06 + 3.054 se = 0.0819 > 0.08, so the look stays open; the plain
    # design (t quantile 2.790 at 1 - 0.8 alpha(0.25)) would have PASSED it: 0.0800 <= 0.08.
    assert look.ci_high == pytest.approx(0.0818673, abs=1e-6)
    assert look.outcome is Decision.inconclusive and decision.open
    plain = decide_look(tol, scores, LookSchedule.for_items(160, interim_share=1.0), 0).result
    assert plain.ci_high == pytest.approx(0.0799763, abs=1e-6)
    assert plain.outcome is Decision.passed


@pytest.mark.parametrize(("n", "looks", "sizes"), [(10, 4, [3, 5, 8, 10]), (3, 4, [1, 2, 3]), (1, 4, [1])])
def test_look_sizes(n: int, looks: int, sizes: list[int]) -> None:
    assert LookSchedule.for_items(n, looks=looks).look_sizes == sizes


def test_pocock_boundaries_are_nearly_flat_and_obrien_fleming_falls() -> None:
    pocock = critical_values(QUARTERS, 0.05, "pocock")
    assert max(pocock) - min(pocock) < 0.1
    obf = critical_values(QUARTERS, 0.05, "obrien-fleming")
    assert obf[0] > 3.5 and obf[-1] < 1.75


def test_plan_errors() -> None:
    with pytest.raises(InputError) as info:
        LookSchedule.for_items(0)
    assert str(info.value) == "a look schedule needs at least one item; got 0\n  Hint: check the eval set"
    with pytest.raises(InputError) as info:
        LookSchedule.for_look_sizes([100, 100, 200])
    assert info.value.message == "look sizes [100, 100, 200] must be positive and strictly increasing"
    with pytest.raises(InputError) as info:
        LookSchedule.for_items(100, spending="haybittle")  # type: ignore[arg-type]
    assert str(info.value) == (
        "unknown alpha-spending function 'haybittle'\n  Hint: use one of: hwang-shih-decani, obrien-fleming, pocock"
    )
    with pytest.raises(InputError) as info:
        LookSchedule.for_items(100).confidence_at(4)
    assert str(info.value) == "look 4 does not exist; the plan has looks 0..3\n  Hint: iterate over range(plan.looks)"


def _binary(worse: int, better: int, n: int, seed: int = 0) -> PairedScores:
    rng = np.random.default_rng(seed)
    base = np.r_[np.ones(worse), np.zeros(better), (rng.random(n - worse - better) < 0.7).astype(float)]
    quant = np.r_[np.zeros(worse), np.ones(better), base[worse + better :]]
    order = rng.permutation(n)
    return PairedScores(base[order], quant[order], "binary")


def test_clear_pass_stops_at_the_first_look() -> None:
    scores = _binary(20, 20, 8000)
    plan = LookSchedule.for_items(8000)
    look = decide_look(ACC_2, scores, plan, 0)
    first = look.result
    assert first.outcome is Decision.passed and not look.open
    assert (first.n, first.n_total, first.note, first.look, first.looks) == (2000, 8000, None, 1, 4)
    assert first.confidence == pytest.approx(plan.confidence_at(0))
    assert first.method.endswith(
        "; sequential look 1/4 (looks at 2000, 4000, 6000, 8000 items), hwang-shih-decani spending, overall 0.95"
    )
    assert run_sequential(ACC_2, scores, plan).n == 2000


def test_borderline_continues_then_ends_inconclusive() -> None:
    scores = _binary(52, 28, 1000)
    plan = LookSchedule.for_items(1000)
    first = decide_look(ACC_2, scores, plan, 0)
    assert (first.result.outcome, first.open, first.result.look) == (Decision.inconclusive, True, 1)
    last = decide_look(ACC_2, scores, plan, 3)
    assert (last.result.outcome, last.open, last.result.n, last.result.look) == (Decision.inconclusive, False, 1000, 4)
    assert run_sequential(ACC_2, scores, plan).look == 4


def test_decide_look_on_partial_scores() -> None:
    scores = _binary(52, 28, 1000)
    plan = LookSchedule.for_items(1000)
    partial = scores.head(500)
    assert decide_look(ACC_2, partial, plan, 1).result.n == 500
    with pytest.raises(InputError) as info:
        decide_look(ACC_2, partial, plan, 2)
    assert str(info.value) == (
        "look 3 of 4 needs 750 scored items; got 500\n  Hint: score the next chunk before deciding this look"
    )


def test_sequential_false_pass_rate_at_the_boundary() -> None:
    # 300 replays of the full sequential design at a true drop equal to the tolerance.
    rng = np.random.default_rng(99)
    n = 1500
    plan = LookSchedule.for_items(n)
    passes = 0
    for _ in range(300):
        cells = rng.choice(3, size=n, p=[0.06, 0.04, 0.90])
        scores = PairedScores((cells == 0).astype(float), (cells == 1).astype(float), "binary")
        passes += run_sequential(ACC_2, scores, plan).outcome is Decision.passed
    assert passes / 300 <= 0.08


def test_item_order_is_a_seeded_permutation() -> None:
    order = item_order(100, seed=4)
    assert sorted(order.tolist()) == list(range(100))
    assert np.array_equal(order, item_order(100, seed=4))
    assert not np.array_equal(order, item_order(100, seed=5))


def test_spent_alpha_ends_at_alpha() -> None:
    for spending in ("hwang-shih-decani", "obrien-fleming", "pocock"):
        assert spent_alpha(1.0, 0.05, spending) == pytest.approx(0.05)
        assert spent_alpha(0.5, 0.05, spending) < 0.05
    assert math.isclose(spent_alpha(0.25, 0.05, "pocock"), 0.05 * math.log(1 + (math.e - 1) * 0.25))
