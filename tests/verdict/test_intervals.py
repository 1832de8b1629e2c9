"""The analytic bounds: one hand-computed case per method, the degenerate early look, and the
harness deciding exactly as ``compare_metric`` does."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from gate.result import Decision
from gate.spec.models import MetricTolerance
from gate.verdict.decide import compare_metric
from gate.verdict.intervals import (
    MIN_ITEMS,
    decision_level,
    relative_score_bounds,
    relative_score_z,
    skew_t_bounds,
    t_cdf,
    t_quantile,
)
from gate.verdict.sequential import LookSchedule, decide_look
from gate.verdict.stats import PairedScores

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import verdict_sim

REL_5 = MetricTolerance(task="qa", metric="acc", max_relative_drop=0.05)


def table(both: int, worse: int, better: int, neither: int) -> PairedScores:
    base = np.r_[np.ones(both + worse), np.zeros(better + neither)]
    quant = np.r_[np.ones(both), np.zeros(worse), np.ones(better), np.zeros(neither)]
    return PairedScores(base, quant, "binary")


def test_t_distribution_matches_scipy() -> None:
    for df in (3, 9, 29, 299):
        for x in (-3.1, -0.4, 0.0, 1.7):
            assert t_cdf(x, df) == pytest.approx(stats.t.cdf(x, df), abs=1e-12)
        assert t_quantile(0.96, df) == pytest.approx(stats.t.ppf(0.96, df), abs=1e-9)


def _restricted_z(counts: np.ndarray, r: float) -> float:
    """The score statistic of p_quant = (1 - r) p_base, independently: the constrained multinomial
    MLE by scipy's SLSQP, then (sum(n g) moved half an item towards 0) / sqrt(n sum(p g^2))."""
    g = np.array([-r, 1 - r, -1.0, 0.0])
    n = counts.sum()

    def nll(p: np.ndarray) -> float:
        return -float(np.sum(np.where(counts > 0, counts * np.log(np.maximum(p, 1e-300)), 0.0)))

    cons = [{"type": "eq", "fun": lambda p: p.sum() - 1}, {"type": "eq", "fun": lambda p: p @ g}]
    start = np.maximum(counts / n, 1e-3)
    start /= start.sum()
    p = optimize.minimize(nll, start, constraints=cons, bounds=[(1e-12, 1)] * 4, method="SLSQP",
                          options={"ftol": 1e-14, "maxiter": 500}).x
    observed = float(counts @ g)
    observed = math.copysign(max(abs(observed) - 0.5, 0.0), observed)
    return observed / math.sqrt(n * float(np.sum(p * g * g)))


def test_relative_score_interval_by_hand() -> None:
    # 400 items: 230 both right, 30 only the baseline, 10 only the quantized model, 130 neither.
    # Baseline accuracy 0.65, quantized 0.60: relative drop 7.69%.
    counts = np.array([230.0, 30.0, 10.0, 130.0])
    for r in (0.0, 0.05, 0.0769, 0.15):
        assert float(relative_score_z(counts, r)) == pytest.approx(_restricted_z(counts, r), abs=1e-5)
    level = decision_level(0.95)
    z = stats.norm.ppf(level)
    low = optimize.brentq(lambda r: _restricted_z(counts, r) - z, -0.5, 0.5, xtol=1e-10)
    high = optimize.brentq(lambda r: _restricted_z(counts, r) + z, -0.5, 0.5, xtol=1e-10)
    got_low, got_high = relative_score_bounds(counts, level)
    assert (float(got_low), float(got_high)) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    r = compare_metric(REL_5, table(230, 30, 10, 130), confidence=0.95)
    assert r.difference == pytest.approx(0.05 / 0.65)
    assert (r.ci_low, r.ci_high) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert r.outcome is Decision.inconclusive
    assert r.method == (
        "paired score test of the relative change (p_quant = (1 - r) p_base on the 2x2 table), 30 worse and 10 "
        "better of 400 items"
    )


