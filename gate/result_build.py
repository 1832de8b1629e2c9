"""Stage outputs into the result contract: the one place a stage's frozen type becomes a section.

The verdict's ``MetricResult``, the evaluation's ``FidelityResult`` and ``PerformanceResult`` and
the quantizer's ``Artifact`` are converted here when a result is assembled (``gate.pipeline``) and
when a schema 1 document is read (``gate.result_v1``). Every criterion comes out in one shape
(``gate.result.Criterion``): a fidelity limit and a memory constraint read like a metric.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue, TypeAdapter, ValidationError

from gate.result import (
    ArtifactCalibration,
    ArtifactFile,
    ArtifactRecord,
    ArtifactSanity,
    Criterion,
    CriterionKind,
    Decision,
    FidelityMeasurement,
    Limit,
    LimitForm,
    MetricResult,
    PerformanceMeasurement,
)

if TYPE_CHECKING:
    from gate.evaluate.interface import ConstraintCheck, FidelityResult, PerformanceResult
    from gate.quantize.artifact import Artifact

GB = 1e9
ARTIFACT_LOCKFILE = "gate.lock.json"
"""The artifact's own lockfile (``gate.quantize.artifact.LOCKFILE``): every file and its sha256."""
_JSON_OBJECT: TypeAdapter[dict[str, JsonValue]] = TypeAdapter(dict[str, JsonValue])


def metric_criterion(m: MetricResult) -> Criterion:
    """A task metric's paired comparison; its tolerance is the limit on the degradation."""
    return Criterion(
        kind=CriterionKind.metric, name=f"{m.task}/{m.metric}", task=m.task, metric=m.metric,
        baseline=m.baseline, candidate=m.quantized, change=m.difference, ci_low=m.ci_low, ci_high=m.ci_high,
        confidence=m.confidence, limit=Limit(form=LimitForm(m.tolerance_form), value=m.tolerance),
        higher_is_better=m.higher_is_better, outcome=m.outcome, note=m.note, n=m.n, n_total=m.n_total,
        n_needed=m.n_needed, look=m.look, looks=m.looks, method=m.method, p_value=m.p_value,
    )


def _bound_outcome(low: float, high: float, limit: float) -> Decision:
    """Non-inferiority from the bounds alone (for fidelity results recorded before each limit kept its outcome)."""
    if high <= limit:
        return Decision.passed
    if low > limit:
        return Decision.failed
    return Decision.inconclusive


def fidelity_criteria(f: FidelityResult) -> list[Criterion]:
    """KL divergence and top-1 flip rate, each against its limit (or compared only without one)."""
    rows = []
    for name, unit, value, low, high, limit, judged in (
        ("fidelity/kl", "nats", f.kl_mean, f.kl_ci_low, f.kl_ci_high, f.max_kl, f.kl_outcome),
        ("fidelity/flip_rate", "fraction", f.flip_rate, f.flip_ci_low, f.flip_ci_high, f.max_flip_rate, f.flip_outcome),
    ):
        if limit is None:
            outcome = None
        else:
            outcome = Decision(judged) if judged is not None else _bound_outcome(low, high, limit)
        rows.append(Criterion(
            kind=CriterionKind.fidelity, name=name, unit=unit, candidate=value, change=value, ci_low=low,
            ci_high=high, confidence=f.confidence, limit=Limit(form=LimitForm.max, value=limit) if limit is not None else None,
            higher_is_better=False, outcome=outcome, note=f.undecided if outcome is Decision.inconclusive else None,
            n=f.tokens, method=f.method,
        ))
    return rows


def fidelity_measurement(f: FidelityResult) -> FidelityMeasurement:
    return FidelityMeasurement(texts=f.texts, texts_sha256=f.texts_sha256, documents=f.documents, tokens=f.tokens,
                               confidence=f.confidence, top_k=f.top_k, tail_mass_mean=f.tail_mass_mean,
                               method=f.method, undecided=f.undecided)


def _judged(check: ConstraintCheck) -> Decision | None:
    return None if check.passed is None else (Decision.passed if check.passed else Decision.failed)


