"""Sequential evaluation: a fixed number of looks, each decided at an alpha-spending boundary.

The eval set is scored in chunks (by default at 25/50/75/100% of the items, in a seeded random
order: see ``item_order``) and evaluation stops at the first look that decides PASS or FAIL.
Looking repeatedly at accumulating data inflates error rates unless each look is stricter; we
use the group-sequential design of Lan & DeMets (1983): a spending function ``alpha(t)`` says how
much of the one-sided error ``alpha = 1 - confidence`` may be spent by information fraction ``t``
(here the fraction of items scored), and the per-look critical values ``c_k`` are computed exactly
(recursive numerical integration of the Brownian-motion crossing probabilities, as in Armitage,
McPherson & Rowe 1969) so that

    P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = alpha(t_k) - alpha(t_{k-1}).

The PASS boundary (rejecting "degradation >= tolerance") and the FAIL boundary (rejecting
"degradation <= tolerance") are two one-sided sequential tests, each with these critical values,
so each wrong decision keeps probability <= alpha overall (stopping on the other boundary can only
lower it). Look ``k`` is decided by the ordinary fixed-sample method (``compare_metric``) at the
nominal one-sided confidence ``Phi(c_k)`` at the last look and ``1 - INTERIM_SHARE (1 - Phi(c_k))``
at an interim one — ``confidence_at(k)``.

**Interim looks are decided at half their planned error** (``INTERIM_SHARE``), while the last
look keeps the planned design's boundary, so the alpha they do not spend is left unspent. The
boundaries assume each look's test is exact; the gate's analytic bounds are exact only to second
order, and their approximation error is largest where interim looks decide: few items and far
into the tail (99.5% one-sided at a 25% look). Measured (``benchmarks/verdict_sim.py``, 40,000
repetitions at the tolerance): with the full planned alpha at every look, skewed perplexity
differences gave sequential false PASS 4.1-4.7% against 3.9-4.2% for the single look on the same
data (the single-look rate is what the decision-level margin is sized for); with half, 2.9-4.0%,
at or below the single look in every cell (0.75 was not enough: 4.33% against 4.16% at n = 50).
A stricter interim look can only lower the chance of crossing a boundary (the last look is
unchanged), and clear cases still stop early.

Spending functions (``benchmarks/verdict_sim.py`` compares them):

- ``hwang-shih-decani`` (the default; Hwang, Shih & DeCani 1990 with gamma = -2,
  ``alpha(t) = alpha (1 - e^{-gamma t}) / (1 - e^{-gamma})``): the middle ground; clear cases stop
  at the first or second look, and the final look (nominal ~96.1% for 95%) keeps nearly all of the
  fixed-sample power;
- ``obrien-fleming`` (Lan-DeMets O'Brien-Fleming type, ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt
  t)``): very strict early looks, final look closest to the fixed-sample level;
- ``pocock`` (Lan-DeMets Pocock type, ``alpha(t) = alpha ln(1 + (e - 1) t)``): stops clear cases
  earliest, costs the most power at the final look.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from gate.errors import InputError
from gate.result import Decision, MetricResult
from gate.spec.models import MetricTolerance
from gate.verdict.decide import Method, compare_metric
from gate.verdict.stats import PairedScores, _check_confidence, normal_cdf, normal_quantile

Spending = Literal["hwang-shih-decani", "obrien-fleming", "pocock"]
SPENDING_FUNCTIONS: tuple[str, ...] = ("hwang-shih-decani", "obrien-fleming", "pocock")
HSD_GAMMA = -2.0
INTERIM_SHARE = 0.5
"""Share of an interim look's planned one-sided error ``1 - Phi(c_k)`` it is decided at (the last
look: all of it); see the module docstring for why and what it measured."""

_GRID = 601
"""Quadrature points per look (odd, for Simpson's rule). Measured against 1,201 points on 36
designs (2-6 looks, alpha 0.01-0.2, every spending function): critical values within 4.2e-9 on the
Z scale, at a quarter of the cost (``gate check`` designs each criterion's looks)."""
_TAIL_SD = 8.0  # lower truncation of the continuation region, in standard deviations
_erfc = np.frompyfunc(math.erfc, 1, 1)


def spent_alpha(t: float, alpha: float, spending: str) -> float:
    """The one-sided error spent by information fraction ``t`` (0 < t <= 1)."""
    if spending == "hwang-shih-decani":
        return alpha * (1.0 - math.exp(-HSD_GAMMA * t)) / (1.0 - math.exp(-HSD_GAMMA))
    if spending == "obrien-fleming":
        return 2.0 - 2.0 * normal_cdf(normal_quantile(1.0 - alpha / 2.0) / math.sqrt(t))
    if spending == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    raise InputError(
        f"unknown alpha-spending function {spending!r}",
        hint=f"use one of: {', '.join(SPENDING_FUNCTIONS)}",
    )


def _upper_tail(x: np.ndarray) -> np.ndarray:
    """1 - Phi(x), vectorised and accurate in the far tail."""
    return np.asarray(0.5 * _erfc(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)), dtype=np.float64)


def _simpson_weights(m: int, h: float) -> np.ndarray:
    w = np.ones(m)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return w * h / 3.0


@lru_cache(maxsize=256)
def critical_values(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    """Per-look one-sided critical values ``c_k`` (Z scale) for the given information fractions."""
    if not fractions or any(b <= a for a, b in itertools.pairwise(fractions)) or fractions[-1] > 1.0 + 1e-12:
        raise InputError(
            f"information fractions {fractions} must increase strictly and end at most at 1",
            hint="give look sizes in increasing order",
        )
    spent = [spent_alpha(t, alpha, spending) for t in fractions]
    increments = [spent[0]] + [b - a for a, b in itertools.pairwise(spent)]
    t1 = fractions[0]
    c1 = normal_quantile(1.0 - increments[0]) if increments[0] > 0 else math.inf
    values = [c1]
    # Sub-density of B(t) (Brownian scale, Var = t) on the continuation region, on a grid.
    x, w = _grid(-_TAIL_SD * math.sqrt(t1), c1 * math.sqrt(t1))
    dens = np.exp(-0.5 * x * x / t1) / math.sqrt(2.0 * math.pi * t1)
    prev_t = t1
    for t, a_k in zip(fractions[1:], increments[1:], strict=False):
        step = math.sqrt(t - prev_t)
        mass = w * dens
        c = _boundary(a_k, t, step, x, mass) if a_k > 0 else math.inf
        values.append(c)
        upper = c * math.sqrt(t) if math.isfinite(c) else _TAIL_SD * math.sqrt(t)
        y, w_new = _grid(-_TAIL_SD * math.sqrt(t), upper)
        diff = (y[:, None] - x[None, :]) / step
        dens = (np.exp(-0.5 * diff * diff) / (math.sqrt(2.0 * math.pi) * step)) @ mass
        x, w, prev_t = y, w_new, t
    return tuple(values)


def _boundary(a_k: float, t: float, step: float, x: np.ndarray, mass: np.ndarray) -> float:
    """The ``c`` at which P(continue until the previous look, then B(t) >= c sqrt(t)) = ``a_k``.

    The crossing probability falls strictly in ``c``; Newton's method on it (its derivative is
    the grid integral of the normal density), kept inside a shrinking bracket with a bisection
    step whenever Newton would leave it, converges to 1e-13 in 4-8 evaluations (bisection took
    100)."""
    root_t = math.sqrt(t)
    lo, hi = -10.0, 40.0
    c = normal_quantile(1.0 - a_k)  # the boundary had no earlier look spent anything
    for _ in range(100):
        z = (c * root_t - x) / step
        excess = float(np.sum(mass * _upper_tail(z))) - a_k
        if excess > 0:
            lo = c
        else:
            hi = c
        slope = -float(np.sum(mass * np.exp(-0.5 * z * z))) * root_t / (step * math.sqrt(2.0 * math.pi))
        nxt = c - excess / slope if slope < 0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - c) < 1e-13:
            return nxt
        c = nxt
    return c


def _grid(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(lo, hi, _GRID)
    return x, _simpson_weights(_GRID, (hi - lo) / (_GRID - 1))


@dataclass(frozen=True)
class LookSchedule:
    """Looks at fixed item counts and the nominal confidence each is decided at."""

    n_total: int
    """Items in the full eval set."""
    look_sizes: list[int]
    """Cumulative items scored at each look; the last is ``n_total``."""
    confidence: float
    """Overall one-sided confidence each error rate is held to (the spec's ``quality.confidence``)."""
    spending: str
    """Alpha-spending function: hwang-shih-decani | obrien-fleming | pocock."""
    nominal: list[float]
    """Nominal one-sided confidence look k is decided at: ``Phi(c_k)`` at the last look, ``1 -
    interim_share (1 - Phi(c_k))`` at an interim look."""
    interim_share: float = INTERIM_SHARE
    """Share of an interim look's planned error it spends (``INTERIM_SHARE``; 1 = the plain design)."""

    @classmethod
    def for_items(
        cls,
        n_total: int,
        looks: int = 4,
        confidence: float = 0.95,
        spending: Spending = "hwang-shih-decani",
        *,
        interim_share: float = INTERIM_SHARE,
    ) -> LookSchedule:
        """Equally spaced looks (25/50/75/100% for 4); fewer when there are fewer items than looks."""
        if n_total < 1:
            raise InputError(f"a look schedule needs at least one item; got {n_total}", hint="check the eval set")
        if looks < 1:
            raise InputError(f"a look schedule needs at least one look; got {looks}", hint="use looks: 4")
        _check_confidence(confidence)
        sizes = sorted({max(1, math.ceil(n_total * k / looks)) for k in range(1, looks + 1)})
        return cls.for_look_sizes(sizes, confidence=confidence, spending=spending, interim_share=interim_share)

    @classmethod
    def for_look_sizes(
        cls,
        look_sizes: list[int],
        *,
        confidence: float = 0.95,
        spending: Spending = "hwang-shih-decani",
        interim_share: float = INTERIM_SHARE,
    ) -> LookSchedule:
        """Looks at the given cumulative item counts (the last is the full set)."""
        if not look_sizes or any(b <= a for a, b in itertools.pairwise(look_sizes)) or look_sizes[0] < 1:
            raise InputError(
                f"look sizes {look_sizes} must be positive and strictly increasing",
                hint="e.g. [250, 500, 750, 1000]",
            )
        _check_confidence(confidence)
        if not 0.0 < interim_share <= 1.0:
            raise InputError(
                f"interim share {interim_share} is outside (0, 1]",
                hint=f"use {INTERIM_SHARE} (the default) or 1 for the plain design",
            )
        n_total = look_sizes[-1]
        fractions = tuple(s / n_total for s in look_sizes)
        cvals = critical_values(fractions, 1.0 - confidence, spending)
        planned = [normal_cdf(c) if math.isfinite(c) else 1.0 for c in cvals]
        nominal = [1.0 - interim_share * (1.0 - p) for p in planned[:-1]] + planned[-1:]
        return cls(n_total=n_total, look_sizes=list(look_sizes), confidence=confidence, spending=spending,
                   nominal=nominal, interim_share=interim_share)

    @property
    def looks(self) -> int:
        return len(self.look_sizes)

    def confidence_at(self, look_index: int) -> float:
        """Nominal one-sided confidence for look ``look_index`` (0-based)."""
        self._check_index(look_index)
        return self.nominal[look_index]

    def _check_index(self, look_index: int) -> None:
        if not 0 <= look_index < self.looks:
            raise InputError(
                f"look {look_index} does not exist; the plan has looks 0..{self.looks - 1}",
                hint="iterate over range(plan.looks)",
            )


def item_order(n_total: int, seed: int = 0) -> np.ndarray:
    """The seeded random order to score items in: looks take prefixes, and a dataset's own order
    often correlates with difficulty, which would bias early looks."""
    return np.random.default_rng(seed).permutation(n_total)


@dataclass(frozen=True)
class LookDecision:
    """What one look decided for one metric."""

    result: MetricResult
    """The metric's result at this look (``look`` / ``looks`` set)."""
    open: bool
    """True when the look did not decide (INCONCLUSIVE) and later looks remain: score the next
    chunk. A decided metric (PASS or FAIL) is closed for good: later looks do not re-decide it."""


def decide_look(
    tolerance: MetricTolerance,
    scores: PairedScores,
    plan: LookSchedule,
    look_index: int,
    seed: int = 0,
    *,
    resamples: int = 10_000,
    method: Method = "auto",
) -> LookDecision:
    """The outcome after look ``look_index``: PASS/FAIL when decided at the look's nominal
    confidence (closed); otherwise INCONCLUSIVE, open while later looks remain (at the last look,
    INCONCLUSIVE is the final verdict). ``scores`` holds at least the look's items, in scoring
    order; only the first ``plan.look_sizes[look_index]`` are used."""
    plan._check_index(look_index)
    size = plan.look_sizes[look_index]
    if scores.n < size:
        raise InputError(
            f"look {look_index + 1} of {plan.looks} needs {size} scored items; got {scores.n}",
            hint="score the next chunk before deciding this look",
        )
    nominal = plan.confidence_at(look_index)
    result = compare_metric(
        tolerance,
        scores.head(size),
        confidence=nominal,
        seed=seed,
        resamples=resamples,
        n_total=plan.n_total,
        method=method,
    )
    last = look_index == plan.looks - 1
    method_text = result.method
    if plan.looks > 1:
        method_text = (
            f"{result.method}; sequential look {look_index + 1}/{plan.looks} (looks at "
            f"{', '.join(str(s) for s in plan.look_sizes)} items), {plan.spending} spending, overall {plan.confidence:g}"
        )
    update = {"method": method_text, "look": look_index + 1, "looks": plan.looks}
    return LookDecision(
        result=result.model_copy(update=update), open=result.outcome is Decision.inconclusive and not last
    )


def run_sequential(
    tolerance: MetricTolerance,
    scores: PairedScores,
    plan: LookSchedule,
    seed: int = 0,
    *,
    resamples: int = 10_000,
    method: Method = "auto",
) -> MetricResult:
    """Replay the looks over already-scored items; returns the result of the look that decided
    (or the last look's INCONCLUSIVE)."""
    decision: LookDecision | None = None
    for k in range(plan.looks):
        decision = decide_look(tolerance, scores, plan, k, seed, resamples=resamples, method=method)
        if not decision.open:
            break
    assert decision is not None
    return decision.result
