"""check_resolvable: hand-computed sample sizes and exact messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gate.errors import InputError
from gate.spec.models import MetricTolerance
from gate.verdict.sample_size import check_resolvable

ACC_1 = MetricTolerance(task="qg_reasoning", metric="acc", max_drop=1.0)


def _level(confidence: float) -> float:
    """The decision level the bounds use: 1 - 0.8 (1 - c) (96% for 95%)."""
    return 1 - 0.8 * (1 - confidence)


def _n(sigma2: float, margin: float, confidence: float = 0.95, power: float = 0.8) -> int:
    z = stats.norm.ppf(_level(confidence)) + stats.norm.ppf(power)
    return math.ceil(z * z * sigma2 / margin**2)


def _n_t(sigma2: float, margin: float, confidence: float = 0.95, power: float = 0.8) -> int:
    """As ``_n``, with the t(n - 1) quantile the t bound decides with (scipy's t)."""
    n = _n(sigma2, margin, confidence, power)
    for _ in range(3):
        z = stats.t.ppf(_level(confidence), n - 1) + stats.norm.ppf(power)
        n = math.ceil(z * z * sigma2 / margin**2)
    return n


def test_binary_with_assumed_discordance_by_hand() -> None:
    # At the decision level 96%: ((1.7507 + 0.8416)^2 * 0.10 / 0.01^2) = 6720.1 -> 6721 paired items.
    check = check_resolvable(ACC_1, n_available=250, confidence=0.95, assumed_discordance=0.10)
    assert check.n_needed == 6721 == _n(0.10, 0.01)
    assert not check.resolvable
    assert check.n_available == 250
    assert check.reason == (
        "qg_reasoning/acc: 250 items cannot resolve a 1-point tolerance at 95% confidence; about 6,721 paired "
        "items are needed (assumed discordance 10%, 80% power)"
    )
    assert check.assumption == "assumed discordance 10%"


def test_binary_resolvable_message() -> None:
    check = check_resolvable(ACC_1, n_available=7000, confidence=0.95, assumed_discordance=0.10)
    assert check.resolvable
    assert check.reason == (
        "qg_reasoning/acc: 7,000 items can resolve a 1-point tolerance at 95% confidence (80% power; about "
        "6,721 paired items are needed, assumed discordance 10%)"
    )


def test_binary_conservative_bound_from_baseline_accuracy() -> None:
    base = np.r_[np.ones(73), np.zeros(27)]
    check = check_resolvable(ACC_1, n_available=250, confidence=0.95, base_scores=base)
    assert check.n_needed == _n(2 * 0.73 * 0.27, 0.01)
    assert check.assumption == (
        "discordance bound 2p(1-p) = 39.42% from baseline accuracy 0.730, no pairing benefit assumed"
    )


def test_binary_worst_case_without_any_information() -> None:
    check = check_resolvable(ACC_1, n_available=250, confidence=0.95)
    assert check.n_needed == _n(0.5, 0.01)
    assert check.assumption == "worst-case discordance 50%, no baseline scores"


def test_power_and_confidence_move_n_the_right_way() -> None:
    base = check_resolvable(ACC_1, n_available=0, confidence=0.95, assumed_discordance=0.1).n_needed
    assert check_resolvable(ACC_1, n_available=0, confidence=0.99, assumed_discordance=0.1).n_needed > base
    assert check_resolvable(ACC_1, n_available=0, confidence=0.95, assumed_discordance=0.1, power=0.9).n_needed > base
    loose = MetricTolerance(task="qg_reasoning", metric="acc", max_drop=2.0)
    assert check_resolvable(loose, n_available=0, confidence=0.95, assumed_discordance=0.1).n_needed == _n(0.1, 0.02)


def test_relative_tolerance_on_binary_needs_the_baseline() -> None:
    tol = MetricTolerance(task="qa", metric="acc", max_relative_drop=0.02)
    base = np.r_[np.ones(80), np.zeros(20)]
    check = check_resolvable(tol, n_available=100, confidence=0.95, base_scores=base, assumed_discordance=0.05)
    assert check.n_needed == _n(0.05, 0.02 * 0.8)
    assert check.reason.startswith("qa/acc: 100 items cannot resolve a 2% relative tolerance at 95% confidence")
    unknown = check_resolvable(tol, n_available=100, confidence=0.95, assumed_discordance=0.05)
    assert unknown.checked is False and unknown.resolvable is True


def test_real_valued_scores_use_the_baseline_variance() -> None:
    base = np.random.default_rng(0).normal(5.0, 1.5, 400)
    tol = MetricTolerance(task="judge", metric="score", max_drop=0.1)
    check = check_resolvable(tol, n_available=400, confidence=0.95, base_scores=base, assumed_correlation=0.9)
    assert check.n_needed == _n_t(2 * base.var(ddof=1) * 0.1, 0.1) == 302
    assert check.assumption == "per-item variance from 400 baseline items, assumed correlation 0.9"
    assert check.reason.startswith("judge/score: 400 items can resolve a tolerance of 0.1 at 95% confidence (80% power; about 302 paired")


def test_perplexity_uses_the_linearised_ratio() -> None:
    rng = np.random.default_rng(1)
    words = rng.integers(100, 400, 200).astype(float)
    nll = words * rng.normal(3.0, 0.3, 200)
    tol = MetricTolerance(task="wiki", metric="word_perplexity", max_relative_increase=0.05)
    check = check_resolvable(tol, n_available=200, confidence=0.95, base_scores=np.c_[nll, words], assumed_correlation=0.99)
    r = nll.sum() / words.sum()
    influence = (nll - r * words) / words.mean()
    # 8 by the formula; no look decides on fewer than MIN_ITEMS (10) documents.
    assert _n_t(2 * influence.var(ddof=1) * 0.01, math.log1p(0.05)) == 8
    assert check.n_needed == 10
    assert check.resolvable
    assert check.reason.startswith("wiki/word_perplexity: 200 documents can resolve a 5% relative tolerance")


def test_perplexity_without_scores_is_not_checked() -> None:
    tol = MetricTolerance(task="wiki", metric="word_perplexity", max_relative_increase=0.05)
    check = check_resolvable(tol, n_available=60, confidence=0.95)
    assert (check.checked, check.resolvable, check.n_needed) == (False, True, 0)
    assert check.reason == (
        "wiki/word_perplexity: not checked: a 5% relative tolerance has no variance bound without the "
        "baseline's per-item scores (pass base_scores)"
    )


def test_zero_tolerance_can_never_be_shown() -> None:
    tol = MetricTolerance(task="qa", metric="acc", max_drop=0.0)
    check = check_resolvable(tol, n_available=10_000, confidence=0.95, assumed_discordance=0.1)
    assert (check.resolvable, check.n_needed) == (False, -1)
    assert check.reason == (
        "qa/acc: a zero tolerance can never be shown at 95% confidence: any finite eval set leaves some doubt"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"power": 1.0}, "power 1.0 is outside (0, 1)"),
        ({"assumed_discordance": 0.0}, "assumed discordance 0.0 is outside (0, 1]"),
        ({"n_available": -1}, "n_available is negative (-1)"),
        ({"base_scores": np.zeros((3, 2)), "kind": "binary"}, "baseline scores of shape (3, 2) do not fit kind 'binary'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"n_available": 100, "confidence": 0.95} | kwargs
    with pytest.raises(InputError) as info:
        check_resolvable(ACC_1, **args)  # type: ignore[arg-type]
    assert info.value.message == message


def test_recommended_n_gives_the_promised_power() -> None:
    # Simulate the analytic (score) test at the recommended n: ~80% PASS when the true drop is 0.
    from gate.verdict.stats import normal_quantile, tango_z

    n = check_resolvable(ACC_1, n_available=0, confidence=0.95, assumed_discordance=0.1).n_needed
    counts = np.random.default_rng(3).multinomial(n, [0.05, 0.05, 0.9], size=20_000)
    z = tango_z(counts[:, 0], counts[:, 1], np.full(20_000, n), np.full(20_000, 0.01))
    power = float(np.mean(z < -normal_quantile(_level(0.95))))
    assert power == pytest.approx(0.80, abs=0.02)


def test_power_at_the_declared_size_and_of_the_spec() -> None:
    from gate.verdict.sample_size import criterion_power, describe_power, spec_power

    # 2 points, discordance 10%, 2,000 items, 4 looks: final look nominal ~96.1%, decided at
    # 1 - 0.8 * 0.039 = 96.9%; power = Phi(0.02 * sqrt(2000 / 0.1) - z_0.969).
    tol = MetricTolerance(task="qa", metric="acc", max_drop=2.0)
    c = criterion_power(tol, n=2000, confidence=0.95, kind="binary")
    from gate.verdict.sequential import LookSchedule

    level = 1 - 0.8 * (1 - LookSchedule.for_items(2000).nominal[-1])
    assert c.power == pytest.approx(stats.norm.cdf(0.02 * math.sqrt(2000 / 0.1) - stats.norm.ppf(level)), abs=1e-9)
    assert (c.n, c.smallest_look, c.assumption) == (2000, 500, "assumed discordance 10%")
    short = criterion_power(tol, n=100, confidence=0.95, kind="binary")
    assert (short.power, short.smallest_look) == (0.0, 100)  # below the decision floor (151): one look, no PASS
    ppl = criterion_power(MetricTolerance(task="wiki", metric="word_perplexity", max_relative_increase=0.05),
                          n=300, confidence=0.95, kind="perplexity")
    assert ppl.power is None
    spec = spec_power([c, c, ppl])
    assert spec.overall == pytest.approx(c.power**2)
    assert describe_power(spec)[-1] == (
        f"spec: power {c.power**2 * 100:.0f}% (every criterion must PASS; 1 criteria not known yet, so at most this)"
    )
    assert describe_power(spec)[0] == f"qa/acc: 2,000 items (first look 500): power {c.power * 100:.0f}% (assumed discordance 10%)"
