"""What ``gate run`` evaluates for one spec: metrics and their tasks, item order, fidelity and
performance settings, and the up-front sample-size check (no model is loaded here).

Items are scored in a seeded random order (``gate.verdict.sequential.item_order``): a task's
``limit`` takes a random subset rather than the file's first rows, and sequential looks take
prefixes of that order. The baseline always scores every selected item (its results are cached
and reused); the quantized model stops at the first decisive look when ``quality.sequential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gate.engine_checks import EVAL_SET_TOO_SMALL
from gate.errors import SourceLocation
from gate.evaluate.fidelity import DEFAULT_TOKENS, TARGET_DOCUMENTS, FidelitySettings, window_for
from gate.evaluate.harness import MetricRequest, count_items
from gate.evaluate.performance import ConstraintTargets, PerformanceSettings
from gate.evaluate.suites import PERPLEXITY_TASK, STRESS_TASKS, TaskSource, resolve_task, stress_default
from gate.result import Finding, Location, Severity, SpecPower
from gate.spec.loader import LoadedSpec
from gate.spec.models import MetricTolerance

DEFAULT_CONFIDENCE = 0.95
PLANNING_DISCORDANCE = 0.10
"""Share of items assumed to flip between baseline and quantized for the power ``gate check``
shows before any model has run (observed flip rates of 4-bit models are mostly 2-10%); labelled
as an assumption wherever it is used, never a reason to refuse a set."""
SAMPLE_SIZE_RULE = EVAL_SET_TOO_SMALL.id
SAMPLE_SIZE_SLUG = EVAL_SET_TOO_SMALL.slug


@dataclass(frozen=True)
class PlannedMetric:
    tolerance: MetricTolerance
    location: SourceLocation
    default_tolerance: bool = False
    """True for a stress suite listed without its own metric entry (default max_drop)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.tolerance.task, self.tolerance.metric)


@dataclass(frozen=True)
class PlannedTask:
    source: TaskSource
    order: tuple[int, ...]
    """Document indices in scoring order; its length is the task's item count for this run."""
    metrics: tuple[PlannedMetric, ...]

    @property
    def n_total(self) -> int:
        return len(self.order)


@dataclass(frozen=True)
class EvalDesign:
    tasks: dict[str, PlannedTask]
    confidence: float
    sequential: bool
    fidelity: FidelitySettings
    fidelity_texts: Path
    max_kl: float | None
    max_flip_rate: float | None
    performance: PerformanceSettings
    targets: ConstraintTargets
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[PlannedMetric]:
        return [m for t in self.tasks.values() for m in t.metrics]

    def requests(self) -> list[MetricRequest]:
        return [MetricRequest(task=m.tolerance.task, metric=m.tolerance.metric) for m in self.metrics]

    def sources(self) -> list[TaskSource]:
        return [t.source for t in self.tasks.values()]


def planned_metrics(loaded: LoadedSpec) -> list[PlannedMetric]:
    """The spec's metrics, plus each stress suite without its own entry at the default tolerance."""
    quality = loaded.spec.quality
    smap = loaded.source_map
    if quality is None:
        return []
    out = [PlannedMetric(tolerance=m, location=smap.locate(("quality", "metrics", i)))
           for i, m in enumerate(quality.metrics)]
    named = {m.task for m in quality.metrics}
    for j, suite in enumerate(quality.stress):
        task = STRESS_TASKS[suite]
        if task in named:
            continue
        metric, max_drop = stress_default(suite.value)
        tolerance = MetricTolerance(task=task, metric=metric, max_drop=max_drop)
        out.append(PlannedMetric(tolerance=tolerance, location=smap.locate(("quality", "stress", j)),
                                 default_tolerance=True))
    return out


