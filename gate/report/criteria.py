"""Every criterion of one result as a reviewer reads it: what was measured, against which limit.

One ``Criterion`` per task metric, fidelity limit and performance/memory constraint (plus the
speed and memory comparisons a constraint is about), with values already rounded and in the
units a person expects (accuracy in %, drops in points, memory in GB, throughput in tok/s), and
``deciding_reason`` — the one sentence that says why a result got its decision. Pure functions
over ``GateResult``; the Markdown and terminal reports render these rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from gate.report.safe import one_line
from gate.report.summary import RELATIVE_FORMS, plural
from gate.result import Decision, Finding, GateResult, MetricResult

if TYPE_CHECKING:
    from pydantic import BaseModel

    from gate.evaluate.interface import FidelityResult, PerformanceResult

Section = TypeVar("Section", bound="BaseModel")


def section(data: dict[str, Any] | None, model: type[Section]) -> Section | None:
    """A result section as its typed model; None when absent or of a shape this gate cannot read
    (a result written by another version), so a renderer leaves the rows out instead of failing."""
    if not data:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def fidelity_of(r: GateResult) -> FidelityResult | None:
    from gate.evaluate.interface import FidelityResult

    return section(r.fidelity, FidelityResult)


def performance_of(r: GateResult) -> PerformanceResult | None:
    from gate.evaluate.interface import PerformanceResult

    return section(r.performance, PerformanceResult)

GB = 1e9


class Group(StrEnum):
    quality = "quality"
    fidelity = "fidelity"
    performance = "performance"


@dataclass(frozen=True)
class Gauge:
    """A degradation interval against its limit, in the limit's units (larger = worse)."""

    low: float
    estimate: float
    high: float
    limit: float


@dataclass(frozen=True)
class Criterion:
    """One row of the criteria table."""

    group: Group
    name: str
    baseline: str
    candidate: str
    change: str
    """The signed change (candidate vs baseline), with its confidence interval where there is one."""
    limit: str
    """The limit in words (``drop ≤ 1 pt``), or ``—`` for a comparison without a limit."""
    outcome: Decision | None
    """None: not judged (no limit, or measured where it cannot be judged)."""
    note: str | None = None
    """Why it was not judged, or how many more items an inconclusive comparison needs."""
    reason: str = ""
    """The criterion as a sentence, for the decision line."""
    margin: float | None = None
    """Worst bound over limit (1 = at the limit); ranks how close a passing criterion came."""
    gauge: Gauge | None = None


# ---- numbers as people read them ------------------------------------------------------------------

MINUS = "\u2212"
"""A real minus sign (U+2212), as typeset numbers use."""
TIMES = "\u00d7"
"""The multiplication sign (U+00D7) of ratios (1.30 times)."""


def fixed(value: float, decimals: int, *, sign: bool = False) -> str:
    """``value`` with ``decimals`` decimals, a real minus sign and no ``-0``."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return ("+" if value > 0 and sign else (MINUS if value < 0 else "")) + "∞"
    text = f"{abs(value):.{decimals}f}"
    if float(text) == 0:
        return text if not sign else "±" + text
    prefix = MINUS if value < 0 else ("+" if sign else "")
    return prefix + text


def sig(value: float, digits: int = 3, *, sign: bool = False) -> str:
    """``digits`` significant digits, fixed notation for everyday magnitudes."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return fixed(value, 0, sign=sign)
    magnitude = math.floor(math.log10(abs(value)))
    return fixed(value, max(0, digits - 1 - magnitude), sign=sign)


def gigabytes(value_bytes: float) -> str:
    gb = value_bytes / GB
    return f"{fixed(gb, 2)} GB" if gb >= 0.1 else f"{fixed(value_bytes / 1e6, 0)} MB"


def percent_change(ratio: float) -> str:
    """``+30% (1.30x)`` (with a real times sign) for a ratio of candidate over baseline."""
    return f"{fixed((ratio - 1) * 100, 0, sign=True)}% ({fixed(ratio, 2)}{TIMES})"


# ---- task metrics --------------------------------------------------------------------------------