def performance_criteria(p: PerformanceResult) -> list[Criterion]:
    """Peak memory, throughput per batch size and cost: one criterion per constraint check, and a
    compared-only criterion for each measurement no check covers (a reviewer still sees it)."""
    checks = {c.name: c for c in p.checks}
    base_mem, cand_mem = p.baseline.peak_memory_bytes / GB, p.quantized.peak_memory_bytes / GB
    memory = checks.pop("memory.peak_gb", None)
    rows = [Criterion(
        kind=CriterionKind.memory, name="memory.peak_gb", unit="GB", baseline=base_mem, candidate=cand_mem,
        change=cand_mem / base_mem if base_mem else None,
        limit=Limit(form=LimitForm.max, value=memory.target) if memory else None,
        higher_is_better=False, outcome=_judged(memory) if memory else None, note=memory.note if memory else None,
        measured_as=p.quantized.memory_kind,
    )]
    for batch, tps in p.quantized.tokens_per_s.items():
        base_tps = p.baseline.tokens_per_s.get(batch)
        ratio = tps / base_tps if base_tps else None
        common = {"kind": CriterionKind.throughput, "unit": "tokens/s", "baseline": base_tps, "candidate": tps,
                  "change": ratio, "higher_is_better": True, "batch": int(batch) if batch.isdigit() else None}
        judged = False
        for name, form in ((f"throughput.tokens_per_s@batch{batch}", LimitForm.min),
                           (f"throughput.speedup@batch{batch}", LimitForm.min_ratio)):
            check = checks.pop(name, None)
            if check is None:
                continue
            judged = True
            rows.append(Criterion(name=name, limit=Limit(form=form, value=check.target), outcome=_judged(check),
                                  note=check.note, **common))  # type: ignore[arg-type]
        if not judged:
            rows.append(Criterion(name=f"throughput@batch{batch}", **common))  # type: ignore[arg-type]
    for name, check in checks.items():  # cost, or a check this version does not know yet
        cost = name.startswith("cost.")
        rows.append(Criterion(
            kind=CriterionKind.cost if cost else CriterionKind.throughput, name=name,
            unit="USD per million tokens" if cost else None, candidate=check.measured,
            limit=Limit(form=LimitForm.max, value=check.target), higher_is_better=False,
            outcome=_judged(check), note=check.note,
        ))
    return rows


def performance_measurement(p: PerformanceResult) -> PerformanceMeasurement:
    return PerformanceMeasurement(constraint=p.constraint, baseline=p.baseline, candidate=p.quantized,
                                  baseline_cached=p.baseline_cached)


def criteria_of(metrics: Iterable[MetricResult], fidelity: FidelityResult | None,
                performance: PerformanceResult | None) -> list[Criterion]:
    """Every criterion of a run, in report order: metrics, fidelity, then performance."""
    return [*(metric_criterion(m) for m in metrics),
            *(fidelity_criteria(fidelity) if fidelity is not None else ()),
            *(performance_criteria(performance) if performance is not None else ())]


def artifact_record(a: Artifact) -> ArtifactRecord:
    """The artifact's provenance, with its files' hashes (its lockfile) and ``quantization_config``."""
    from gate.quantize.registry import DESCRIPTORS

    cal, sanity = a.calibration, a.sanity
    descriptor = DESCRIPTORS.get(a.method)
    backend = descriptor.implementation if descriptor else None
    return ArtifactRecord(
        path=str(a.path), sha256=a.artifact_sha256, cache_key=a.cache_key, cache_hit=a.cache_hit, method=a.method,
        backend=backend, bits=a.bits, group_size=a.group_size, format=a.format,
        parameters=_JSON_OBJECT.validate_python(a.params), versions=dict(a.versions),
        calibration=ArtifactCalibration(
            source=cal.source, sha256=cal.sha256, samples=cal.samples, available=cal.available, field=cal.field,
            seed=cal.seed, max_seq_len=cal.max_seq_len, tokens_total=cal.tokens_total) if cal else None,
        sanity=ArtifactSanity(baseline_perplexity=sanity.baseline_perplexity,
                              quantized_perplexity=sanity.quantized_perplexity, ratio=sanity.ratio,
                              max_ratio=sanity.max_ratio, passed=sanity.passed) if sanity else None,
        baseline_identity=a.baseline_identity, files=artifact_files(Path(a.path)),
        quantization_config=quantization_config(Path(a.path)), seconds=a.seconds, quantize_seconds=a.quantize_seconds,
    )


def _json_object(path: Path) -> dict[str, JsonValue] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _JSON_OBJECT.validate_python(data)
    except (OSError, ValueError, ValidationError):
        return None


def artifact_files(directory: Path) -> list[ArtifactFile]:
    """The files the artifact's lockfile pins (empty when it has none, e.g. a GGUF file artifact)."""
    from gate.errors import GateError
    from gate.weights.lockfile import read_lockfile

    path = directory / ARTIFACT_LOCKFILE
    if not path.is_file():
        return []
    try:
        lock = read_lockfile(path)
    except GateError:
        return []
    return [ArtifactFile(path=e.path, sha256=e.sha256, size=e.size) for e in sorted(lock.files, key=lambda e: e.path)]


def quantization_config(directory: Path) -> dict[str, JsonValue] | None:
    config = _json_object(directory / "config.json") if directory.is_dir() else None
    value = config.get("quantization_config") if config else None
    return value if isinstance(value, dict) else None
