"""compare_metric (non-inferiority per metric) and decide (the verdict)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate.errors import ExitCode, InputError
from gate.pipeline.exit import exit_code, is_blocking
from gate.result import Decision, Finding, Location, MetricResult, Severity
from gate.spec.models import MetricTolerance
from gate.verdict.decide import compare_metric, decide, describe
from gate.verdict.intervals import decision_level
from gate.verdict.stats import PairedScores, normal_cdf, tango_bounds

ACC_2 = MetricTolerance(task="qa", metric="acc", max_drop=2.0)


def binary(worse: int, better: int, n: int, both_right: int = 700) -> PairedScores:
    """``worse`` items only the baseline got right, ``better`` only the quantized model got right."""
    rest = n - worse - better - both_right
    base = np.r_[np.ones(worse), np.zeros(better), np.ones(both_right), np.zeros(rest)]
    quant = np.r_[np.zeros(worse), np.ones(better), np.ones(both_right), np.zeros(rest)]
    return PairedScores(base, quant, "binary")


# --- Binary scores: the paired score interval --------------------------------------------------


def test_clear_pass_binary() -> None:
    r = compare_metric(ACC_2, binary(5, 5, 1000), confidence=0.95)
    low, high = tango_bounds(5, 5, 1000, decision_level(0.95))  # bounds at the decision level, 96%
    assert r.outcome is Decision.passed
    assert (r.baseline, r.quantized, r.difference) == (0.705, 0.705, 0.0)
    assert r.ci_low == pytest.approx(100 * float(low)) and r.ci_high == pytest.approx(100 * float(high))
    assert r.ci_high == pytest.approx(0.63086, abs=1e-5)
    assert (r.n, r.n_total, r.confidence, r.tolerance, r.tolerance_form) == (1000, 1000, 0.95, 2.0, "max_drop")
    assert r.higher_is_better is True
    assert r.method == (
        "paired score interval (Tango; McNemar at zero margin), 5 worse and 5 better of 1000 items, McNemar exact p=1"
    )
    assert r.p_value is not None and r.p_value < 0.05


def test_clear_fail_binary() -> None:
    r = compare_metric(ACC_2, binary(80, 10, 1000), confidence=0.95)
    assert r.outcome is Decision.failed
    assert r.difference == pytest.approx(7.0)
    assert r.ci_low == pytest.approx(5.4639, abs=1e-4) and r.ci_high == pytest.approx(8.7183, abs=1e-4)
    assert r.p_value is not None and r.p_value > 0.95


def test_inconclusive_binary_and_its_reason_line() -> None:
    r = compare_metric(ACC_2, binary(52, 28, 1000), confidence=0.95)
    assert r.outcome is Decision.inconclusive
    assert describe(r) == (
        "qa/acc: drop 2.40 points [95% bounds 0.85, 4.02] > tolerance 2.00 not excluded (paired score "
        "interval (Tango; McNemar at zero margin), 52 worse and 28 better of 1000 items, McNemar exact "
        "p=0.00968; n=1000) → INCONCLUSIVE"
    )


def test_p_value_is_the_non_inferiority_p_value() -> None:
    # p = Phi(Z(margin)); PASS <=> p < 1 - confidence (same test as the bound).
    for worse, better in [(5, 5), (20, 10), (30, 10), (52, 28)]:
        r = compare_metric(ACC_2, binary(worse, better, 1000), confidence=0.95)
        assert r.p_value is not None
        assert (r.p_value < 0.05) == (r.outcome is Decision.passed)


def test_lower_is_better_binary_flips_the_direction() -> None:
    # 1 = an error; the quantized model makes 30 more errors out of 1000 -> +3 points.
    tol = MetricTolerance(task="safety", metric="refusal_error", max_increase=1.0)
    base = np.r_[np.zeros(40), np.ones(10), np.zeros(950)]
    quant = np.r_[np.ones(40), np.zeros(10), np.zeros(950)]
    r = compare_metric(tol, PairedScores(base, quant, "binary"), confidence=0.95)
    assert r.difference == pytest.approx(3.0)
    assert r.higher_is_better is False
    assert r.outcome is Decision.failed
    assert "40 worse and 10 better" in r.method


def test_bootstrap_and_score_interval_agree_on_a_large_set() -> None:
    scores = binary(52, 28, 1000)
    a = compare_metric(ACC_2, scores, confidence=0.95, method="score")
    b = compare_metric(ACC_2, scores, confidence=0.95, method="bootstrap", seed=1)
    assert b.method == "paired bootstrap, 10000 resamples, seed 1"
    assert b.ci_low == pytest.approx(a.ci_low, abs=0.15)
    assert b.ci_high == pytest.approx(a.ci_high, abs=0.15)


def test_score_method_needs_binary_scores() -> None:
    tol = MetricTolerance(task="qa", metric="f1", max_drop=2.0)
    with pytest.raises(InputError) as info:
        compare_metric(tol, PairedScores(np.full(20, 0.5), np.full(20, 0.4), "mean"), confidence=0.95, method="score")
    assert str(info.value) == (
        "qa/f1: the paired score interval needs binary scores\n  Hint: use method='t' (the default for real-valued scores)"
    )


# --- The paired bootstrap ----------------------------------------------------------------------


def test_bootstrap_hand_enumerable_case() -> None:
    # Two items with drops 0 and 1 (metric units): resampled means are 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4; confidence 0.65 is decided at level 1 - 0.8 * 0.35 = 0.72, so
    # the 28% and 72% percentiles are both 0.5.
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.6)
    scores = PairedScores(np.array([5.0, 6.0]), np.array([5.0, 5.0]), "mean")
    r = compare_metric(tol, scores, confidence=0.65, seed=0, method="bootstrap")
    assert (r.difference, r.ci_low, r.ci_high) == (0.5, 0.5, 0.5)
    assert r.outcome is Decision.passed
    assert r.p_value is None  # the bootstrap reports no p-value: the bound is the decision
    wide = compare_metric(tol, scores, confidence=0.95, seed=0, method="bootstrap")
    assert (wide.ci_low, wide.ci_high) == (0.0, 1.0)
    assert wide.outcome is Decision.inconclusive


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(5, 1, 300)
    scores = PairedScores(base, base - rng.normal(0.02, 0.3, 300), "mean")
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    a = compare_metric(tol, scores, confidence=0.95, seed=3, method="bootstrap")
    assert a == compare_metric(tol, scores, confidence=0.95, seed=3, method="bootstrap")
    assert a.ci_high != compare_metric(tol, scores, confidence=0.95, seed=4, method="bootstrap").ci_high


def test_relative_drop_uses_the_same_resampled_items_for_both_models() -> None:
    # Quantized is exactly 98% of the baseline on every item: the paired relative drop is 2%
    # in every resample, so the bounds collapse; an unpaired bootstrap would give a wide interval.
    base = np.random.default_rng(1).uniform(0.2, 0.9, 500)
    scores = PairedScores(base, 0.98 * base, "mean")
    tol = MetricTolerance(task="qa", metric="f1", max_relative_drop=0.03)
    r = compare_metric(tol, scores, confidence=0.95, resamples=2000)
    assert r.difference == pytest.approx(0.02)
    assert r.ci_low == pytest.approx(0.02) and r.ci_high == pytest.approx(0.02)
    assert r.outcome is Decision.passed
    assert describe(r).startswith("qa/f1: relative drop 2.00% [95% bounds 2.00%, 2.00%] ≤ tolerance 3.00% (")


def _perplexity_docs(increase: float, seed: int = 0) -> PairedScores:
    rng = np.random.default_rng(seed)
    words = rng.integers(100, 400, 120).astype(float)
    nll = words * rng.normal(3.0, 0.3, 120)
    quant = nll + words * (increase + rng.normal(0.0, 0.01, 120))
    return PairedScores(np.c_[nll, words], np.c_[quant, words], "perplexity")


def test_perplexity_relative_increase() -> None:
    tol = MetricTolerance(task="wiki", metric="word_perplexity", max_relative_increase=0.05)
    ok = compare_metric(tol, _perplexity_docs(0.01), confidence=0.95, resamples=2000)
    base, quant = ok.baseline, ok.quantized
    assert ok.difference == pytest.approx(quant / base - 1)
    assert ok.difference == pytest.approx(math.exp(0.01) - 1, abs=0.003)
    assert ok.outcome is Decision.passed
    bad = compare_metric(tol, _perplexity_docs(0.10), confidence=0.95, resamples=2000)
    assert bad.outcome is Decision.failed
    better = compare_metric(tol, _perplexity_docs(-0.02), confidence=0.95, resamples=2000)
    assert better.difference < 0 and better.outcome is Decision.passed


def test_bits_per_byte_absolute_increase_in_metric_units() -> None:
    tol = MetricTolerance(task="wiki", metric="bits_per_byte", max_increase=0.05)
    docs = _perplexity_docs(0.01)
    scores = PairedScores(docs.base, docs.quant, "bits_per_byte")
    r = compare_metric(tol, scores, confidence=0.95, resamples=2000)
    assert r.difference == pytest.approx(r.quantized - r.baseline)
    assert r.difference == pytest.approx(0.01 / math.log(2), abs=0.002)
    assert r.outcome is Decision.passed
    assert describe(r).startswith("wiki/bits_per_byte: increase 0.01 [95% bounds ")


def test_perplexity_with_a_drop_tolerance_is_an_input_error() -> None:
    tol = MetricTolerance(task="wiki", metric="word_perplexity", max_drop=1.0)
    with pytest.raises(InputError) as info:
        compare_metric(tol, _perplexity_docs(0.0), confidence=0.95)
    assert str(info.value) == (
        "wiki/word_perplexity: perplexity is lower-is-better, but the tolerance is `max_drop` (a drop)\n"
        "  Hint: declare `max_increase` or `max_relative_increase` for perplexity-type metrics"
    )


def test_relative_tolerance_on_a_zero_baseline_is_an_input_error() -> None:
    tol = MetricTolerance(task="qa", metric="acc", max_relative_drop=0.02)
    with pytest.raises(InputError) as info:
        compare_metric(tol, PairedScores(np.zeros(10), np.zeros(10), "binary"), confidence=0.95)
    assert str(info.value) == (
        "qa/acc: the baseline scores 0, so a relative tolerance (`max_relative_drop`) is undefined\n"
        "  Hint: use an absolute tolerance (`max_drop` or `max_increase`) for this metric"
    )


def test_n_total_cannot_be_below_n() -> None:
    with pytest.raises(InputError) as info:
        compare_metric(ACC_2, binary(5, 5, 1000), confidence=0.95, n_total=500)
    assert str(info.value) == (
        "qa/acc: n_total 500 is smaller than the 1000 items compared\n"
        "  Hint: pass the size of the full eval set as n_total (or leave it out)"
    )
    assert compare_metric(ACC_2, binary(5, 5, 1000), confidence=0.95, n_total=4000).n_total == 4000


def test_too_few_resamples_is_an_input_error() -> None:
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    with pytest.raises(InputError) as info:
        compare_metric(tol, PairedScores(np.ones(5), np.ones(5), "mean"), confidence=0.95, resamples=10, method="bootstrap")
    assert str(info.value) == "10 bootstrap resamples are too few\n  Hint: use at least 1000 (default 10000)"


# --- Error rates (small Monte Carlo; the benchmark runs the full 1,000-rep version) ------------


def test_false_pass_rate_at_the_tolerance_boundary_is_controlled() -> None:
    rng = np.random.default_rng(2024)
    n, drop, discordance = 1500, 0.02, 0.10
    passes = 0
    reps = 400
    for _ in range(reps):
        cells = rng.choice(3, size=n, p=[(discordance + drop) / 2, (discordance - drop) / 2, 1 - discordance])
        base = (cells == 0).astype(float)
        quant = (cells == 1).astype(float)
        passes += compare_metric(ACC_2, PairedScores(base, quant, "binary"), confidence=0.95).outcome is Decision.passed
    # Nominal 5%; 400 reps: 5% +- 2.2 points (2 sd). A direction or units bug gives ~50% or ~100%.
    assert passes / reps <= 0.075


def test_bootstrap_false_pass_rate_is_controlled() -> None:
    rng = np.random.default_rng(7)
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    passes = 0
    reps = 300
    for rep in range(reps):
        base = rng.normal(5.0, 1.0, 400)
        quant = base - 0.1 + rng.normal(0.0, 0.5, 400)  # true drop exactly at the tolerance
        r = compare_metric(tol, PairedScores(base, quant, "mean"), confidence=0.95, seed=rep, resamples=1000)
        passes += r.outcome is Decision.passed
    assert passes / reps <= 0.085


# --- The verdict -------------------------------------------------------------------------------


def _metric(outcome: Decision, name: str = "acc") -> MetricResult:
    return MetricResult(
        task="qa",
        metric=name,
        n=400,
        n_total=1000,
        baseline=0.73,
        quantized=0.722,
        difference=0.8,
        ci_low=-0.4,
        ci_high=2.0,
        confidence=0.95,
        tolerance=1.0,
        tolerance_form="max_drop",
        higher_is_better=True,
        method="paired bootstrap, 10000 resamples, seed 0",
        outcome=outcome,
    )


DENY = Finding(
    rule_id="QG301",
    slug="weights.pickle",
    severity=Severity.deny,
    message="weights/model.bin is a pickle",
    location=Location(path="models/a.yaml", line=4, col=3),
)
WARN = Finding(rule_id="QG201", slug="x", severity=Severity.warn, message="stale calibration")


def test_describe_exact_line() -> None:
    assert describe(_metric(Decision.inconclusive)) == (
        "qa/acc: drop 0.80 points [95% bounds -0.40, 2.00] > tolerance 1.00 not excluded "
        "(paired bootstrap, 10000 resamples, seed 0; n=400 of 1000) → INCONCLUSIVE"
    )


def test_all_pass() -> None:
    v = decide([_metric(Decision.passed)], findings=[WARN], fidelity_ok=True, performance_ok=None)
    assert v.decision is Decision.passed
    assert v.reasons == [describe(_metric(Decision.passed))]
    assert not is_blocking(v)
    assert exit_code(v) is ExitCode.OK


def test_failures_come_first_and_fail_wins() -> None:
    metrics = [_metric(Decision.passed, "a"), _metric(Decision.inconclusive, "b"), _metric(Decision.failed, "c")]
    v = decide(metrics, findings=[DENY], fidelity_ok=False, performance_ok=False, extra_reasons=["fidelity: KL 0.09 > 0.05"])
    assert v.decision is Decision.failed
    assert v.reasons == [
        describe(metrics[2]),
        "QG301 models/a.yaml:4:3: weights/model.bin is a pickle → FAIL",
        "fidelity: outside the declared bounds (max_kl / max_flip_rate) → FAIL",
        "performance: outside the declared bounds (min_speedup / max_memory_gb) → FAIL",
        "fidelity: KL 0.09 > 0.05",
        describe(metrics[1]),
        describe(metrics[0]),
    ]
    assert is_blocking(v, "allow")
    assert exit_code(v, "allow") is ExitCode.BLOCKED


def test_a_blocking_finding_alone_fails() -> None:
    v = decide([_metric(Decision.passed)], findings=[DENY], fidelity_ok=None, performance_ok=None)
    assert v.decision is Decision.failed


def test_waived_finding_does_not_block() -> None:
    waived = DENY.model_copy(update={"waived": True})
    v = decide([_metric(Decision.passed)], findings=[waived], fidelity_ok=None, performance_ok=None)
    assert v.decision is Decision.passed


def test_inconclusive_blocks_by_default() -> None:
    v = decide([_metric(Decision.inconclusive), _metric(Decision.passed, "b")], findings=[], fidelity_ok=True, performance_ok=True)
    assert v.decision is Decision.inconclusive
    assert v.reasons[1] == (
        "inconclusive blocks by default (fail-closed): evaluate more items, or a policy may set inconclusive: allow"
    )
    assert is_blocking(v)
    assert exit_code(v) is ExitCode.BLOCKED


def test_inconclusive_allowed_by_policy_stays_inconclusive_but_does_not_block() -> None:
    v = decide([_metric(Decision.inconclusive)], findings=[], fidelity_ok=None, performance_ok=None, inconclusive="allow")
    assert v.decision is Decision.inconclusive
    assert v.reasons[-1] == "inconclusive allowed by policy (inconclusive: allow): not blocking"
    assert not is_blocking(v, "allow")
    assert exit_code(v, "allow") is ExitCode.OK


def test_an_inconclusive_fidelity_makes_passing_metrics_inconclusive() -> None:
    line = "fidelity: KL 0.2411 nats/token (95% CI 0.2250 to 0.2630) straddles max_kl 0.25 → INCONCLUSIVE"
    v = decide([_metric(Decision.passed)], findings=[], fidelity_ok=None, performance_ok=True,
               fidelity_inconclusive=True, extra_reasons=[line])
    assert v.decision is Decision.inconclusive
    assert v.reasons == [
        line,
        "inconclusive blocks by default (fail-closed): evaluate more items, or a policy may set inconclusive: allow",
        describe(_metric(Decision.passed)),
    ]
    assert exit_code(v) is ExitCode.BLOCKED
    failing = decide([_metric(Decision.failed)], findings=[], fidelity_ok=None, performance_ok=None,
                     fidelity_inconclusive=True)
    assert failing.decision is Decision.failed


def test_metric_error_is_an_error_verdict() -> None:
    v = decide([_metric(Decision.error), _metric(Decision.inconclusive, "b")], findings=[], fidelity_ok=None, performance_ok=None)
    assert v.decision is Decision.error
    assert exit_code(v) is ExitCode.UNEXPECTED


def test_no_metrics_fails_mandatory_validation() -> None:
    v = decide([], findings=[], fidelity_ok=None, performance_ok=None)
    assert v.decision is Decision.failed
    assert v.reasons == [
        "no quality metric was evaluated: no quantized model ships without passing an evaluation set "
        "against its full-precision baseline → FAIL"
    ]
    assert decide([], findings=[], fidelity_ok=None, performance_ok=None, require_metrics=False).decision is Decision.passed


def test_normal_cdf_sanity() -> None:
    assert normal_cdf(0.0) == pytest.approx(0.5)