def test_relative_score_p_value_and_decision_agree() -> None:
    for cells in [(230, 30, 10, 130), (580, 5, 6, 409), (300, 60, 5, 35), (600, 0, 0, 400)]:
        r = compare_metric(REL_5, table(*cells), confidence=0.95)
        assert r.p_value is not None
        assert (r.p_value < 0.05) == (r.outcome is Decision.passed)


def test_all_agree_early_look_is_not_a_pass() -> None:
    """The issue's case: relative tolerance, acc 0.6, first look of 25 of 100 items with no item
    the baseline got right and the quantized got wrong. The percentile bootstrap's resamples were
    all <= 0 there, so it PASSED; the score test keeps the width, and no look below the
    decision floor is taken."""
    early = table(15, 0, 0, 10)  # 25 items, every item agrees
    plan = LookSchedule.for_items(100, looks=4)
    look = decide_look(REL_5, early, plan, 0)
    assert look.result.outcome is Decision.inconclusive and look.open
    assert look.result.ci_high > 0.05
    boot = compare_metric(REL_5, early, confidence=plan.confidence_at(0), method="bootstrap")
    assert boot.outcome is Decision.inconclusive
    assert boot.note == "degenerate look: every resample gives the same degradation, which is never decided"
    from gate.verdict.sample_size import schedule_looks

    floored = schedule_looks([(REL_5, "binary", 0.6)], 100, looks=4, confidence=0.95)
    assert floored.look_sizes == [100]  # an all-agree look needs >= 211 items to PASS 5% at 99.6%


def test_t_bound_by_hand_symmetric_differences() -> None:
    # Symmetric per-item differences: skewness 0, so the bound is the Student-t bound.
    d = np.array([-0.3, -0.1, 0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1.1] * 2) * 0.1 + 0.02
    d = np.r_[d, 0.1 - d + 0.02]  # mirror: exactly symmetric around its mean
    base = 5.0 + np.zeros(d.size)
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    r = compare_metric(tol, PairedScores(base, base - d, "mean"), confidence=0.95)
    q = stats.t.ppf(decision_level(0.95), d.size - 1)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert r.difference == pytest.approx(d.mean())
    assert (r.ci_low, r.ci_high) == (pytest.approx(d.mean() - q * se), pytest.approx(d.mean() + q * se))
    p = stats.t.cdf((d.mean() - 0.1) / se, d.size - 1) / 0.8
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.method == "skewness-corrected t on the paired per-item difference (t and Hall envelope), df 39"


def test_t_bound_by_hand_skewed_perplexity() -> None:
    # Perplexity: the log ratio of two ratio estimators, linearised per document; a right-skewed
    # increase widens the upper bound beyond the plain t bound (Hall's transformation).
    rng = np.random.default_rng(4)
    words = rng.integers(50, 400, 200).astype(float)
    nll = words * rng.normal(3.0, 0.2, 200)
    quant = nll + words * (0.01 * rng.gamma(0.5, 2.0, 200) + rng.normal(0, 0.01, 200))
    tol = MetricTolerance(task="wiki", metric="word_perplexity", max_relative_increase=0.02)
    r = compare_metric(tol, PairedScores(np.c_[nll, words], np.c_[quant, words], "perplexity"), confidence=0.95)
    lb, lq = nll.sum() / words.sum(), quant.sum() / words.sum()
    u = ((quant - lq * words) - (nll - lb * words)) / words.mean()
    n = u.size
    se = u.std(ddof=1) / math.sqrt(n)
    g1 = np.mean((u - u.mean()) ** 3) / np.mean((u - u.mean()) ** 2) ** 1.5 * math.sqrt(n * (n - 1)) / (n - 2)
    a, b = g1 / (3 * math.sqrt(n)), g1 / (6 * math.sqrt(n))
    q = stats.t.ppf(decision_level(0.95), n - 1)
    t_low = (np.cbrt(1 + 3 * a * (-q - b)) - 1) / a  # Hall's inverse at -q
    high = max(lq - lb + q * se, lq - lb - se * t_low)
    assert g1 > 0.5 and high > lq - lb + q * se
    assert r.ci_high == pytest.approx(math.expm1(high), rel=1e-9)
    assert r.difference == pytest.approx(math.expm1(lq - lb), rel=1e-9)


