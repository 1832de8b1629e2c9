"""The evaluation stage's errors and frozen result types (no torch, no lm-eval here).

``TaskScores`` carries one metric's per-item scores for one model (from lm-eval's ``log_samples``)
so the verdict code can compare baseline and quantized pairwise. ``FidelityResult`` and
``PerformanceResult`` are converted into the result's criteria and measurement sections by
``gate.result_build``; ``ModelPerformance`` is the contract's own type (``gate.result_sections``).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from gate.errors import BackendError, InputError
from gate.frozen import Frozen
from gate.result_sections import ModelPerformance as ModelPerformance  # the contract's type, used here too

ScoreKind = Literal["mean", "binary", "perplexity", "bits_per_byte"]

PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity")
BITS_METRICS = ("bits_per_byte",)


class EvaluateError(BackendError):
    """Evaluation itself failed (lm-eval raised, a model produced NaN, ...); blocks (exit 1)."""


class TaskError(InputError):
    """A task named by the spec cannot be used (unknown, malformed YAML, missing data); exit 2."""


class TaskScores(Frozen):
    """One metric of one task for one model, item by item (ordered by ``doc_ids``)."""

    task: str
    metric: str
    kind: ScoreKind
    """binary (0/1 per item: McNemar), mean (any per-item score), perplexity / bits_per_byte
    (per item: summed negative log-likelihood in nats and the word or byte count)."""
    doc_ids: list[int]
    values: list[float] | list[list[float]]
    """Per item: a score, or ``[nll, count]`` for perplexity kinds."""

    @property
    def n(self) -> int:
        return len(self.doc_ids)

    def aggregate(self) -> float:
        """The task-level value lm-eval would report (mean; corpus perplexity; bits per byte)."""
        if not self.values:
            return math.nan
        if self.kind in ("mean", "binary"):
            flat = [float(v) for v in self.values]  # type: ignore[arg-type]
            return sum(flat) / len(flat)
        pairs = [(float(p[0]), float(p[1])) for p in self.values]  # type: ignore[index]
        nll = sum(p[0] for p in pairs)
        count = sum(p[1] for p in pairs)
        if self.kind == "bits_per_byte":
            return nll / count / math.log(2)
        return math.exp(nll / count)

    def take(self, n: int) -> TaskScores:
        """The first ``n`` items (a sequential look)."""
        return self.model_copy(update={"doc_ids": self.doc_ids[:n], "values": self.values[:n]})


def score_kind(metric: str, values: list[float]) -> ScoreKind:
    if metric in PERPLEXITY_METRICS:
        return "perplexity"
    if metric in BITS_METRICS:
        return "bits_per_byte"
    if all(v in (0.0, 1.0) for v in values):
        return "binary"
    return "mean"


FidelityOutcome = Literal["pass", "fail", "inconclusive"]


class FidelityResult(Frozen):
    """Next-token agreement of quantized with baseline on a fixed text set."""

    texts: str
    """The text set (task name or file) the positions come from."""
    texts_sha256: str
    documents: int
    tokens: int
    """Token positions compared."""
    confidence: float
    kl_mean: float
    """Mean KL(baseline || quantized) per position, nats."""
    kl_ci_low: float
    kl_ci_high: float
    flip_rate: float
    """Fraction of positions whose top-1 token differs."""
    flip_ci_low: float
    flip_ci_high: float
    top_k: int
    """Baseline distribution kept as its top-k tokens plus one tail bucket (cacheable); the KL
    is that of the coarsened distributions, a lower bound of the full KL that is exact as the
    tail mass goes to zero."""
    tail_mass_mean: float
    """Mean baseline probability outside the top-k (how coarse the approximation is)."""
    method: str
    max_kl: float | None = None
    max_flip_rate: float | None = None
    passed: bool | None = None
    """True for outcome pass, False for fail, None when inconclusive or the spec sets no limit."""
    outcome: FidelityOutcome | None = None
    """Non-inferiority against each limit, as for metrics: pass when every upper confidence bound
    is within its limit, fail when some lower bound is beyond one, else inconclusive; None when
    the spec sets no fidelity limit."""
    reasons: list[str] = Field(default_factory=list)
    kl_outcome: FidelityOutcome | None = None
    """The KL limit's own outcome (None: no max_kl, or a result recorded before it was kept)."""
    flip_outcome: FidelityOutcome | None = None
    """The flip-rate limit's own outcome (None: no max_flip_rate, or an older result)."""
    undecided: str | None = None
    """Why the documents cannot support a decision (too few, no spread), when they cannot."""


class ConstraintCheck(Frozen):
    name: str
    """e.g. memory.peak, throughput.tokens_per_s, throughput.speedup, cost.per_million_tokens"""
    target: float
    measured: float
    passed: bool | None
    """None when it could not be judged here (e.g. measured on CPU for a GPU target)."""
    note: str | None = None


class PerformanceResult(Frozen):
    """Baseline vs quantized speed and memory, and the spec's constraint checked against them."""

    constraint: str | None
    """memory | throughput | cost (the spec's constraint kind)."""
    baseline: ModelPerformance
    quantized: ModelPerformance
    speedup: dict[str, float]
    """Batch size -> quantized tokens/s over baseline tokens/s."""
    memory_ratio: float
    """Quantized peak memory over baseline peak memory."""
    checks: list[ConstraintCheck] = Field(default_factory=list)
    passed: bool
    """False when any check failed (checks that could not be judged do not fail)."""
    environment: dict[str, str] = Field(default_factory=dict)
    baseline_cached: bool = False
    """True when the baseline figures came from the baseline cache (same machine and stack)."""