def in_points(m: MetricResult) -> bool:
    """Absolute tolerances on a 0-1 score are in percentage points (acc 0.73 = 73 points)."""
    if m.tolerance_form in RELATIVE_FORMS:
        return False
    name = m.metric.lower()
    if "perplexity" in name or "bits_per_byte" in name:
        return False
    return 0.0 <= m.baseline <= 1.0 and 0.0 <= m.quantized <= 1.0


def metric_value(m: MetricResult, value: float) -> str:
    if in_points(m):
        return f"{fixed(value * 100, 2)}%"
    return sig(value, 4)


def _degradation(m: MetricResult, value: float, *, sign: bool = False, unit: bool = True) -> str:
    """A degradation-unit number (points, a fraction, metric units) as text."""
    if m.tolerance_form in RELATIVE_FORMS:
        return f"{fixed(value * 100, 1, sign=sign)}%"
    if in_points(m):
        return f"{fixed(value, 1, sign=sign)}" + (" pts" if unit else "")
    return sig(value, 3, sign=sign)


def _interval(m: MetricResult) -> str:
    """``95% CI -3.7 to -1.1`` of the signed change (the unit is on the estimate)."""
    s = _direction(m)
    low, high = sorted((s * m.ci_low, s * m.ci_high))
    return (f"{confidence(m.confidence)} CI {_degradation(m, low, sign=True, unit=False)} to "
            f"{_degradation(m, high, sign=True, unit=False)}")


def _direction(m: MetricResult) -> float:
    """Degradation to signed change: a drop is negative for higher-is-better metrics."""
    return -1.0 if m.higher_is_better else 1.0


def metric_change(m: MetricResult) -> str:
    """``-2.4 pts (95% CI -3.7 to -1.1)`` (real minus signs): candidate minus baseline, in the tolerance's units."""
    return f"{_degradation(m, _direction(m) * m.difference, sign=True)} ({_interval(m)})"


def confidence(level: float) -> str:
    return f"{declared(level * 100)}%"


def declared(value: float) -> str:
    """A value as a person declared it: up to 4 significant digits, no trailing zeros (``1``, ``0.05``)."""
    text = sig(value, 4)
    return text.rstrip("0").rstrip(".") if "." in text else text


LIMIT_WORD = {"max_drop": "drop", "max_relative_drop": "drop", "max_increase": "increase",
              "max_relative_increase": "increase"}


def tolerance_text(m: MetricResult) -> str:
    """The declared tolerance: ``1 pt``, ``2.5 pts``, ``5%``, ``0.5``."""
    if m.tolerance_form in RELATIVE_FORMS:
        return f"{declared(m.tolerance * 100)}%"
    if in_points(m):
        value = declared(m.tolerance)
        return f"{value} pt" if value == "1" else f"{value} pts"
    return declared(m.tolerance)


def metric_limit(m: MetricResult) -> str:
    """``drop ≤ 1 pt``, ``increase ≤ 5%``."""
    return f"{LIMIT_WORD.get(m.tolerance_form, 'change')} ≤ {tolerance_text(m)}"


def _worse(m: MetricResult) -> str:
    word = LIMIT_WORD.get(m.tolerance_form, "changed")
    return {"drop": "dropped", "increase": "increased"}.get(word, word)


def items_needed(m: MetricResult) -> int | None:
    """Items (in total) an inconclusive comparison needs to decide.

    The verdict's own sample-size projection (``MetricResult.n_needed``, 80% power) when the
    result carries one; for results written before it, projected
    from the interval: its half-width shrinks as 1/sqrt(n), so with the observed difference the
    bound on the side of the decision reaches the limit at ``n * (half-width / distance)**2``.
    """
    if m.n_needed is not None and m.n_needed > 0:
        return m.n_needed
    d, tol = m.difference, m.tolerance
    if d < tol:
        half, gap = m.ci_high - d, tol - d
    else:
        half, gap = d - m.ci_low, d - tol
    if m.n <= 0 or half <= 0 or gap <= 0:
        return None
    return math.ceil(m.n * (half / gap) ** 2)


def inconclusive_note(m: MetricResult) -> str:
    needed = items_needed(m)
    if needed is None:
        return "the estimate sits on the limit: more items alone may not decide it"
    more = max(needed - m.n, 1)
    if needed > 1_000_000:
        return "over a million items projected: the estimate is too close to the limit to decide"
    return f"≈ {more:,} more items projected to decide ({needed:,} in all)"


