"""Properties of the per-metric comparison that must hold for any data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.result import Decision
from gate.spec.models import MetricTolerance
from gate.verdict.decide import compare_metric
from gate.verdict.stats import PairedScores

ACC = MetricTolerance(task="qa", metric="acc", max_drop=2.0)
ERR = MetricTolerance(task="qa", metric="err", max_increase=2.0)


def _table(worse: int, better: int, same: int) -> PairedScores:
    base = np.r_[np.ones(worse), np.zeros(better), np.ones(same // 2), np.zeros(same - same // 2)]
    quant = np.r_[np.zeros(worse), np.ones(better), np.ones(same // 2), np.zeros(same - same // 2)]
    return PairedScores(base, quant, "binary")


tables = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 600))


@settings(max_examples=60, deadline=None)
@given(tables, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_bounds_bracket_the_estimate_and_decide_consistently(table: tuple[int, int, int], confidence: float) -> None:
    r = compare_metric(ACC, _table(*table), confidence=confidence)
    assert r.ci_low <= r.difference + 1e-9 <= r.ci_high + 2e-9
    expected = (
        Decision.passed if r.ci_high <= r.tolerance else Decision.failed if r.ci_low > r.tolerance else Decision.inconclusive
    )
    assert r.outcome is expected


@settings(max_examples=40, deadline=None)
@given(tables)
def test_higher_confidence_never_narrows_the_bounds(table: tuple[int, int, int]) -> None:
    scores = _table(*table)
    a = compare_metric(ACC, scores, confidence=0.9)
    b = compare_metric(ACC, scores, confidence=0.99)
    assert b.ci_low <= a.ci_low + 1e-9 and b.ci_high >= a.ci_high - 1e-9


@settings(max_examples=40, deadline=None)
@given(tables)
def test_swapping_roles_mirrors_the_direction(table: tuple[int, int, int]) -> None:
    # A drop of accuracy is an increase of the error indicator 1 - score.
    scores = _table(*table)
    errors = PairedScores(1 - scores.base, 1 - scores.quant, "binary")
    a = compare_metric(ACC, scores, confidence=0.95)
    b = compare_metric(ERR, errors, confidence=0.95)
    assert abs(a.difference - b.difference) < 1e-9
    assert abs(a.ci_low - b.ci_low) < 1e-9 and abs(a.ci_high - b.ci_high) < 1e-9
    assert a.outcome is b.outcome


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(10, 200), st.floats(-0.5, 0.5))
def test_bootstrap_bounds_bracket_the_estimate(seed: int, n: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    base = rng.normal(5.0, 1.0, n)
    scores = PairedScores(base, base - shift + rng.normal(0.0, 0.3, n), "mean")
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    r = compare_metric(tol, scores, confidence=0.95, seed=seed, resamples=500)
    assert r.ci_low <= r.difference <= r.ci_high