def build_design(
    loaded: LoadedSpec,
    repo_root: Path,
    include_dir: Path,
    *,
    hardware_kind: str | None,
    seed: int = 0,
) -> EvalDesign:
    """Resolve every task and fix the item order; raises ``TaskError`` for unusable tasks."""
    from gate.verdict.sequential import item_order

    spec = loaded.spec
    quality = spec.quality
    metrics = planned_metrics(loaded)
    by_task: dict[str, list[PlannedMetric]] = {}
    locations: dict[str, SourceLocation] = {}
    for m in metrics:
        by_task.setdefault(m.tolerance.task, []).append(m)
        locations.setdefault(m.tolerance.task, m.location)
    tasks: dict[str, PlannedTask] = {}
    for name, task_metrics in by_task.items():
        source = resolve_task(name, repo_root, locations[name])
        n_items = count_items(source, include_dir, locations[name], repo_root)
        limits = [m.tolerance.limit for m in task_metrics]
        limit = None if any(x is None for x in limits) else max(x for x in limits if x is not None)
        n_total = n_items if limit is None else min(limit, n_items)
        order = tuple(int(i) for i in item_order(n_items, seed)[:n_total]) if n_items else ()
        tasks[name] = PlannedTask(source=source, order=order, metrics=tuple(task_metrics))

    fid = quality.fidelity if quality else None
    texts_name = fid.texts if fid and fid.texts else PERPLEXITY_TASK
    texts_path = _fidelity_texts(texts_name, repo_root, loaded)
    confidence = quality.confidence if quality and quality.confidence else DEFAULT_CONFIDENCE
    fidelity_tokens = fid.tokens if fid and fid.tokens else DEFAULT_TOKENS
    fidelity = FidelitySettings(texts_name=texts_name, tokens=fidelity_tokens, window=window_for(fidelity_tokens),
                                confidence=confidence)
    perf = spec.performance
    target = spec.constraint.target if spec.constraint else None
    batch = target.batch if target and target.batch else 1
    batch_sizes = tuple(sorted(set(perf.batch_sizes))) if perf and perf.batch_sizes else (batch,)
    memory = [x for x in (perf.max_memory_gb if perf else None,
                          target.memory_gb if target and spec.constraint and spec.constraint.kind.value == "memory" else None)
              if x is not None]
    targets = ConstraintTargets(
        kind=spec.constraint.kind.value if spec.constraint else None,
        hardware_kind=hardware_kind,
        hardware=target.hardware if target else None,
        memory_gb=min(memory) if memory else None,
        tokens_per_s=target.tokens_per_s if target else None,
        min_speedup=perf.min_speedup if perf else None,
        cost_per_million_tokens=target.cost_per_million_tokens if target else None,
        hourly_cost=target.hourly_cost if target else None,
        batch=batch if batch in batch_sizes else batch_sizes[0],
    )
    return EvalDesign(
        tasks=tasks,
        confidence=confidence,
        sequential=quality.sequential if quality else False,
        fidelity=fidelity,
        fidelity_texts=texts_path,
        max_kl=fid.max_kl if fid else None,
        max_flip_rate=fid.max_flip_rate if fid else None,
        performance=PerformanceSettings(batch_sizes=batch_sizes),
        targets=targets,
        seed=seed,
    )


def _fidelity_texts(name: str, repo_root: Path, loaded: LoadedSpec) -> Path:
    from gate.evaluate.interface import TaskError

    where = loaded.source_map.locate(("quality", "fidelity", "texts"))
    candidate = repo_root / name
    if candidate.is_file():
        return candidate
    source = resolve_task(name, repo_root, where)
    if source.local and source.data_files:
        return source.data_files[0]
    raise TaskError(
        f"quality.fidelity.texts: {name!r} is neither a file in the repository nor a local task with data",
        hint=f"give a JSONL/text file path relative to the repo root, or a task name such as {PERPLEXITY_TASK}",
        location=where,
    )


