"""Every criterion of one result as a reviewer reads it: what was measured, against which limit.

One ``Row`` per criterion of the result (``GateResult.criteria``: task metrics, fidelity limits,
performance and memory constraints, and the comparisons a constraint is about), with values
already rounded and in the units a person expects (accuracy in %, drops in points, memory in GB,
throughput in tok/s), and ``deciding_reason`` — the one sentence that says why a result got its
decision. Pure functions over the typed result; the Markdown and terminal reports render these rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gate.report.safe import one_line
from gate.report.summary import RELATIVE_FORMS, plural
from gate.result import Criterion, CriterionKind, Decision, Finding, GateResult, LimitForm

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
class Row:
    """One row of the criteria table: a ``gate.result.Criterion`` in words."""

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


@dataclass(frozen=True)
class Comparison:
    """A metric criterion's numbers, all present (``gate.result_build.metric_criterion`` sets them)."""

    name: str
    baseline: float
    candidate: float
    difference: float
    """Signed degradation in tolerance units (positive = worse)."""
    ci_low: float
    ci_high: float
    confidence: float
    tolerance: float
    form: str
    higher_is_better: bool
    n: int

    @classmethod
    def of(cls, c: Criterion) -> Comparison:
        return cls(name=c.name, baseline=_num(c.baseline), candidate=_num(c.candidate), difference=_num(c.change),
                   ci_low=_num(c.ci_low), ci_high=_num(c.ci_high), confidence=_num(c.confidence, 0.95),
                   tolerance=c.limit.value if c.limit else math.nan,
                   form=c.limit.form.value if c.limit else "", higher_is_better=c.higher_is_better is not False,
                   n=c.n or 0)


def _num(value: float | None, default: float = math.nan) -> float:
    return default if value is None else value


def in_points(m: Comparison) -> bool:
    """Absolute tolerances on a 0-1 score are in percentage points (acc 0.73 = 73 points)."""
    if m.form in RELATIVE_FORMS:
        return False
    name = m.name.lower()
    if "perplexity" in name or "bits_per_byte" in name:
        return False
    return 0.0 <= m.baseline <= 1.0 and 0.0 <= m.candidate <= 1.0


def metric_value(m: Comparison, value: float) -> str:
    if in_points(m):
        return f"{fixed(value * 100, 2)}%"
    return sig(value, 4)


def _degradation(m: Comparison, value: float, *, sign: bool = False, unit: bool = True) -> str:
    """A degradation-unit number (points, a fraction, metric units) as text."""
    if m.form in RELATIVE_FORMS:
        return f"{fixed(value * 100, 1, sign=sign)}%"
    if in_points(m):
        return f"{fixed(value, 1, sign=sign)}" + (" pts" if unit else "")
    return sig(value, 3, sign=sign)


def _interval(m: Comparison) -> str:
    """``95% CI -3.7 to -1.1`` of the signed change (the unit is on the estimate)."""
    s = _direction(m)
    low, high = sorted((s * m.ci_low, s * m.ci_high))
    return (f"{confidence(m.confidence)} CI {_degradation(m, low, sign=True, unit=False)} to "
            f"{_degradation(m, high, sign=True, unit=False)}")


def _direction(m: Comparison) -> float:
    """Degradation to signed change: a drop is negative for higher-is-better metrics."""
    return -1.0 if m.higher_is_better else 1.0


def metric_change(m: Comparison) -> str:
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


def tolerance_text(m: Comparison) -> str:
    """The declared tolerance: ``1 pt``, ``2.5 pts``, ``5%``, ``0.5``."""
    if m.form in RELATIVE_FORMS:
        return f"{declared(m.tolerance * 100)}%"
    if in_points(m):
        value = declared(m.tolerance)
        return f"{value} pt" if value == "1" else f"{value} pts"
    return declared(m.tolerance)


def metric_limit(m: Comparison) -> str:
    """``drop ≤ 1 pt``, ``increase ≤ 5%``."""
    return f"{LIMIT_WORD.get(m.form, 'change')} ≤ {tolerance_text(m)}"


def _worse(m: Comparison) -> str:
    word = LIMIT_WORD.get(m.form, "changed")
    return {"drop": "dropped", "increase": "increased"}.get(word, word)