def metric_name(m: MetricResult) -> str:
    return m.metric if m.task == m.metric else f"{m.task} {m.metric}"


def metric_criterion(m: MetricResult) -> Criterion:
    name = metric_name(m)
    n = f"n={m.n:,}" if m.n_total in (None, m.n) else f"n={m.n:,} of {m.n_total:,}"
    change = metric_change(m)
    s = _direction(m)
    interval = _interval(m)
    amount = _degradation(m, abs(m.difference))
    limit = tolerance_text(m)
    note = m.note
    if m.outcome is Decision.failed:
        reason = f"{name} {_worse(m)} {amount} ({interval}), over its {limit} limit"
    elif m.outcome is Decision.inconclusive:
        note = "; ".join(x for x in (inconclusive_note(m), m.note) if x)
        reason = f"{name} changed {_degradation(m, s * m.difference, sign=True)} ({interval}): the {limit} limit is inside the interval, {inconclusive_note(m)}"
    elif m.outcome is Decision.error:
        reason = f"{name} could not be measured" + (f": {m.note}" if m.note else "")
    else:
        reason = f"{name} changed {_degradation(m, s * m.difference, sign=True)} ({interval}), within its {limit} limit"
    margin = m.ci_high / m.tolerance if m.tolerance > 0 else None
    return Criterion(
        group=Group.quality, name=f"{name} ({n})", baseline=metric_value(m, m.baseline),
        candidate=metric_value(m, m.quantized), change=change, limit=metric_limit(m), outcome=m.outcome,
        note=note, reason=reason, margin=margin,
        gauge=Gauge(m.ci_low, m.difference, m.ci_high, m.tolerance) if m.tolerance > 0 else None,
    )


# ---- fidelity ------------------------------------------------------------------------------------


def _bound_outcome(low: float, high: float, limit: float) -> Decision:
    if high <= limit:
        return Decision.passed
    if low > limit:
        return Decision.failed
    return Decision.inconclusive


def fidelity_criteria(r: GateResult) -> list[Criterion]:
    f = fidelity_of(r)
    if f is None:
        return []
    level = confidence(f.confidence)
    where = f"on {f.tokens:,} tokens of {one_line(f.texts)}"
    rows: list[Criterion] = []
    kl: tuple[Callable[[float], str], Callable[[float], str]] = (
        lambda x: f"{sig(x, 3)} nats", lambda x: f"{declared(x)} nats")
    flips: tuple[Callable[[float], str], Callable[[float], str]] = (
        lambda x: f"{fixed(x * 100, 1)}%", lambda x: f"{declared(x * 100)}%")
    for label, value, low, high, limit, judged, (unit_value, limit_value) in (
        ("KL divergence", f.kl_mean, f.kl_ci_low, f.kl_ci_high, f.max_kl, f.kl_outcome, kl),
        ("top-1 flip rate", f.flip_rate, f.flip_ci_low, f.flip_ci_high, f.max_flip_rate, f.flip_outcome, flips),
    ):
        # The gate's own outcome; bounds alone only for results recorded before it was kept.
        if limit is None:
            outcome = None
        elif judged is not None:
            outcome = Decision(judged)
        else:
            outcome = _bound_outcome(low, high, limit)
        interval = f"{level} CI {unit_value(low).removesuffix(' nats')} to {unit_value(high)}"
        limit_text = limit_value(limit) if limit is not None else "—"
        if limit is None:
            reason = f"{label} {unit_value(value)} ({interval}), no limit set"
        elif outcome is Decision.failed:
            reason = f"{label} {unit_value(value)} ({interval}) {where}, over its {limit_text} limit"
        elif outcome is Decision.inconclusive and f.undecided:
            reason = (f"{label} {unit_value(value)} ({interval}) {where}: not decided against its "
                      f"{limit_text} limit ({f.undecided}); compare more texts to decide")
        elif outcome is Decision.inconclusive:
            reason = (f"{label} {unit_value(value)} ({interval}) {where}: the {limit_text} limit is "
                      "inside the interval; compare more tokens to decide")
        else:
            reason = f"{label} {unit_value(value)} ({interval}), within its {limit_text} limit"
        rows.append(Criterion(
            group=Group.fidelity, name=f"{label} ({f.tokens:,} tokens)", baseline="—",
            candidate=unit_value(value), change=interval, limit=f"≤ {limit_text}" if limit is not None else "—",
            outcome=outcome, note="compare more tokens to decide" if outcome is Decision.inconclusive else None,
            reason=reason, margin=high / limit if limit else None,
            gauge=Gauge(low, value, high, limit) if limit else None,
        ))
    return rows