def sample_size_findings(
    plan: EvalDesign,
    base_scores: dict[tuple[str, str], object] | None = None,
    *,
    spent: str = "no model was evaluated",
    inconclusive: str = "block",
) -> list[Finding]:
    """A finding per metric whose eval set can never reach PASS, whatever the models score.

    The refusal uses no assumption about the data: a set is refused only when even a look where
    every item agrees could not exclude the tolerance (``decision_floor``; with baseline scores,
    at the measured baseline accuracy), or the tolerance is zero. Whether a set is large enough
    for the data at hand is projected from the discordance / spread MEASURED on the looks
    (``MetricResult.n_needed`` on an INCONCLUSIVE result) and shown as power by ``gate check``.
    A refusal makes the verdict INCONCLUSIVE ("needs N items"); the policy's ``inconclusive``
    decides whether it blocks (the finding is deny under ``block``, warn under ``allow``).
    """
    import numpy as np

    from gate.evaluate.interface import TaskScores
    from gate.verdict.sample_size import decision_floor, planning_kind

    findings: list[Finding] = []
    for task in plan.tasks.values():
        for m in task.metrics:
            scores = (base_scores or {}).get(m.key)
            kind = scores.kind if isinstance(scores, TaskScores) else planning_kind(m.tolerance.metric)
            accuracy = None
            if isinstance(scores, TaskScores) and kind == "binary" and scores.values:
                accuracy = float(np.mean(np.asarray(scores.values, dtype=np.float64)))
            floor = decision_floor(m.tolerance, kind, plan.confidence, accuracy)
            if 0 < floor <= task.n_total:
                continue
            name = f"{m.tolerance.task}/{m.tolerance.metric}"
            unit = "documents" if kind in ("perplexity", "bits_per_byte") else "items"
            at = f"at {plan.confidence * 100:.4g}% confidence"
            if floor < 0:
                message = f"eval set too small: {name}: a zero tolerance can never be shown {at}: any finite eval set leaves some doubt"
                hint = f"declare a non-zero tolerance; {spent}"
            else:
                agree = "even if every item agrees" if kind == "binary" else "no look decides on fewer"
                message = (f"eval set too small: {name}: {task.n_total:,} {unit} can never PASS "
                           f"{_tolerance_words(m.tolerance, kind)} {at} ({agree}); needs at least {floor:,} {unit}")
                hint = f"use a task with at least {floor:,} {unit} (or raise `limit`), or widen the tolerance; {spent}"
            findings.append(Finding(
                rule_id=SAMPLE_SIZE_RULE, slug=SAMPLE_SIZE_SLUG,
                severity=Severity.warn if inconclusive == "allow" else Severity.deny, stage="evaluate",
                message=message, location=Location.of(m.location), hint=hint,
                detail={"n_available": task.n_total, "n_needed": floor, "assumption": "none: the decision floor"},
            ))
    return findings


def _tolerance_words(tolerance: MetricTolerance, kind: str) -> str:
    if tolerance.tolerance_form in ("max_relative_drop", "max_relative_increase"):
        return f"a {tolerance.tolerance * 100:.4g}% relative tolerance"
    if kind == "binary":
        return f"a {tolerance.tolerance:g}-point tolerance"
    return f"a tolerance of {tolerance.tolerance:g}"


def check_power(loaded: LoadedSpec, repo_root: Path) -> SpecPower:
    """Per criterion, the chance an unchanged quantized model PASSES at the declared eval-set size,
    and the spec's as a whole (every criterion must PASS), for ``gate check``: no model, no torch,
    no lm-eval (a task whose item count is unknown before lm-eval loads it gets no number).
    Binary metrics assume ``PLANNING_DISCORDANCE``; real-valued ones and fidelity need the spread
    a run measures. ``GateResult.power`` carries it; ``sample_size.describe_power`` words it."""
    from gate.errors import GateError
    from gate.result import CriterionPower
    from gate.verdict.sample_size import criterion_power, planning_kind, spec_power

    quality = loaded.spec.quality
    confidence = quality.confidence if quality and quality.confidence else DEFAULT_CONFIDENCE
    looks = 4 if quality is None or quality.sequential else 1
    criteria = []
    for m in planned_metrics(loaded):
        tol = m.tolerance
        try:
            n_items = resolve_task(tol.task, repo_root, m.location).n_items
        except GateError:
            n_items = None
        if n_items is None:
            criteria.append(CriterionPower(criterion=f"{tol.task}/{tol.metric}", n=0, smallest_look=0, power=None,
                                           assumption="item count known only once lm-eval loads the task"))
            continue
        n = n_items if tol.limit is None else min(tol.limit, n_items)
        criteria.append(criterion_power(tol, n=n, confidence=confidence, kind=planning_kind(tol.metric), looks=looks,
                                        assumed_discordance=PLANNING_DISCORDANCE))
    fid = quality.fidelity if quality else None
    for limit_name, limit in (("max_kl", fid.max_kl if fid else None),
                              ("max_flip_rate", fid.max_flip_rate if fid else None)):
        if limit is not None:
            criteria.append(CriterionPower(criterion=f"fidelity/{limit_name}", n=TARGET_DOCUMENTS, smallest_look=TARGET_DOCUMENTS,
                                           power=None, assumption="needs the spread between documents a run measures"))
    return spec_power(criteria)