def items_needed(c: Criterion) -> int | None:
    """Items (in total) an inconclusive comparison needs to decide.

    The verdict's own sample-size projection (``n_needed``, 80% power) when the criterion carries
    one; for results written before it, projected from the interval: its half-width shrinks as
    1/sqrt(n), so with the observed difference the bound on the side of the decision reaches the
    limit at ``n * (half-width / distance)**2``.
    """
    if c.n_needed is not None and c.n_needed > 0:
        return c.n_needed
    m = Comparison.of(c)
    d, tol = m.difference, m.tolerance
    if d < tol:
        half, gap = m.ci_high - d, tol - d
    else:
        half, gap = d - m.ci_low, d - tol
    if m.n <= 0 or not half > 0 or not gap > 0:
        return None
    return math.ceil(m.n * (half / gap) ** 2)


def inconclusive_note(c: Criterion) -> str:
    needed = items_needed(c)
    if needed is None:
        return "the estimate sits on the limit: more items alone may not decide it"
    more = max(needed - (c.n or 0), 1)
    if needed > 1_000_000:
        return "over a million items projected: the estimate is too close to the limit to decide"
    return f"≈ {more:,} more items projected to decide ({needed:,} in all)"


def metric_name(c: Criterion) -> str:
    task, metric = c.task or c.name, c.metric or c.name
    return metric if task == metric else f"{task} {metric}"


def metric_row(c: Criterion) -> Row:
    m = Comparison.of(c)
    name = metric_name(c)
    n = f"n={m.n:,}" if c.n_total in (None, c.n) else f"n={m.n:,} of {c.n_total:,}"
    s = _direction(m)
    interval = _interval(m)
    amount = _degradation(m, abs(m.difference))
    limit = tolerance_text(m)
    note = c.note
    if c.outcome is Decision.failed:
        reason = f"{name} {_worse(m)} {amount} ({interval}), over its {limit} limit"
    elif c.outcome is Decision.inconclusive:
        note = "; ".join(x for x in (inconclusive_note(c), c.note) if x)
        reason = f"{name} changed {_degradation(m, s * m.difference, sign=True)} ({interval}): the {limit} limit is inside the interval, {inconclusive_note(c)}"
    elif c.outcome is Decision.error:
        reason = f"{name} could not be measured" + (f": {c.note}" if c.note else "")
    else:
        reason = f"{name} changed {_degradation(m, s * m.difference, sign=True)} ({interval}), within its {limit} limit"
    margin = m.ci_high / m.tolerance if m.tolerance > 0 else None
    return Row(
        group=Group.quality, name=f"{name} ({n})", baseline=metric_value(m, m.baseline),
        candidate=metric_value(m, m.candidate), change=metric_change(m), limit=metric_limit(m), outcome=c.outcome,
        note=note, reason=reason, margin=margin,
        gauge=Gauge(m.ci_low, m.difference, m.ci_high, m.tolerance) if m.tolerance > 0 else None,
    )


# ---- fidelity ------------------------------------------------------------------------------------

FIDELITY_LABEL = {"fidelity/kl": "KL divergence", "fidelity/flip_rate": "top-1 flip rate"}


def fidelity_row(r: GateResult, c: Criterion) -> Row:
    label = FIDELITY_LABEL.get(c.name, c.name)
    value, low, high = _num(c.candidate), _num(c.ci_low), _num(c.ci_high)
    limit = c.limit.value if c.limit else None
    tokens = c.n or 0
    texts = r.fidelity.texts if r.fidelity else "the fidelity texts"
    where = f"on {tokens:,} tokens of {one_line(texts)}"
    formats: tuple[Callable[[float], str], Callable[[float], str]] = (
        (lambda x: f"{sig(x, 3)} nats", lambda x: f"{declared(x)} nats") if c.unit == "nats" else
        (lambda x: f"{fixed(x * 100, 1)}%", lambda x: f"{declared(x * 100)}%"))
    unit_value, limit_value = formats
    outcome = c.outcome
    interval = f"{confidence(_num(c.confidence, 0.95))} CI {unit_value(low).removesuffix(' nats')} to {unit_value(high)}"
    limit_text = limit_value(limit) if limit is not None else "—"
    if limit is None:
        reason = f"{label} {unit_value(value)} ({interval}), no limit set"
    elif outcome is Decision.failed:
        reason = f"{label} {unit_value(value)} ({interval}) {where}, over its {limit_text} limit"
    elif outcome is Decision.inconclusive and c.note:
        reason = (f"{label} {unit_value(value)} ({interval}) {where}: not decided against its "
                  f"{limit_text} limit ({c.note}); compare more texts to decide")
    elif outcome is Decision.inconclusive:
        reason = (f"{label} {unit_value(value)} ({interval}) {where}: the {limit_text} limit is "
                  "inside the interval; compare more tokens to decide")
    else:
        reason = f"{label} {unit_value(value)} ({interval}), within its {limit_text} limit"
    return Row(
        group=Group.fidelity, name=f"{label} ({tokens:,} tokens)", baseline="—",
        candidate=unit_value(value), change=interval, limit=f"≤ {limit_text}" if limit is not None else "—",
        outcome=outcome, note="compare more tokens to decide" if outcome is Decision.inconclusive else None,
        reason=reason, margin=high / limit if limit else None,
        gauge=Gauge(low, value, high, limit) if limit else None,
    )


