"""Non-inferiority per metric, and the verdict of one spec.

Per metric the *degradation* is expressed in the tolerance's own units and direction (positive =
worse): absolute points (or metric units) for ``max_drop``/``max_increase``, a fraction of the
baseline for the ``max_relative_*`` forms. With one-sided bounds ``[low, high]`` at the declared
confidence:

- PASS when ``high <= tolerance`` (degradation beyond the tolerance is excluded),
- FAIL when ``low > tolerance`` (degradation within the tolerance is excluded),
- INCONCLUSIVE otherwise; it blocks unless the policy says ``inconclusive: allow``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from gate.errors import InputError
from gate.result import Decision, Finding, MetricResult, Verdict
from gate.spec.models import MetricTolerance
from gate.verdict.intervals import (
    ALPHA_GUARD,
    MIN_ITEMS,
    SKEW_RULE,
    decision_level,
    influence_moments,
    linearised_degradation,
    paired_counts,
    relative_score_bounds,
    relative_score_z,
    skew_t_bounds,
    skew_t_pvalue,
    too_skewed,
)
from gate.verdict.stats import (
    RATIO_KINDS,
    PairedScores,
    _check_confidence,
    _tango_z_scalar,
    aggregate,
    index_chunks,
    mcnemar_exact_p,
    normal_cdf,
    percentile_bounds,
    tango_bounds,
)

InconclusivePolicy = Literal["block", "allow"]
Method = Literal["auto", "bootstrap", "score", "t"]

ABSOLUTE_FORMS = ("max_drop", "max_increase")


def compare_metric(
    tolerance: MetricTolerance,
    scores: PairedScores,
    *,
    confidence: float,
    seed: int = 0,
    resamples: int = 10_000,
    n_total: int | None = None,
    method: Method = "auto",
) -> MetricResult:
    """Baseline vs quantized on one metric, judged against its declared tolerance.

    ``method`` (``auto`` picks by score kind; chosen by measured coverage, see docs/verdict.md):

    - ``score``: binary scores. Absolute tolerances: the paired score interval (Tango 1998; at
      zero margin McNemar's test); relative tolerances: the score test of ``p_quant = (1 - r)
      p_base`` on the paired 2x2 table (``intervals.relative_score_bounds``).
    - ``t``: everything else: a skewness-corrected Student-t bound on the per-item linearised
      degradation (``intervals.skew_t_bounds``); fewer than ``MIN_ITEMS`` items, or items whose
      differences are all identical (zero variance), are never decided.
    - ``bootstrap``: the paired expanded-percentile bootstrap (kept for comparison; it
      under-covers at small n). A look whose resampled degradations have zero variance is never a
      PASS. It reports no p-value.

    Every bound is computed at ``decision_level(confidence)`` (``1 - 0.8 (1 - c)``: a margin for
    the methods' approximation error, so the declared ``1 - c`` holds as an upper bound) and
    reported as a ``confidence`` bound. ``p_value`` is the one-sided p-value of the
    non-inferiority null "degradation >= tolerance" from the same statistic as the upper bound,
    adjusted for that margin (raw p / 0.8): the outcome is PASS exactly when ``p_value < 1 -
    confidence``. FAIL is decided by the lower bound (for ``score`` it is the same statistic).
    """
    _check_confidence(confidence)
    _check_direction(tolerance, scores)
    if n_total is not None and n_total < scores.n:
        raise InputError(
            f"{tolerance.task}/{tolerance.metric}: n_total {n_total} is smaller than the {scores.n} items compared",
            hint="pass the size of the full eval set as n_total (or leave it out)",
        )
    form = tolerance.tolerance_form
    tol = tolerance.tolerance
    sign = 1.0 if tolerance.higher_is_better else -1.0
    base_value, quant_value = scores.aggregates()
    relative = form not in ABSOLUTE_FORMS
    if relative and base_value <= 0:
        raise InputError(
            f"{tolerance.task}/{tolerance.metric}: the baseline scores {base_value:g}, so a relative "
            f"tolerance (`{form}`) is undefined",
            hint="use an absolute tolerance (`max_drop` or `max_increase`) for this metric",
        )
    if method == "auto":
        method = "score" if scores.kind == "binary" else "t"
    if method == "score" and scores.kind != "binary":
        raise InputError(
            f"{tolerance.task}/{tolerance.metric}: the paired score interval needs binary scores",
            hint="use method='t' (the default for real-valued scores)",
        )
    if relative:
        difference = sign * (base_value - quant_value) / base_value
    else:
        difference = sign * (base_value - quant_value) * scores.scale

    note = None
    p_value: float | None
    level = decision_level(confidence)
    if method == "score":
        low, high, p_raw, how = _score_bounds(scores, tol, sign, relative, level)
        outcome = _outcome_from_p(p_raw, level)
        p_value = min(1.0, p_raw / ALPHA_GUARD)
    elif method == "t":
        low, high, p_raw, how, note = _t_bounds(scores, tol, sign, relative, level)
        outcome = Decision.inconclusive if note else _outcome_from_bounds(low, high, tol)
        p_value = min(1.0, p_raw / ALPHA_GUARD)
    else:
        low, high, degenerate = _bootstrap_bounds(scores, tol, sign, relative, level, seed, resamples)
        how = f"paired bootstrap, {resamples} resamples, seed {seed}"
        p_value = None
        outcome = Decision.inconclusive if degenerate else _outcome_from_bounds(low, high, tol)
        if degenerate:
            note = "degenerate look: every resample gives the same degradation, which is never decided"
    return MetricResult(
        task=tolerance.task,
        metric=tolerance.metric,
        n=scores.n,
        n_total=scores.n if n_total is None else n_total,
        baseline=base_value,
        quantized=quant_value,
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        tolerance=tol,
        tolerance_form=form,
        higher_is_better=tolerance.higher_is_better,
        method=how,
        p_value=p_value,
        outcome=outcome,
        note=note,
    )


def _outcome_from_bounds(low: float, high: float, tol: float) -> Decision:
    if high <= tol:
        return Decision.passed
    if low > tol:
        return Decision.failed
    return Decision.inconclusive


def _outcome_from_p(p_value: float, confidence: float) -> Decision:
    if p_value < 1.0 - confidence:
        return Decision.passed
    if p_value > confidence:
        return Decision.failed
    return Decision.inconclusive


def _check_direction(tolerance: MetricTolerance, scores: PairedScores) -> None:
    if scores.kind in RATIO_KINDS and tolerance.higher_is_better:
        raise InputError(
            f"{tolerance.task}/{tolerance.metric}: {scores.kind} is lower-is-better, but the tolerance "
            f"is `{tolerance.tolerance_form}` (a drop)",
            hint="declare `max_increase` or `max_relative_increase` for perplexity-type metrics",
        )


def _score_bounds(
    scores: PairedScores, tol: float, sign: float, relative: bool, confidence: float
) -> tuple[float, float, float, str]:
    right_base, right_quant = scores.discordance()
    worse, better = (right_base, right_quant) if sign > 0 else (right_quant, right_base)
    n = scores.n
    if relative:
        counts = paired_counts(scores.base, scores.quant)
        low_r, high_r = relative_score_bounds(counts, confidence, sign > 0)
        p_value = normal_cdf(float(relative_score_z(counts, tol, sign > 0)))
        how = (
            f"paired score test of the relative change (p_quant = (1 - r) p_base on the 2x2 table), {worse} worse "
            f"and {better} better of {n} items"
        )
        return float(low_r), float(high_r), p_value, how
    low_p, high_p = tango_bounds(worse, better, n, confidence)
    z_margin = _tango_z_scalar(worse, better, n, tol / scores.scale)
    p_value = normal_cdf(z_margin)
    how = (
        f"paired score interval (Tango; McNemar at zero margin), {worse} worse and {better} better "
        f"of {n} items, McNemar exact p={mcnemar_exact_p(worse, better):.3g}"
    )
    return float(low_p) * scores.scale, float(high_p) * scores.scale, p_value, how


def _t_bounds(
    scores: PairedScores, tol: float, sign: float, relative: bool, confidence: float
) -> tuple[float, float, float, str, str | None]:
    theta, influence, log_scale = linearised_degradation(
        scores.kind, scores.base, scores.quant, relative=relative, sign=sign, scale=scores.scale
    )
    est = float(theta)
    margin = math.log1p(tol) if log_scale else tol
    low, high, decidable = skew_t_bounds(est, influence, confidence)
    p_value = skew_t_pvalue(est, influence, margin)
    unit = "document" if scores.kind in RATIO_KINDS else "item"
    what = "log-likelihood ratio" if log_scale else "difference"
    how = f"skewness-corrected t on the paired per-{unit} {what} (t and Hall envelope), df {scores.n - 1}"
    se, skew = influence_moments(np.asarray(influence)[None, :])
    if scores.n >= MIN_ITEMS and bool(too_skewed(np.asarray(influence)[None, :])[0]):
        needed = math.ceil(SKEW_RULE * float(skew[0]) ** 2)
        how += (f"; Cantelli bounds: skewness {float(skew[0]):.2f} needs {needed} {unit}s for the t bound "
                "(n >= 25 skewness^2)")
    to_d = math.expm1 if log_scale else float
    note = None
    if not bool(decidable):
        if scores.n < MIN_ITEMS:
            note = f"too few {unit}s to decide: {scores.n} < {MIN_ITEMS}"
        elif float(se[0]) <= 0.0:
            note = f"degenerate look: every {unit}'s difference is identical (zero variance), which is never decided"
    return to_d(float(low)), to_d(float(high)), p_value, how, note


def _bootstrap_bounds(
    scores: PairedScores, tol: float, sign: float, relative: bool, confidence: float, seed: int, resamples: int
) -> tuple[float, float, bool]:
    if resamples < 100:
        raise InputError(f"{resamples} bootstrap resamples are too few", hint="use at least 1000 (default 10000)")
    draws = []
    per_item = None
    if not relative and scores.kind in ("mean", "binary"):
        # Absolute difference of means = mean of per-item differences: half the work.
        per_item = sign * (scores.base - scores.quant) * scores.scale
    for idx in index_chunks(scores.n, resamples, seed):
        if per_item is not None:
            draws.append(per_item[idx].mean(axis=1))
            continue
        b = aggregate(scores.kind, scores.base, idx)
        q = aggregate(scores.kind, scores.quant, idx)
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                d = sign * (b - q) / b
            # A resample whose baseline aggregate is 0 has an unbounded relative drop.
            d = np.where(b > 0, d, np.inf)
        else:
            d = sign * (b - q) * scores.scale
        draws.append(d)
    all_draws = np.concatenate(draws)
    low, high = percentile_bounds(all_draws, confidence, scores.n)
    finite = all_draws[np.isfinite(all_draws)]
    degenerate = finite.size == all_draws.size and bool(np.ptp(finite) == 0.0)
    return low, high, degenerate


# --- The verdict ---------------------------------------------------------------------------------


def decide(
    metrics: Sequence[MetricResult],
    *,
    findings: Sequence[Finding],
    fidelity_ok: bool | None,
    performance_ok: bool | None,
    fidelity_inconclusive: bool = False,
    inconclusive: InconclusivePolicy = "block",
    extra_reasons: Sequence[str] = (),
    require_metrics: bool = True,
) -> Verdict:
    """The spec's verdict from its metric comparisons, findings and fidelity/performance bounds.

    Intersection-union: the spec PASSES only when every criterion PASSES. Each criterion's own
    test holds its false-PASS rate at ``1 - c``, and a false spec PASS needs all of them, so no
    multiplicity correction is needed (the cost is power: criteria compound on the fail side).

    FAIL if any metric failed, any finding blocks, or fidelity/performance is out of bounds (``None``
    = not measured or, for fidelity, not decided); else ERROR if a metric could not be evaluated;
    else INCONCLUSIVE if any metric is inconclusive or ``fidelity_inconclusive`` (a fidelity
    interval straddles its limit); else PASS. With ``require_metrics`` (the mandatory-validation standard) an
    empty ``metrics`` list FAILS. ``inconclusive`` does not change the decision: an inconclusive
    verdict stays INCONCLUSIVE and ``gate.pipeline.exit.is_blocking(verdict, inconclusive)`` says whether it blocks;
    under ``allow`` a reason line records that the policy let it through. ``extra_reasons``
    (e.g. the fidelity or performance details) follow the failure reasons.
    """
    failed = [m for m in metrics if m.outcome is Decision.failed]
    errored = [m for m in metrics if m.outcome is Decision.error]
    unsure = [m for m in metrics if m.outcome is Decision.inconclusive]
    passed = [m for m in metrics if m.outcome is Decision.passed]
    blocking = [f for f in findings if f.blocking]

    fail_reasons = [describe(m) for m in failed]
    fail_reasons += [_describe_finding(f) for f in blocking]
    if fidelity_ok is False:
        fail_reasons.append("fidelity: outside the declared bounds (max_kl / max_flip_rate) → FAIL")
    if performance_ok is False:
        fail_reasons.append("performance: outside the declared bounds (min_speedup / max_memory_gb) → FAIL")
    if require_metrics and not metrics:
        fail_reasons.append(
            "no quality metric was evaluated: no quantized model ships without passing an evaluation set "
            "against its full-precision baseline → FAIL"
        )

    if fail_reasons:
        decision = Decision.failed
    elif errored:
        decision = Decision.error
    elif unsure or fidelity_inconclusive:
        decision = Decision.inconclusive
    else:
        decision = Decision.passed

    reasons = fail_reasons + list(extra_reasons)
    reasons += [describe(m) for m in errored]
    reasons += [describe(m) for m in unsure]
    if decision is Decision.inconclusive:
        reasons.append(inconclusive_reason(inconclusive))
    reasons += [describe(m) for m in passed]
    return Verdict(decision=decision, reasons=reasons)


def inconclusive_reason(inconclusive: InconclusivePolicy) -> str:
    """The reason line saying whether an INCONCLUSIVE verdict blocks under the policy."""
    if inconclusive == "allow":
        return "inconclusive allowed by policy (inconclusive: allow): not blocking"
    return "inconclusive blocks by default (fail-closed): evaluate more items, or a policy may set inconclusive: allow"


# --- Reason lines --------------------------------------------------------------------------------

_OUTCOME_TEXT = {
    Decision.passed: "PASS",
    Decision.failed: "FAIL",
    Decision.inconclusive: "INCONCLUSIVE",
    Decision.error: "ERROR",
}


def describe(m: MetricResult) -> str:
    """One human line with the estimate, its bounds, the tolerance, the method and n.

    e.g. ``qa/acc: drop 0.80 points [95% bounds -0.40, 2.00] > tolerance 1.00 not excluded
    (paired bootstrap, 10000 resamples, seed 0; n=400) → INCONCLUSIVE``
    """
    what = {
        "max_drop": "drop",
        "max_relative_drop": "relative drop",
        "max_increase": "increase",
        "max_relative_increase": "relative increase",
    }[m.tolerance_form]
    relative = m.tolerance_form not in ABSOLUTE_FORMS
    unit = " points" if not relative and _looks_like_points(m) else ""

    def num(x: float) -> str:
        if relative:
            return f"{x * 100:.2f}%"
        return f"{x:.2f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"

    if m.outcome is Decision.passed:
        compare = f"≤ tolerance {num(m.tolerance)}"
    elif m.outcome is Decision.failed:
        compare = f"> tolerance {num(m.tolerance)}"
    else:
        compare = f"> tolerance {num(m.tolerance)} not excluded"
    n_text = f"n={m.n}" if m.n_total in (None, m.n) else f"n={m.n} of {m.n_total}"
    line = (
        f"{m.task}/{m.metric}: {what} {num(m.difference)}{unit} "
        f"[{_percent(m.confidence)} bounds {num(m.ci_low)}, {num(m.ci_high)}] {compare} "
        f"({m.method}; {n_text}) → {_OUTCOME_TEXT[m.outcome]}"
    )
    if m.note:
        line += f" ({m.note})"
    return line


def _looks_like_points(m: MetricResult) -> bool:
    name = m.metric.lower()
    if "perplexity" in name or "bits_per_byte" in name:
        return False
    return 0.0 <= m.baseline <= 1.0 and 0.0 <= m.quantized <= 1.0


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.5g}%"


def _describe_finding(f: Finding) -> str:
    where = f" {f.location}" if f.location else ""
    return f"{f.rule_id}{where}: {f.message} → FAIL"
