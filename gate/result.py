"""The result contract: one ``GateResult`` per spec, rendered by every report format.

Its JSON form (``GateResult.model_dump(mode="json")``) is versioned by ``RESULT_SCHEMA_VERSION``,
documented in ``docs/result-schema.md`` and published as ``schema/result.schema.json``. Every
section is a frozen model: the weight scan and the memory plan are the static stages' own types
(torch-free, below this floor); criteria, artifact, measurements and runtime are the contract's
(``gate.result_sections``), into which ``gate.result_build`` converts the later stages' outputs.
Schema 1 documents are read through ``gate.result_v1``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gate.errors import SourceLocation
from gate.plan.memory import MemoryPlan
from gate.result_sections import (
    ArtifactCalibration,
    ArtifactFile,
    ArtifactRecord,
    ArtifactSanity,
    Evidence,
    FidelityMeasurement,
    Hardware,
    ModelPerformance,
    PerformanceMeasurement,
    RuntimeInfo,
    ServingFallback,
    ServingRuntime,
    _Frozen,
)
from gate.weights.interface import WeightScan

__all__ = [  # the sections defined in gate.result_sections are part of this contract's surface
    "ArtifactCalibration", "ArtifactFile", "ArtifactRecord", "ArtifactSanity", "Evidence", "FidelityMeasurement",
    "Hardware", "MemoryPlan", "ModelPerformance", "PerformanceMeasurement", "RuntimeInfo", "ServingFallback",
    "ServingRuntime", "WeightScan",
]

RESULT_SCHEMA_VERSION = "2.0"


class Severity(StrEnum):
    """How a finding affects the verdict."""

    deny = "deny"
    """Blocks the merge (unless waived, or the rule runs in audit mode)."""
    warn = "warn"
    """Reported, never blocks."""
    info = "info"
    """Context for reviewers."""


class Decision(StrEnum):
    """The verdict of one spec (or one metric)."""

    passed = "pass"
    failed = "fail"
    inconclusive = "inconclusive"
    error = "error"
    """The gate could not decide (bad input or a backend failure); always blocks."""


class Location(_Frozen):
    """A 1-based position in a repository file."""

    path: str
    line: int | None = None
    col: int | None = None
    member: str | None = None
    """The member of an archive or compressed file ``path`` a weights finding is about, e.g.
    ``archive/data.pkl`` or ``inner.zip!/archive/data.pkl`` (nested containers joined by ``!/``)."""

    @classmethod
    def of(cls, where: SourceLocation | None) -> Location | None:
        if where is None:
            return None
        return cls(path=where.path, line=where.line, col=where.col)

    def __str__(self) -> str:
        return str(SourceLocation(self.path, self.line, self.col))


class WaiverNote(_Frozen):
    """The waiver that covered a finding."""

    reason: str
    owner: str
    expires: str
    """ISO date."""
    source: Location | None = None
    """Where the waiver is declared."""


class Finding(_Frozen):
    """One rule's outcome for one spec (only violations become findings)."""

    rule_id: str
    """Rule id, e.g. QG101, or a custom policy rule id."""
    slug: str
    """Dotted rule name, e.g. scale.constraint-declared."""
    severity: Severity
    message: str
    location: Location | None = None
    """The offending key (or file) in the repository."""
    hint: str | None = None
    """How to fix it."""
    stage: str = "policy"
    """Pipeline stage that produced the facts: spec, policy, weights, plan, quantize, evaluate, verdict."""
    mode: str = "enforce"
    """enforce | audit: audit findings are reported as if warnings and never block."""
    waived: bool = False
    waiver: WaiverNote | None = None
    policy: str | None = None
    """Policy file that configured the rule (None for built-in defaults)."""
    detail: Evidence = Field(default_factory=dict)
    """Structured evidence (e.g. a weight scan's globals, a memory breakdown), as JSON values."""

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.deny and self.mode == "enforce" and not self.waived


class StageStatus(StrEnum):
    """How one pipeline stage ended (its JSON value is the member's value)."""

    ok = "ok"
    blocked = "blocked"
    """Stopped the pipeline on purpose (in the contract; no stage of this version reports it)."""
    failed = "failed"
    """Raised a ``GateError``; the record's message says why."""
    skipped = "skipped"
    """Did not run; the record's message says why."""


class StageRecord(_Frozen):
    """What happened in one pipeline stage."""

    stage: str
    status: StageStatus
    seconds: float = 0.0
    message: str | None = None
    cache_hit: bool | None = None