# ---- performance and memory ----------------------------------------------------------------------


def _check_outcome(passed: bool | None) -> Decision | None:
    return None if passed is None else (Decision.passed if passed else Decision.failed)


def performance_criteria(r: GateResult) -> list[Criterion]:
    p = performance_of(r)
    if p is None:
        return []
    checks = {c.name: c for c in p.checks}
    rows: list[Criterion] = []
    memory_kind = "GPU" if p.quantized.memory_kind.startswith("cuda") else "process RSS"
    base_mem, quant_mem = p.baseline.peak_memory_bytes, p.quantized.peak_memory_bytes
    check = checks.pop("memory.peak_gb", None)
    change = percent_change(quant_mem / base_mem) if base_mem else "—"
    outcome = _check_outcome(check.passed) if check else None
    rows.append(Criterion(
        group=Group.performance, name=f"peak memory ({memory_kind})", baseline=gigabytes(base_mem),
        candidate=gigabytes(quant_mem), change=change,
        limit=f"≤ {declared(check.target)} GB" if check else "—", outcome=outcome,
        note=one_line(check.note) if check and check.note else None,
        reason=(f"peak memory {gigabytes(quant_mem)} against its {declared(check.target)} GB limit" if check
                else f"peak memory {gigabytes(base_mem)} → {gigabytes(quant_mem)}"),
        margin=(quant_mem / GB) / check.target if check and check.target else None,
    ))
    for batch, tps in p.quantized.tokens_per_s.items():
        base_tps = p.baseline.tokens_per_s.get(batch)
        limits: list[str] = []
        outcomes: list[Decision | None] = []
        notes: list[str] = []
        margin: float | None = None
        tps_check = checks.pop(f"throughput.tokens_per_s@batch{batch}", None)
        speed_check = checks.pop(f"throughput.speedup@batch{batch}", None)
        for c, text in ((tps_check, lambda t: f"≥ {declared(t)} tok/s"), (speed_check, lambda t: f"≥ {declared(t)}{TIMES} baseline")):
            if c is None:
                continue
            limits.append(text(c.target))
            outcomes.append(_check_outcome(c.passed))
            if c.note:
                notes.append(one_line(c.note))
            if c.measured > 0:
                margin = max(margin or 0.0, c.target / c.measured)
        outcome = (Decision.failed if Decision.failed in outcomes else
                   (None if not outcomes or None in outcomes else Decision.passed))
        ratio = tps / base_tps if base_tps else None
        rows.append(Criterion(
            group=Group.performance, name=f"throughput, batch {batch}",
            baseline=f"{fixed(base_tps, 1)} tok/s" if base_tps else "—", candidate=f"{fixed(tps, 1)} tok/s",
            change=percent_change(ratio) if ratio else "—", limit=" and ".join(limits) or "—", outcome=outcome,
            note="; ".join(dict.fromkeys(notes)) or None,
            reason=(f"throughput at batch {batch} {fixed(tps, 1)} tok/s"
                    + (f" ({fixed(ratio, 2)}{TIMES} baseline)" if ratio else "")
                    + (f" against its limit {' and '.join(limits)}" if limits else "")),
            margin=margin,
        ))
    for name, c in checks.items():  # cost, or a check this view does not know yet
        label = "cost per million tokens" if name.startswith("cost.") else name.replace("_", " ").replace(".", " ")
        value = f"${fixed(c.measured, 2)}" if name.startswith("cost.") else sig(c.measured, 3)
        target = f"${fixed(c.target, 2)}" if name.startswith("cost.") else sig(c.target, 3)
        rows.append(Criterion(
            group=Group.performance, name=label, baseline="—", candidate=value, change="—", limit=f"≤ {target}",
            outcome=_check_outcome(c.passed), note=one_line(c.note) if c.note else None,
            reason=f"{label} {value} against its {target} limit",
            margin=c.measured / c.target if c.target else None,
        ))
    return rows


