"""Paired statistics against hand-computed cases and scipy."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import optimize, stats

from gate.errors import BackendError
from gate.verdict.stats import (
    PairedScores,
    ScoresError,
    bootstrap_mean_ci,
    expanded_level,
    mcnemar_exact_p,
    normal_quantile,
    student_t_quantile,
    tango_bounds,
    tango_z,
)

# --- PairedScores ----------------------------------------------------------------------------


def test_aggregates_mean_and_binary() -> None:
    s = PairedScores(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]), "binary")
    assert s.n == 4
    assert s.aggregates() == (0.75, 0.5)
    assert s.discordance() == (1, 0)
    assert s.points is True and s.scale == 100.0


def test_aggregates_perplexity_and_bits_per_byte_by_hand() -> None:
    # Two documents: nll 2 and 4 nats over 1 and 3 words -> 6/4 nats per word.
    base = np.array([[2.0, 1.0], [4.0, 3.0]])
    quant = np.array([[3.0, 1.0], [5.0, 3.0]])
    ppl = PairedScores(base, quant, "perplexity")
    assert ppl.aggregates() == pytest.approx((math.exp(1.5), math.exp(2.0)))
    assert ppl.points is False and ppl.scale == 1.0
    bpb = PairedScores(base, quant, "bits_per_byte")
    assert bpb.aggregates() == pytest.approx((6 / (4 * math.log(2)), 8 / (4 * math.log(2))))


def test_points_are_inferred_from_the_score_range() -> None:
    assert PairedScores(np.array([0.5, 0.25]), np.array([0.5, 1.0]), "mean").points is True
    assert PairedScores(np.array([3.5, 0.25]), np.array([0.5, 1.0]), "mean").points is False
    assert PairedScores(np.array([0.5, 0.25]), np.array([0.5, 1.0]), "mean", points=False).scale == 1.0


def test_head_keeps_kind_and_units() -> None:
    s = PairedScores(np.array([0.5, 0.25, 3.0]), np.array([0.5, 1.0, 2.0]), "mean")
    head = s.head(2)
    assert head.n == 2 and head.points is False and head.kind == "mean"


def test_arrays_are_read_only() -> None:
    s = PairedScores(np.array([1.0, 0.0]), np.array([1.0, 1.0]), "binary")
    with pytest.raises(ValueError):
        s.base[0] = 0.0


@pytest.mark.parametrize(
    ("base", "quant", "kind", "message", "hint"),
    [
        (
            np.zeros(3),
            np.zeros(4),
            "mean",
            "baseline and quantized scores differ in shape: (3,) vs (4,)",
            "pair the scores item by item: both models must score the same items",
        ),
        (
            np.zeros(3),
            np.zeros(3),
            "perplexity",
            "perplexity scores must have shape (n, 2) (summed nll, count); got (3,)",
            "column 0 = the document's negative log-likelihood, column 1 = its word/byte count",
        ),
        (np.zeros((2, 2)), np.zeros((2, 2)), "mean", "mean scores must have shape (n,); got (2, 2)", "give one score per item"),
        (np.zeros(0), np.zeros(0), "binary", "no paired items to compare", "evaluate at least one item"),
        (
            np.array([1.0, np.nan]),
            np.array([1.0, 0.0]),
            "mean",
            "scores contain NaN or infinite values",
            "a NaN score usually means a failed generation or overflow; fix the evaluation",
        ),
        (
            np.array([1.0, 0.5]),
            np.array([1.0, 0.0]),
            "binary",
            "binary scores must be 0 or 1",
            "use kind='mean' for fractional scores",
        ),
        (
            np.array([[-2.0, 1.0]]),
            np.array([[2.0, 1.0]]),
            "perplexity",
            "column 0 of ratio scores must be the negative log-likelihood (>= 0); got a negative value",
            "pass -loglikelihood, not the loglikelihood lm-eval returns",
        ),
        (
            np.array([[2.0, 0.0]]),
            np.array([[2.0, 1.0]]),
            "bits_per_byte",
            "column 1 of ratio scores (word/byte count) must be positive",
            "drop empty documents before scoring",
        ),
        (np.zeros(2), np.zeros(2), "median", "unknown score kind 'median'", "use one of: mean, binary, perplexity, bits_per_byte"),
    ],
)
def test_malformed_scores_are_clear_errors(
    base: np.ndarray, quant: np.ndarray, kind: str, message: str, hint: str
) -> None:
    with pytest.raises(ScoresError) as info:
        PairedScores(base, quant, kind)  # type: ignore[arg-type]
    assert info.value.message == message
    assert info.value.hint == hint
    assert isinstance(info.value, BackendError)


# --- McNemar and Tango -----------------------------------------------------------------------


@pytest.mark.parametrize(("worse", "better"), [(0, 0), (5, 5), (1, 0), (12, 3), (3, 12), (40, 25), (200, 170)])
def test_mcnemar_exact_matches_scipy_binomtest(worse: int, better: int) -> None:
    expected = 1.0 if worse + better == 0 else stats.binomtest(worse, worse + better, 0.5).pvalue
    assert mcnemar_exact_p(worse, better) == pytest.approx(expected, rel=1e-9)


def test_tango_at_zero_margin_is_mcnemars_z() -> None:
    z = tango_z(np.array(30), np.array(12), np.array(500), np.array(0.0))
    assert float(z) == pytest.approx((30 - 12) / math.sqrt(30 + 12))


def test_tango_upper_bound_with_no_discordant_pairs_by_hand() -> None:
    # b = c = 0: Z(d) = -sqrt(n d / (1 - d)), so the upper bound solves n d / (1 - d) = z^2.
    z = normal_quantile(0.95)
    low, high = tango_bounds(0, 0, 100, 0.95)
    assert float(high) == pytest.approx(z * z / (100 + z * z), abs=1e-9)
    assert float(low) == pytest.approx(-z * z / (100 + z * z), abs=1e-9)


def _tango_reference(b: int, c: int, n: int, conf: float) -> tuple[float, float]:
    """Independent implementation: restricted MLE by numerical optimisation, roots by brentq."""
    m = n - b - c

    def z_of(delta: float) -> float:
        lo_q = max(0.0, -delta) + 1e-12
        hi_q = (1 - delta) / 2 - 1e-12

        def nll(q: float) -> float:
            p10, p01, pcon = q + delta, q, 1 - 2 * q - delta
            return -(b * math.log(max(p10, 1e-300)) + c * math.log(max(p01, 1e-300)) + m * math.log(max(pcon, 1e-300)))

        q = optimize.minimize_scalar(nll, bounds=(lo_q, hi_q), method="bounded", options={"xatol": 1e-13}).x
        return (b - c - n * delta) / math.sqrt(n * (2 * q + delta * (1 - delta)))

    z = stats.norm.ppf(conf)
    low = optimize.brentq(lambda d: z_of(d) - z, -0.999, 0.999, xtol=1e-12)
    high = optimize.brentq(lambda d: z_of(d) + z, -0.999, 0.999, xtol=1e-12)
    return low, high


@pytest.mark.parametrize(("b", "c", "n"), [(12, 3, 200), (52, 28, 1000), (7, 9, 60), (30, 0, 400)])
def test_tango_bounds_match_an_independent_solver(b: int, c: int, n: int) -> None:
    low, high = tango_bounds(b, c, n, 0.95)
    ref_low, ref_high = _tango_reference(b, c, n, 0.95)
    assert float(low) == pytest.approx(ref_low, abs=1e-5)
    assert float(high) == pytest.approx(ref_high, abs=1e-5)


def test_tango_vectorised_equals_scalar() -> None:
    b = np.array([12, 52, 7, 30, 0])
    c = np.array([3, 28, 9, 0, 0])
    n = np.array([200, 1000, 60, 400, 100])
    low, high = tango_bounds(b, c, n, 0.9)
    for i in range(b.size):
        lo_i, hi_i = tango_bounds(int(b[i]), int(c[i]), int(n[i]), 0.9)
        assert low[i] == pytest.approx(float(lo_i), abs=1e-12)
        assert high[i] == pytest.approx(float(hi_i), abs=1e-12)


# --- Bootstrap -------------------------------------------------------------------------------


def test_bootstrap_mean_ci_is_seeded_and_matches_scipy_percentile() -> None:
    values = np.random.default_rng(3).exponential(1.0, size=400)
    first = bootstrap_mean_ci(values, confidence=0.95, seed=11, resamples=20_000)
    assert first == bootstrap_mean_ci(values, confidence=0.95, seed=11, resamples=20_000)
    assert first[0] == pytest.approx(values.mean())
    level = expanded_level(0.95, values.size)  # the expanded percentile: a slightly wider level
    assert 0.95 < level < 0.951
    ref = stats.bootstrap(
        (values,), np.mean, confidence_level=2 * level - 1, n_resamples=20_000, method="percentile", random_state=5
    ).confidence_interval
    se = values.std() / math.sqrt(values.size)
    assert first[1] == pytest.approx(ref.low, abs=0.05 * se)
    assert first[2] == pytest.approx(ref.high, abs=0.05 * se)


@pytest.mark.parametrize("df", [5, 10, 30, 241, 5000])
@pytest.mark.parametrize("p", [0.9, 0.95, 0.99])
def test_student_t_quantile_matches_scipy(df: int, p: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), abs=2e-3)


def test_expanded_level_by_hand() -> None:
    # n = 30: Phi(sqrt(30/29) * t_{0.95, 29}) = Phi(1.01709 * 1.69913) = Phi(1.72817)
    assert expanded_level(0.95, 30) == pytest.approx(stats.norm.cdf(math.sqrt(30 / 29) * stats.t.ppf(0.95, 29)), abs=1e-6)
    assert expanded_level(0.95, 5) == 0.95
    assert expanded_level(0.95, 100_000) == pytest.approx(0.95, abs=1e-5)


def test_bootstrap_of_a_constant_collapses() -> None:
    assert bootstrap_mean_ci(np.full(50, 0.25), confidence=0.95) == (0.25, 0.25, 0.25)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ScoresError) as info:
        bootstrap_mean_ci(np.array([]), confidence=0.95)
    assert str(info.value) == "no values to bootstrap\n  Hint: measure at least one item"
    with pytest.raises(ScoresError) as info:
        bootstrap_mean_ci(np.array([1.0]), confidence=1.5)
    assert str(info.value) == "confidence 1.5 is outside (0.5, 1)\n  Hint: declare quality.confidence such as 0.95"


def test_bootstrap_is_fast() -> None:
    values = np.random.default_rng(0).random(1000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        bootstrap_mean_ci(values, confidence=0.95, seed=0, resamples=10_000)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0