class MetricResult(_Frozen):
    """Baseline vs quantized on one metric, with the paired statistics behind the outcome."""

    task: str
    metric: str
    n: int
    """Items evaluated (paired)."""
    n_total: int | None = None
    """Items available; larger than n when sequential evaluation stopped early."""
    baseline: float
    quantized: float
    difference: float
    """Signed degradation in tolerance units: positive = worse (drop for accuracy, increase for perplexity)."""
    ci_low: float
    ci_high: float
    confidence: float
    tolerance: float
    tolerance_form: str
    """max_drop | max_relative_drop | max_increase | max_relative_increase"""
    higher_is_better: bool
    method: str
    """e.g. 'paired bootstrap, 10000 resamples, seed 0' or 'McNemar exact'."""
    p_value: float | None = None
    outcome: Decision
    note: str | None = None
    look: int | None = None
    """Sequential evaluation: the 1-based look whose data decided the outcome (for an undecided
    metric, the last look evaluated); a metric decided at a look keeps that outcome. None for a
    single fixed-size comparison."""
    looks: int | None = None
    """Sequential evaluation: the number of looks the plan had."""
    n_needed: int | None = None
    """For an INCONCLUSIVE metric: about how many paired items would decide it with 80% power,
    projected from the discordance / spread measured on the items compared."""


# ---- criteria: every judged (or merely compared) quantity in one shape ------------------------


class CriterionKind(StrEnum):
    """What a criterion measures."""

    metric = "metric"
    """A task metric, baseline vs candidate on the same items (paired statistics)."""
    fidelity = "fidelity"
    """Next-token agreement of the candidate with its baseline (KL divergence, top-1 flip rate)."""
    memory = "memory"
    """Peak memory while generating."""
    throughput = "throughput"
    """Generated tokens per second at one batch size."""
    cost = "cost"
    """Serving cost (e.g. dollars per million tokens)."""


class LimitForm(StrEnum):
    """How a limit reads. Metric tolerances bound ``change`` (the degradation); the rest bound
    ``candidate`` (``max``/``min``) or ``candidate / baseline`` (``min_ratio``)."""

    max_drop = "max_drop"
    max_relative_drop = "max_relative_drop"
    max_increase = "max_increase"
    max_relative_increase = "max_relative_increase"
    max = "max"
    """``candidate <= value`` (KL, flip rate, peak memory, cost)."""
    min = "min"
    """``candidate >= value`` (tokens per second)."""
    min_ratio = "min_ratio"
    """``candidate / baseline >= value`` (speed-up over the baseline)."""


class Limit(_Frozen):
    form: LimitForm
    value: float
    """In the criterion's ``unit`` (``min_ratio``: a ratio; relative forms: a fraction)."""


class Criterion(_Frozen):
    """One criterion of a result: what was observed on baseline and candidate, the change with its
    confidence bounds, the limit and the outcome. Reports render the list of these as one table."""

    kind: CriterionKind
    name: str
    """Stable id: ``task/metric``, ``fidelity/kl``, ``fidelity/flip_rate``, ``memory.peak_gb``,
    ``throughput@batch4`` (compared, no limit), ``throughput.tokens_per_s@batch4``,
    ``throughput.speedup@batch4``, ``cost.per_million_tokens``."""
    task: str | None = None
    metric: str | None = None
    unit: str | None = None
    """``nats``, ``fraction``, ``GB``, ``tokens/s``, ``USD per million tokens``; None for a task
    metric (its own scale: accuracy 0-1, perplexity, ...)."""
    baseline: float | None = None
    candidate: float | None = None
    change: float | None = None
    """metric: signed degradation in tolerance units (positive = worse: a drop for accuracy, an
    increase for perplexity); fidelity: the divergence itself (= ``candidate``); memory and
    throughput: ``candidate / baseline``; cost: None."""
    ci_low: float | None = None
    ci_high: float | None = None
    """Confidence bounds of ``change`` (metric and fidelity criteria)."""
    confidence: float | None = None
    limit: Limit | None = None
    """None: compared only (e.g. throughput of a memory-bound spec)."""
    higher_is_better: bool | None = None
    outcome: Decision | None = None
    """None: not judged (no limit, or measured where it cannot be judged, e.g. CPU for a GPU target)."""
    note: str | None = None
    """Why it was not judged, how the sequential evaluation stopped, why it cannot be decided."""
    n: int | None = None
    """Items compared (metric: paired items; fidelity: token positions)."""
    n_total: int | None = None
    """Items available; larger than n when sequential evaluation stopped early."""
    n_needed: int | None = None
    """INCONCLUSIVE metric: about how many paired items would decide it with 80% power."""
    look: int | None = None
    """Sequential evaluation: the 1-based look whose data decided the outcome."""
    looks: int | None = None
    method: str | None = None
    """The statistics behind the bounds, e.g. ``McNemar exact``."""
    p_value: float | None = None
    batch: int | None = None
    """throughput: the batch size measured."""
    measured_as: str | None = None
    """memory: ``cuda_max_allocated`` (GPU) or ``rss`` (CPU process)."""


