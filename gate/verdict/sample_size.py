"""How many items a verdict needs: the decision floor, the up-front formula, the projection from
data, the look plan and the power ``gate check`` shows.

- ``decision_floor``: the fewest items on which the method could PASS at all (binary: a look
  where every item agrees still excludes the tolerance; moment-based: ``MIN_ITEMS``). ``gate run``
  refuses only sets below it (INCONCLUSIVE "needs N items"; no assumption about the data).
- ``check_resolvable``: whether ``n`` items give ``power`` to PASS an unchanged model, by

      n_needed = ceil(((z_level + z_power) * sigma / delta) ** 2)

  at the decision level (``intervals.decision_level``; t quantiles for the t method), never below
  the floor. ``sigma`` (per-item sd of the degradation, tolerance units) comes from an assumed
  discordance (binary), the no-pairing-benefit bound ``2p(1 - p)`` or ``0.5``, or the baseline's
  per-item variance with an assumed correlation (real-valued; perplexity via the delta method).
- ``measured_n_needed``: the same with ``sigma`` MEASURED on paired scores (the discordance, or the
  spread of the linearised per-item degradation): what an INCONCLUSIVE result reports.
- ``schedule_looks``: the look schedule with no look below a criterion's floor.
- ``criterion_power`` / ``spec_power``: PASS probability of an unchanged model at the declared
  size, per criterion and for the spec (intersection-union: the product).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gate.errors import InputError
from gate.result import CriterionPower, SpecPower
from gate.spec.models import MetricTolerance
from gate.verdict.intervals import decision_level, t_quantile
from gate.verdict.sequential import INTERIM_SHARE, LookSchedule
from gate.verdict.stats import (
    RATIO_KINDS,
    SCORE_KINDS,
    PairedScores,
    _check_confidence,
    normal_cdf,
    normal_quantile,
)


@dataclass(frozen=True)
class SampleSizeCheck:
    """Whether ``n_available`` items can resolve the tolerance, and how many would."""

    resolvable: bool
    """False when the set is too small for the declared tolerance and confidence (or can never be)."""
    n_needed: int
    """Paired items needed under ``assumption``; -1 when no number suffices (a zero tolerance)."""
    n_available: int
    """Items in the eval set (after any ``limit``)."""
    reason: str
    """One human line, e.g. ``qa/acc: 250 items cannot resolve a 1-point tolerance ...``."""
    checked: bool = True
    """False when no variance bound exists without baseline scores (perplexity, real-valued
    scores); then ``resolvable`` is True and the reason says the check was skipped."""
    assumption: str = ""
    """Where the per-item variance came from, e.g. ``assumed discordance 10%``."""


def check_resolvable(
    tolerance: MetricTolerance,
    *,
    n_available: int,
    confidence: float,
    base_scores: np.ndarray | None = None,
    power: float = 0.8,
    assumed_discordance: float | None = None,
    assumed_correlation: float | None = None,
    kind: str | None = None,
) -> SampleSizeCheck:
    """Say up front whether ``n_available`` paired items can reach a verdict for ``tolerance``.

    ``kind`` (mean | binary | perplexity | bits_per_byte) defaults to what ``base_scores`` and the
    metric name imply: 2-D scores are perplexity (bits_per_byte when the metric says so), 0/1
    scores binary; with no scores, perplexity-type names are ratio metrics and everything else is
    treated as a proportion (acc, exact_match, ...).
    """
    _check_confidence(confidence)
    if not 0.0 < power < 1.0:
        raise InputError(f"power {power} is outside (0, 1)", hint="use e.g. power=0.8")
    if n_available < 0:
        raise InputError(f"n_available is negative ({n_available})", hint="count the eval set's items")
    if assumed_discordance is not None and not 0.0 < assumed_discordance <= 1.0:
        raise InputError(
            f"assumed discordance {assumed_discordance} is outside (0, 1]",
            hint="give the share of items the two models score differently, e.g. 0.1",
        )
    if assumed_correlation is not None and not -1.0 <= assumed_correlation < 1.0:
        raise InputError(f"assumed correlation {assumed_correlation} is outside [-1, 1)", hint="e.g. 0.9")
    name = f"{tolerance.task}/{tolerance.metric}"
    scores = None if base_scores is None else np.asarray(base_scores, dtype=np.float64)
    kind = kind or _infer_kind(tolerance.metric, scores)
    if kind not in SCORE_KINDS:
        raise InputError(f"unknown score kind {kind!r}", hint=f"use one of: {', '.join(SCORE_KINDS)}")
    points = kind == "binary" or (kind == "mean" and scores is not None and bool(np.all((scores >= 0) & (scores <= 1))))
    what = _tolerance_text(tolerance, points)
    at = f"at {_pct(confidence)} confidence"
    unit = "documents" if kind in RATIO_KINDS else "items"

    margin_sd = _margin_over_sd(tolerance, kind, scores, assumed_discordance, assumed_correlation)
    if margin_sd is None:
        return SampleSizeCheck(
            resolvable=True,
            n_needed=0,
            n_available=n_available,
            reason=(
                f"{name}: not checked: {what} has no variance bound without the baseline's per-item "
                "scores (pass base_scores)"
            ),
            checked=False,
        )
    ratio, assumption = margin_sd
    if ratio <= 0:
        return SampleSizeCheck(
            resolvable=False,
            n_needed=-1,
            n_available=n_available,
            reason=f"{name}: a zero tolerance can never be shown {at}: any finite eval set leaves some doubt",
            assumption=assumption,
        )
    level = decision_level(confidence)
    z = normal_quantile(level) + normal_quantile(power)
    n_needed = max(1, math.ceil((z / ratio) ** 2))
    if kind != "binary" and math.isfinite(ratio):
        # The t bound decides with t(n - 1) quantiles (a little stricter than z for small n);
        # size for them so the promised power holds.
        for _ in range(3):
            z = t_quantile(level, max(n_needed - 1, 1)) + normal_quantile(power)
            n_needed = max(1, math.ceil((z / ratio) ** 2))
    floor = decision_floor(tolerance, kind, confidence, float(scores.mean()) if kind == "binary" and scores is not None else None)
    n_needed = max(n_needed, floor)
    resolvable = n_available >= n_needed
    if resolvable:
        reason = (
            f"{name}: {n_available:,} {unit} can resolve {what} {at} ({_pct(power)} power; "
            f"about {n_needed:,} paired {unit} are needed, {assumption})"
        )
    else:
        reason = (
            f"{name}: {n_available:,} {unit} cannot resolve {what} {at}; about {n_needed:,} paired "
            f"{unit} are needed ({assumption}, {_pct(power)} power)"
        )
    return SampleSizeCheck(
        resolvable=resolvable, n_needed=n_needed, n_available=n_available, reason=reason, assumption=assumption
    )


def planning_kind(metric: str) -> str:
    """The score kind a metric name implies before any scores exist (perplexity-type names are
    ratio metrics; everything else is treated as a proportion: acc, exact_match, ...)."""
    return _infer_kind(metric, None)


def _infer_kind(metric: str, scores: np.ndarray | None) -> str:
    lowered = metric.lower()
    if scores is not None and scores.ndim == 2:
        return "bits_per_byte" if "bits_per_byte" in lowered else "perplexity"
    if scores is None:
        if "bits_per_byte" in lowered:
            return "bits_per_byte"
        if "perplexity" in lowered:
            return "perplexity"
        return "binary"
    return "binary" if bool(np.all((scores == 0) | (scores == 1))) else "mean"


def _margin_over_sd(
    tolerance: MetricTolerance,
    kind: str,
    scores: np.ndarray | None,
    discordance: float | None,
    correlation: float | None,
) -> tuple[float, str] | None:
    """The tolerance divided by the per-item standard deviation of the degradation (same units)."""
    form = tolerance.tolerance_form
    tol = tolerance.tolerance
    relative = form in ("max_relative_drop", "max_relative_increase")
    rho = 0.0 if correlation is None else correlation
    rho_text = "no pairing benefit assumed" if correlation is None else f"assumed correlation {correlation:g}"
    if scores is not None:
        _check_scores(scores, kind)

    if kind == "binary":
        p = None if scores is None else float(scores.mean())
        if discordance is not None:
            pi, assumption = discordance, f"assumed discordance {_pct(discordance)}"
        elif p is not None:
            pi = 2.0 * p * (1.0 - p)
            assumption = f"discordance bound 2p(1-p) = {_pct(pi)} from baseline accuracy {p:.3f}, no pairing benefit assumed"
        else:
            pi, assumption = 0.5, "worst-case discordance 50%, no baseline scores"
        if relative:
            if p is None:
                return None
            margin = tol * p  # relative drop of a proportion -> absolute margin in proportion units
        else:
            margin = tol / 100.0  # absolute tolerances on 0/1 scores are in points
        return (margin / math.sqrt(pi) if pi > 0 else math.inf), assumption

    if scores is None:
        return None

    if kind == "mean":
        mean = float(scores.mean())
        var = 2.0 * float(scores.var(ddof=1) if scores.size > 1 else 0.0) * (1.0 - rho)
        in_unit = bool(np.all((scores >= 0) & (scores <= 1)))
        if relative:
            if mean <= 0:
                return None
            margin = tol * mean
        else:
            margin = tol / 100.0 if in_unit else tol
        return _ratio(margin, var), f"per-item variance from {scores.size} baseline items, {rho_text}"

    # Ratio metrics: R = sum nll / sum count; per-document influence (s_i - R w_i) / mean(w).
    nll, count = scores[:, 0], scores[:, 1]
    r = float(nll.sum() / count.sum())
    influence = (nll - r * count) / float(count.mean())
    var = 2.0 * float(influence.var(ddof=1) if influence.size > 1 else 0.0) * (1.0 - rho)
    if kind == "perplexity":
        ppl = math.exp(r)
        margin = math.log1p(tol) if relative else math.log1p(tol / ppl)
    else:
        margin = tol * r if relative else tol * math.log(2.0)
    return _ratio(margin, var), f"per-document variance from {influence.size} baseline documents, {rho_text}"


def _ratio(margin: float, var: float) -> float:
    if margin <= 0:
        return 0.0
    return margin / math.sqrt(var) if var > 0 else math.inf


def _check_scores(scores: np.ndarray, kind: str) -> None:
    want_2d = kind in RATIO_KINDS
    if (want_2d and (scores.ndim != 2 or scores.shape[1] != 2)) or (not want_2d and scores.ndim != 1):
        raise InputError(
            f"baseline scores of shape {scores.shape} do not fit kind {kind!r}",
            hint="give (n,) scores for mean/binary metrics and (n, 2) (nll, count) for perplexity-type metrics",
        )
    if scores.shape[0] == 0 or not np.all(np.isfinite(scores)):
        raise InputError("baseline scores are empty or contain NaN/inf", hint="fix the baseline evaluation")


def _tolerance_text(tolerance: MetricTolerance, points: bool) -> str:
    tol = tolerance.tolerance
    form = tolerance.tolerance_form
    if form in ("max_relative_drop", "max_relative_increase"):
        return f"a {_pct(tol)} relative tolerance"
    if points:
        return f"a {tol:g}-point tolerance"
    return f"a tolerance of {tol:g}"


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


# --- Sizing from data, the decision floor, and the looks ------------------------------------------


def decision_floor(tolerance: MetricTolerance, kind: str, confidence: float, base_accuracy: float | None = None) -> int:
    """The fewest items on which the verdict's method could PASS this tolerance at ``confidence``
    at all: binary scores need enough items that a look where every item agrees excludes the
    tolerance (the score interval's width with no discordant pair); the moment-based method needs
    ``MIN_ITEMS``. A look below the floor can never PASS, so plans do not look there.
    ``base_accuracy`` (relative tolerances on binary scores) defaults to 1, the most favourable."""
    from gate.verdict.intervals import MIN_ITEMS, relative_score_z
    from gate.verdict.stats import tango_z

    if kind != "binary":
        return MIN_ITEMS
    tol = tolerance.tolerance
    if tol <= 0:
        return -1
    z = normal_quantile(decision_level(confidence))
    relative = tolerance.tolerance_form in ("max_relative_drop", "max_relative_increase")
    p = 1.0 if base_accuracy is None else min(max(base_accuracy, 1e-6), 1.0)

    def passes(n: int) -> bool:
        if relative:
            right = n * p
            counts = np.array([right, 0.0, 0.0, n - right])
            return bool(relative_score_z(counts, tol, tolerance.higher_is_better) <= -z)
        return bool(tango_z(np.array(0.0), np.array(0.0), np.array(float(n)), np.array(tol / 100.0)) <= -z)

    hi = 1
    while not passes(hi):
        hi *= 2
        if hi > 1 << 40:
            return -1
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return max(hi, 1)


def measured_n_needed(
    tolerance: MetricTolerance, scores: PairedScores, *, confidence: float, power: float = 0.8
) -> int | None:
    """About how many paired items would give ``power`` to PASS an unchanged model, with the
    per-item spread MEASURED on ``scores`` (binary: the discordance; otherwise the spread of the
    linearised per-item degradation), never below the decision floor. None when the items have no
    spread at all (nothing to project from)."""
    from gate.verdict.intervals import linearised_degradation

    level = decision_level(confidence)
    relative = tolerance.tolerance_form in ("max_relative_drop", "max_relative_increase")
    sign = 1.0 if tolerance.higher_is_better else -1.0
    base_value, _ = scores.aggregates()
    if scores.kind == "binary":
        worse, better = scores.discordance()
        floor = decision_floor(tolerance, "binary", confidence, base_value)
        pi = (worse + better) / scores.n
        margin = tolerance.tolerance * base_value if relative else tolerance.tolerance / 100.0
        if pi <= 0 or margin <= 0:
            return floor if floor > 0 else None
        n = math.ceil(((normal_quantile(level) + normal_quantile(power)) * math.sqrt(pi) / margin) ** 2)
        return max(n, floor)
    _theta, influence, log_scale = linearised_degradation(
        scores.kind, scores.base, scores.quant, relative=relative, sign=sign, scale=scores.scale
    )
    sd = float(np.std(influence, ddof=1)) if scores.n > 1 else 0.0
    margin = math.log1p(tolerance.tolerance) if log_scale else tolerance.tolerance
    if sd <= 0 or margin <= 0:
        return None
    n = math.ceil(((normal_quantile(level) + normal_quantile(power)) * sd / margin) ** 2)
    for _ in range(3):
        n = math.ceil(((t_quantile(level, max(n - 1, 1)) + normal_quantile(power)) * sd / margin) ** 2)
    return max(n, decision_floor(tolerance, scores.kind, confidence))


def schedule_looks(
    tolerances: list[tuple[MetricTolerance, str, float | None]],
    n_total: int,
    *,
    looks: int,
    confidence: float,
    spending: str = "hwang-shih-decani",
    interim_share: float = INTERIM_SHARE,
) -> LookSchedule:
    """The look schedule of one task, with no look below the decision floor of the criteria it
    decides (``(tolerance, kind, baseline accuracy or None)`` each).

    The floors are taken at the equally spaced plan's first-look nominal confidence (its
    strictest; interim looks decide at ``interim_share`` of their planned error, see
    ``sequential``); looks smaller than the largest floor are dropped (their alpha is not spent),
    so the smallest remaining look is the one the report and ``check_resolvable`` speak of. With
    every look below the floor: one look at ``n_total``.
    """
    plan = LookSchedule.for_items(n_total, looks=looks, confidence=confidence, spending=spending,  # type: ignore[arg-type]
                                    interim_share=interim_share)
    if plan.looks == 1:
        return plan
    floors = [decision_floor(t, kind, plan.nominal[0], acc) for t, kind, acc in tolerances]
    floor = max([f for f in floors if f > 0] or [1])
    sizes = [s for s in plan.look_sizes if s >= floor] or [n_total]
    if sizes == plan.look_sizes:
        return plan
    return LookSchedule.for_look_sizes(sizes, confidence=confidence, spending=spending,  # type: ignore[arg-type]
                                         interim_share=interim_share)


# --- Power at the declared size (what `gate check` shows before GPU time) -------------------------


def criterion_power(
    tolerance: MetricTolerance,
    *,
    n: int,
    confidence: float,
    kind: str,
    looks: int = 4,
    assumed_discordance: float = 0.10,
    base_accuracy: float | None = None,
) -> CriterionPower:
    """The chance that an unchanged model PASSES this criterion on ``n`` items.

    Binary scores: the score test's normal approximation at the final look's nominal level (a
    lower bound for the sequential design, which may also stop earlier), per-item variance = the
    assumed discordance; 0 below the decision floor. Real-valued scores: not computable before a
    run has measured their spread (``power`` None). ``smallest_look`` is the first look of the
    plan the run will use (no look below the decision floor).
    """
    name = f"{tolerance.task}/{tolerance.metric}"
    plan = schedule_looks([(tolerance, kind, base_accuracy)], n, looks=looks, confidence=confidence) if n > 0 else None
    smallest = plan.look_sizes[0] if plan else 0
    if kind != "binary" or plan is None:
        return CriterionPower(criterion=name, n=n, smallest_look=smallest, power=None,
                              assumption="needs the per-item spread a run measures")
    relative = tolerance.tolerance_form in ("max_relative_drop", "max_relative_increase")
    if relative and base_accuracy is None:
        return CriterionPower(criterion=name, n=n, smallest_look=smallest, power=None,
                              assumption="a relative tolerance needs the baseline accuracy a run measures")
    floor = decision_floor(tolerance, kind, confidence, base_accuracy)
    assumption = f"assumed discordance {_pct(assumed_discordance)}"
    if floor < 0 or n < floor:
        return CriterionPower(criterion=name, n=n, smallest_look=smallest, power=0.0, assumption=assumption)
    margin = tolerance.tolerance * (base_accuracy or 1.0) if relative else tolerance.tolerance / 100.0
    z = normal_quantile(decision_level(plan.nominal[-1]))
    power = normal_cdf(margin * math.sqrt(n / assumed_discordance) - z)
    return CriterionPower(criterion=name, n=n, smallest_look=smallest, power=power, assumption=assumption)


def spec_power(criteria: list[CriterionPower]) -> SpecPower:
    """Intersection-union: the spec PASSES only when every criterion does, so for independent
    criteria its power is the product (an upper bound while some criterion's power is unknown)."""
    known = [c.power for c in criteria if c.power is not None]
    overall = math.prod(known) if known else None
    return SpecPower(criteria=criteria, overall=overall)


def describe_power(power: SpecPower) -> list[str]:
    """Plain lines for a report, e.g. ``qg_reasoning/acc: 2,000 items (first look 500): power 81%
    (assumed discordance 10%)`` and ``spec: power 52% (every criterion must PASS)`` (``SpecPower.rows``)."""
    return [f"{label}: {words}" for label, words in power.rows()]