_MEMO: dict[int, tuple[GateResult, list[Criterion]]] = {}
_MEMO_SIZE = 4096


def criteria(r: GateResult) -> list[Criterion]:
    """Every criterion of a result: task metrics, then fidelity, then performance and memory.

    Results are frozen and one report asks for each result's criteria several times (headline,
    overview, section, truncation), so they are remembered per result object.
    """
    hit = _MEMO.get(id(r))
    if hit is not None and hit[0] is r:
        return hit[1]
    rows = [metric_criterion(m) for m in r.metrics] + fidelity_criteria(r) + performance_criteria(r)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()
    _MEMO[id(r)] = (r, rows)
    return rows


# ---- the deciding reason -------------------------------------------------------------------------


def finding_sentence(f: Finding) -> str:
    where = f" at {one_line(f.location)}" if f.location else ""
    return f"{f.rule_id} {f.slug}{where}: {one_line(f.message)}"


def constraint_warnings(r: GateResult) -> list[str]:
    """Plain sentences for a constraint the quantization defeats (memory went up, speed went down).

    Findings the evaluation raised about constraints (``constraint.*`` rules from a run-time
    stage, e.g. QG702/QG703) are shown as they are; without one (results from before those rules),
    the sentence is derived from the measurements taken on the target's kind of device.
    """
    raised = [one_line(f.message) for f in r.findings
              if f.slug.startswith("constraint.") and f.stage not in ("spec", "policy", "weights", "plan")]
    if raised:
        return raised
    p = performance_of(r)
    if p is None:
        return []
    if any(c.passed is None for c in p.checks):
        return []  # measured off the target's kind of device: ratios say little (as QG702/QG703 judge)
    out: list[str] = []
    base, quant = p.baseline.peak_memory_bytes, p.quantized.peak_memory_bytes
    if p.constraint == "memory" and base and quant > base:
        out.append(f"This spec is memory-bound, but the quantized model used more memory than its baseline: "
                   f"peak {gigabytes(base)} → {gigabytes(quant)} ({fixed(quant / base, 2)}{TIMES}).")
    if p.constraint == "throughput":
        slower = {b: s for b, s in p.speedup.items() if s < 1.0}
        if slower:
            parts = ", ".join(f"{fixed(s, 2)}{TIMES} at batch {b}" for b, s in slower.items())
            out.append(f"This spec is throughput-bound, but the quantized model is slower than its baseline: {parts}.")
    return out


def deciding_reason(r: GateResult) -> str:
    """Why ``r`` got its decision, in one sentence naming the criterion, value, interval and limit."""
    rows = criteria(r)
    decision = r.verdict.decision
    if decision is Decision.error:
        text = r.error or (r.verdict.reasons[0] if r.verdict.reasons else "the gate could not decide")
        return one_line(text.split("\n", 1)[0])
    if decision in (Decision.failed, Decision.inconclusive):
        same = [c for c in rows if c.outcome is decision]
        same.sort(key=lambda c: -(c.margin or 0.0))
        if same:
            return same[0].reason
        blocking = [f for f in r.findings if f.blocking]
        if blocking:
            return finding_sentence(blocking[0])
        return one_line(r.verdict.reasons[0]) if r.verdict.reasons else decision.value
    judged = [c for c in rows if c.outcome is Decision.passed and c.margin is not None]
    if judged:
        closest = max(judged, key=lambda c: c.margin or 0.0)
        count = sum(1 for c in rows if c.outcome is Decision.passed)
        return f"{plural(count, 'criterion', 'criteria')} within limits; closest: {closest.reason}"
    if r.command == "check":
        checks = f" ({plural(r.checks, 'rule check')})" if r.checks else ""
        return f"all static checks passed{checks}"
    return one_line(r.verdict.reasons[0]) if r.verdict.reasons else "passed"