class CriterionPower(_Frozen):
    """The chance that one quality criterion reaches PASS at the declared eval-set size when the
    quantized model is exactly as good as its baseline (what ``gate check`` shows before GPU time)."""

    criterion: str
    """e.g. ``qg_reasoning/acc`` or ``fidelity/max_kl``."""
    n: int
    """Items (documents) the criterion is evaluated on; the first sequential look uses fewer."""
    smallest_look: int
    """Items at the smallest look, the size ``check_resolvable`` judges."""
    power: float | None
    """Probability of PASS at true degradation 0 under ``assumption``; None when not computable
    without data (real-valued scores before a baseline run)."""
    assumption: str
    """Where the per-item spread came from, e.g. ``assumed discordance 10%``."""


class SpecPower(_Frozen):
    """Power of each criterion and of the spec as a whole (intersection-union: the spec passes only
    when every criterion passes, so its power is at most the product for independent criteria)."""

    criteria: list[CriterionPower] = Field(default_factory=list)
    overall: float | None = None
    """Product of the known criteria's powers (independent criteria; an upper bound while some are
    unknown); None when none is known."""

    def rows(self) -> list[tuple[str, str]]:
        """(criterion, words) for a report, e.g. ``("qg_reasoning/acc", "2,000 items (first look 500):
        power 81% (assumed discordance 10%)")`` and ``("spec", "power 52% (every criterion must PASS)")``."""
        rows = []
        for c in self.criteria:
            shown = "unknown" if c.power is None else _percent(c.power)
            rows.append((c.criterion, f"{c.n:,} items (first look {c.smallest_look:,}): power {shown} ({c.assumption})"))
        if self.overall is not None:
            unknown = sum(1 for c in self.criteria if c.power is None)
            rest = f"; {unknown} criteria not known yet, so at most this" if unknown else ""
            rows.append(("spec", f"power {_percent(self.overall)} (every criterion must PASS{rest})"))
        return rows


def _percent(p: float) -> str:
    """Whole percent, never rounded to a certainty it is not: ``>99%`` and ``<1%`` at the ends."""
    if 0.995 <= p < 1:
        return ">99%"
    if 0 < p < 0.005:
        return "<1%"
    return f"{p * 100:.0f}%"


class Verdict(_Frozen):
    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    """One line per reason, most important first."""


class SpecRef(_Frozen):
    """The spec a result is about, with its configuration log (what was asked for)."""

    path: str
    name: str | None = None
    sha256: str | None = None
    """sha256 of the spec file's bytes."""
    owner: str | None = None
    tier: str | None = None
    traffic_share: float | None = None
    method: str | None = None
    bits: int | None = None
    group_size: int | None = None
    format: str | None = None
    baseline: str | None = None
    """The declared baseline: ``hub@revision``, or the local path/GGUF file."""
    calibration_source: str | None = None
    calibration_sha256: str | None = None
    calibration_samples: int | None = None
    calibration_max_seq_len: int | None = None


class GateResult(_Frozen):
    """Everything the gate learned about one spec. Every report renders from this."""

    schema_version: str = RESULT_SCHEMA_VERSION
    gate_version: str
    command: str
    """check | run"""
    spec: SpecRef
    started_at: str
    """ISO 8601 UTC."""
    finished_at: str
    verdict: Verdict
    exit_code: int
    findings: list[Finding] = Field(default_factory=list)
    checks: int | None = None
    """How many rule checks ran for this spec (the summary line's denominator)."""
    stages: list[StageRecord] = Field(default_factory=list)
    weights: WeightScan | None = None
    """The weight stage's scan (files, formats, pickle globals, lockfile state)."""
    plan: MemoryPlan | None = None
    """The memory-fit plan (estimate and breakdown against the target's memory)."""
    artifact: ArtifactRecord | None = None
    criteria: list[Criterion] = Field(default_factory=list)
    """Every criterion, in report order: task metrics, fidelity limits, then memory, throughput and
    cost (each judged against its limit, or compared only)."""
    power: SpecPower | None = None
    """``gate check``: the chance each quality criterion, and the spec as a whole, reaches PASS at
    the declared eval-set sizes when the quantized model is unchanged (``gate.evaluate.design.check_power``)."""
    fidelity: FidelityMeasurement | None = None
    """How the fidelity criteria were measured (text set, positions, top-k)."""
    performance: PerformanceMeasurement | None = None
    """The speed and memory measurements behind the memory and throughput criteria."""
    runtime: RuntimeInfo = Field(default_factory=RuntimeInfo)
    """Library and hardware versions (python, torch, transformers, lm-eval, CUDA, GPU) and the serving runtime."""
    error: str | None = None
    """The error text when the decision is error."""
    log: str | None = None
    """``gate run``: the per-run log holding third-party library output (None with ``-v`` or for ``gate check``)."""