# ---- performance and memory ----------------------------------------------------------------------


def memory_row(c: Criterion) -> Row:
    kind = "GPU" if (c.measured_as or "").startswith("cuda") else "process RSS"
    base, cand = _num(c.baseline) * GB, _num(c.candidate) * GB
    limit = c.limit.value if c.limit else None
    return Row(
        group=Group.performance, name=f"peak memory ({kind})", baseline=gigabytes(base), candidate=gigabytes(cand),
        change=percent_change(c.change) if c.change else "—",
        limit=f"≤ {declared(limit)} GB" if limit is not None else "—", outcome=c.outcome,
        note=one_line(c.note) if c.note else None,
        reason=(f"peak memory {gigabytes(cand)} against its {declared(limit)} GB limit" if limit is not None
                else f"peak memory {gigabytes(base)} → {gigabytes(cand)}"),
        margin=(cand / GB) / limit if limit else None,
    )


def _limit_words(c: Criterion) -> str:
    assert c.limit is not None
    if c.limit.form is LimitForm.min_ratio:
        return f"≥ {declared(c.limit.value)}{TIMES} baseline"
    if c.limit.form is LimitForm.min:
        return f"≥ {declared(c.limit.value)} tok/s"
    return f"≤ {declared(c.limit.value)}"


def throughput_row(batch: int | None, same: list[Criterion]) -> Row:
    """One row per batch size: the criteria judging its throughput (tokens/s, speed-up) together."""
    first = same[0]
    tps, base_tps, ratio = _num(first.candidate), first.baseline, first.change
    judged = [c for c in same if c.limit is not None]
    limits = [_limit_words(c) for c in judged]
    outcomes = [c.outcome for c in judged]
    notes = [one_line(c.note) for c in judged if c.note]
    margin: float | None = None
    for c in judged:
        assert c.limit is not None
        measured = _num(c.change) if c.limit.form is LimitForm.min_ratio else tps
        if measured > 0:
            margin = max(margin or 0.0, c.limit.value / measured)
    outcome = (Decision.failed if Decision.failed in outcomes else
               (None if not outcomes or None in outcomes else Decision.passed))
    label = f"batch {batch}" if batch is not None else first.name
    return Row(
        group=Group.performance, name=f"throughput, {label}",
        baseline=f"{fixed(base_tps, 1)} tok/s" if base_tps else "—", candidate=f"{fixed(tps, 1)} tok/s",
        change=percent_change(ratio) if ratio else "—", limit=" and ".join(limits) or "—", outcome=outcome,
        note="; ".join(dict.fromkeys(notes)) or None,
        reason=(f"throughput at {label} {fixed(tps, 1)} tok/s"
                + (f" ({fixed(ratio, 2)}{TIMES} baseline)" if ratio else "")
                + (f" against its limit {' and '.join(limits)}" if limits else "")),
        margin=margin,
    )


def other_row(c: Criterion) -> Row:
    """Cost, or a criterion this view does not know yet: the candidate against its limit."""
    cost = c.kind is CriterionKind.cost
    label = "cost per million tokens" if cost else c.name.replace("_", " ").replace(".", " ")
    value = f"${fixed(_num(c.candidate), 2)}" if cost else sig(_num(c.candidate), 3)
    limit = c.limit.value if c.limit else None
    target = "—" if limit is None else (f"${fixed(limit, 2)}" if cost else sig(limit, 3))
    return Row(
        group=Group.performance, name=label, baseline="—", candidate=value, change="—",
        limit=f"≤ {target}" if limit is not None else "—", outcome=c.outcome,
        note=one_line(c.note) if c.note else None, reason=f"{label} {value} against its {target} limit",
        margin=_num(c.candidate) / limit if limit else None,
    )