def test_degenerate_and_small_looks_are_never_decided() -> None:
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    same = compare_metric(tol, PairedScores(np.full(50, 5.0), np.full(50, 5.0), "mean"), confidence=0.95)
    assert same.outcome is Decision.inconclusive
    assert same.note == "degenerate look: every item's difference is identical (zero variance), which is never decided"
    few = compare_metric(tol, PairedScores(np.arange(5.0), np.arange(5.0) + 0.01 * np.arange(5), "mean"), confidence=0.95)
    assert few.outcome is Decision.inconclusive and few.note == f"too few items to decide: 5 < {MIN_ITEMS}"
    # One item carries everything: g1 = 28 / sqrt(29) = 5.199, adjusted G1 = g1 sqrt(30 * 29) / 28 = 5.477.
    skewed = np.r_[np.zeros(29), 5.0]
    r = compare_metric(tol, PairedScores(np.full(30, 5.0) + skewed, np.full(30, 5.0), "mean"), confidence=0.95)
    # Too skewed for the t bound (Cochran: n >= 25 G1^2 = 751): the bounds also cover the
    # distribution-free Cantelli bound, mean +- sqrt(c / (1 - c)) se at the decision level 96%
    # (4.9 se); they straddle 0.1.
    assert r.outcome is Decision.inconclusive and r.note is None
    assert r.method.endswith("; Cantelli bounds: skewness 5.48 needs 751 items for the t bound (n >= 25 skewness^2)")
    se = float(np.std(skewed, ddof=1)) / math.sqrt(30)
    assert r.ci_high >= skewed.mean() + math.sqrt(0.96 / 0.04) * se
    assert r.ci_low == pytest.approx(skewed.mean() - math.sqrt(0.96 / 0.04) * se)
    clear = compare_metric(MetricTolerance(task="judge", metric="score", max_drop=1.5),
                           PairedScores(np.full(30, 5.0) + skewed, np.full(30, 5.0), "mean"), confidence=0.95)
    assert clear.outcome is Decision.passed and clear.ci_high == r.ci_high < 1.5  # a clear case still decides


def test_the_harness_decides_as_compare_metric() -> None:
    """``benchmarks/verdict_sim.py`` calls the vectorised functions; on random tables and samples
    its PASS/FAIL equal ``compare_metric``'s outcome item for item."""
    rng = np.random.default_rng(11)
    for relative in (False, True):
        tol = verdict_sim.binary_tolerance(relative, 0.6, 0.10)
        cells = rng.multinomial(1, verdict_sim.binary_probabilities(0.6, 0.10, 0.033), size=(30, 300))
        counts = cells.sum(axis=1).astype(float)
        passed, failed = verdict_sim.binary_decision(tol, counts, 300, 0.95)
        for k in range(30):
            c = counts[k].astype(int)
            got = compare_metric(tol, table(*c), confidence=0.95).outcome
            assert got is (Decision.passed if passed[k] else Decision.failed if failed[k] else Decision.inconclusive)
    for dist in ("normal", "skewed perplexity"):
        tol, kind = verdict_sim.continuous_tolerance(dist)
        base, quant = verdict_sim.continuous_data(dist, rng, 40, 120, 1.0)
        passed, failed = verdict_sim.continuous_decision(tol, kind, base, quant, 0.95)
        for k in range(40):
            got = compare_metric(tol, PairedScores(base[k], quant[k], kind), confidence=0.95).outcome  # type: ignore[arg-type]
            assert got is (Decision.passed if passed[k] else Decision.failed if failed[k] else Decision.inconclusive)


def test_skew_t_bounds_vectorise_like_single_rows() -> None:
    rng = np.random.default_rng(2)
    u = rng.gamma(1.0, 1.0, (5, 80))
    est = u.mean(axis=1)
    low, high, ok = skew_t_bounds(est, u - est[:, None], 0.96)
    for k in range(5):
        one = skew_t_bounds(est[k], u[k] - est[k], 0.96)
        assert (float(one[0]), float(one[1]), bool(one[2])) == (low[k], high[k], ok[k])