def _row(r: GateResult, c: Criterion) -> Row:
    if c.kind is CriterionKind.metric:
        return metric_row(c)
    if c.kind is CriterionKind.fidelity:
        return fidelity_row(r, c)
    if c.kind is CriterionKind.memory:
        return memory_row(c)
    return other_row(c)


def criterion_label(c: Criterion) -> str:
    """A criterion's name in words, stable across runs (no item counts): ``support_qa acc``,
    ``KL divergence``, ``peak memory``, ``speed-up, batch 4``."""
    if c.kind is CriterionKind.metric:
        return metric_name(c)
    if c.kind is CriterionKind.fidelity:
        return FIDELITY_LABEL.get(c.name, c.name)
    if c.kind is CriterionKind.memory:
        return "peak memory"
    if c.kind is CriterionKind.throughput and c.batch is not None:
        if c.limit is not None and c.limit.form is LimitForm.min_ratio:
            return f"speed-up, batch {c.batch}"
        return f"throughput, batch {c.batch}"
    if c.kind is CriterionKind.cost:
        return "cost per million tokens"
    return c.name.replace("_", " ").replace(".", " ")


def row_of(r: GateResult, c: Criterion) -> Row:
    """One criterion alone as a row (JUnit gives each criterion its own test case)."""
    if c.kind is CriterionKind.throughput and c.unit == "tokens/s":
        return throughput_row(c.batch, [c])
    return _row(r, c)


_MEMO: dict[int, tuple[GateResult, list[Row]]] = {}
_MEMO_SIZE = 4096


def criteria(r: GateResult) -> list[Row]:
    """Every criterion of a result as a row, in the result's order (metrics, fidelity, performance);
    the throughput criteria of one batch size (tokens/s, speed-up) share one row.

    Results are frozen and one report asks for each result's rows several times (headline,
    overview, section, truncation), so they are remembered per result object.
    """
    hit = _MEMO.get(id(r))
    if hit is not None and hit[0] is r:
        return hit[1]
    slots: list[Row | list[Criterion]] = []
    by_batch: dict[int | None, list[Criterion]] = {}
    for c in r.criteria:
        if c.kind is CriterionKind.throughput and c.unit == "tokens/s":
            group = by_batch.get(c.batch)
            if group is None:
                group = by_batch[c.batch] = []
                slots.append(group)
            group.append(c)
        else:
            slots.append(_row(r, c))
    rows = [throughput_row(s[0].batch, s) if isinstance(s, list) else s for s in slots]
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

    A candidate computed on dequantized weights (``runtime.serving.fallback``) comes first. Findings
    the evaluation raised about constraints (``constraint.*`` rules from a run-time stage, e.g.
    QG702/QG703) are shown as they are; without one (results from before those rules),
    the sentence is derived from the measurements taken on the target's kind of device.
    """
    serving = r.runtime.serving
    fallback = [] if serving is None or serving.fallback is None else [
        f"Memory and speed are not the serving numbers: {serving.fallback.message}."]
    raised = [one_line(f.message) for f in r.findings
              if f.slug.startswith("constraint.") and f.stage not in ("spec", "policy", "weights", "plan")]
    if raised or fallback:
        return fallback + raised
    p = r.performance
    measured = [c for c in r.criteria if c.kind in (CriterionKind.memory, CriterionKind.throughput, CriterionKind.cost)]
    if p is None or not measured:
        return []
    if any(c.limit is not None and c.outcome is None for c in measured):
        return []  # measured off the target's kind of device: ratios say little (as QG702/QG703 judge)
    out: list[str] = []
    base, quant = p.baseline.peak_memory_bytes, p.candidate.peak_memory_bytes
    if p.constraint == "memory" and base and quant > base:
        out.append(f"This spec is memory-bound, but the quantized model used more memory than its baseline: "
                   f"peak {gigabytes(base)} → {gigabytes(quant)} ({fixed(quant / base, 2)}{TIMES}).")
    if p.constraint == "throughput":
        slower = {c.batch: c.change for c in measured
                  if c.kind is CriterionKind.throughput and c.change is not None and c.change < 1.0}
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
