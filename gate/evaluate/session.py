"""Evaluate one model against an ``EvalDesign``: the baseline side (cached) and the quantized side
(sequential looks), then the paired comparison per metric.

The caller opens a model in its serving runtime (``gate.serve``: transformers in process, or a
llama.cpp / vLLM server), hands the ``ServedModel`` here, and closes it afterwards, so only one
model is resident at a time. The baseline side returns what the quantized side needs: per-item
scores, the fidelity reference and the performance figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.evaluate.baseline_cache import BaselineCache, cache_key
from gate.evaluate.design import EvalDesign, PlannedMetric
from gate.evaluate.fidelity import FidelityReference
from gate.evaluate.harness import EvalSettings, MetricRequest
from gate.evaluate.interface import ModelPerformance, TaskScores
from gate.result import Decision, MetricResult

if TYPE_CHECKING:
    from gate.serve.interface import ServedModel

Say = Callable[[str], None]


@dataclass
class BaselineSide:
    """What the quantized side is compared against."""

    scores: dict[tuple[str, str], TaskScores] = field(default_factory=dict)
    reference: object | None = None
    """The runtime's fidelity reference (a ``FidelityReference`` in process, cached; llama.cpp's
    per-document log-probability files, kept for the run)."""
    performance: ModelPerformance | None = None
    cache_hits: dict[str, bool] = field(default_factory=dict)
    """component -> served from cache"""


@dataclass(frozen=True)
class BaselineKeys:
    scores: dict[tuple[str, str], str]
    fidelity: str
    performance: str


def baseline_keys(plan: EvalDesign, identity: str, settings: EvalSettings, runtime: dict[str, str]) -> BaselineKeys:
    """Cache keys of every baseline component (see ``baseline_cache``)."""
    common = {"baseline": identity, "runtime": runtime}
    scores = {}
    for task in plan.tasks.values():
        for m in task.metrics:
            scores[m.key] = cache_key("scores", {
                **common, "task": task.source.name, "task_sha256": task.source.sha256, "metric": m.tolerance.metric,
                "items": list(task.order), "settings": settings.key(),
            })
    texts_sha = _file_sha(plan.fidelity_texts)
    fidelity = cache_key("fidelity", {**common, "texts_sha256": texts_sha, "settings": plan.fidelity.key(),
                                      "device": settings.device})
    performance = cache_key("performance", {**common, "settings": plan.performance.key(), "device": settings.device})
    return BaselineKeys(scores=scores, fidelity=fidelity, performance=performance)


def _file_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_baseline(cache: BaselineCache, keys: BaselineKeys) -> BaselineSide:
    side = BaselineSide()
    for metric_key, key in keys.scores.items():
        hit = cache.get_scores(key)
        if hit is not None:
            side.scores[metric_key] = hit
    side.reference = cache.get_fidelity(keys.fidelity)
    side.performance = cache.get_performance(keys.performance)
    side.cache_hits = {
        "scores": len(side.scores) == len(keys.scores),
        "fidelity": side.reference is not None,
        "performance": side.performance is not None,
    }
    return side


def baseline_complete(side: BaselineSide) -> bool:
    return all(side.cache_hits.values())


def evaluate_baseline(
    served: ServedModel,
    plan: EvalDesign,
    side: BaselineSide,
    keys: BaselineKeys,
    cache: BaselineCache,
    *,
    include_dir: Path,
    say: Say,
) -> BaselineSide:
    """Fill what the cache did not have, store it, return the complete baseline side."""
    missing = [m for m in plan.metrics if m.key not in side.scores]
    if missing:
        tasks = sorted({m.tolerance.task for m in missing})
        say(f"baseline: {', '.join(f'{t} ({plan.tasks[t].n_total} items)' for t in tasks)}")
        got = served.score(plan.sources(), [MetricRequest(m.tolerance.task, m.tolerance.metric) for m in missing],
                           {t: plan.tasks[t].order for t in tasks}, include_dir=include_dir)
        for m in missing:
            side.scores[m.key] = got[m.key]
            cache.put_scores(keys.scores[m.key], got[m.key])
    if side.reference is None:
        say(f"baseline: fidelity reference ({plan.fidelity.tokens} tokens of {plan.fidelity.texts_name})")
        side.reference = served.fidelity_reference(plan.fidelity_texts, plan.fidelity)
        if isinstance(side.reference, FidelityReference):  # llama.cpp's log-probability files stay with the run
            cache.put_fidelity(keys.fidelity, side.reference)
    if side.performance is None:
        say("baseline: speed and memory")
        side.performance = served.performance(plan.performance)
        cache.put_performance(keys.performance, side.performance)
    served.check_alive()
    return side


def paired(metric: PlannedMetric, order: tuple[int, ...], base: TaskScores, quant: TaskScores, n: int) -> Any:
    """``PairedScores`` of the first ``n`` items in scoring order."""
    from gate.verdict.stats import PairedScores

    base_map = dict(zip(base.doc_ids, base.values, strict=True))
    quant_map = dict(zip(quant.doc_ids, quant.values, strict=True))
    ids = order[:n]
    return PairedScores(np.asarray([base_map[i] for i in ids], dtype=np.float64),
                        np.asarray([quant_map[i] for i in ids], dtype=np.float64), base.kind)


def _merge(old: TaskScores | None, new: TaskScores) -> TaskScores:
    if old is None:
        return new
    return old.model_copy(update={"doc_ids": [*old.doc_ids, *new.doc_ids], "values": [*old.values, *new.values]})


Scorer = Callable[[dict[str, tuple[int, ...]], list[MetricRequest]], dict[tuple[str, str], TaskScores]]
"""Scores the given items (per task, in scoring order) for the requested metrics."""


def evaluate_quantized(
    served: ServedModel,
    plan: EvalDesign,
    base: BaselineSide,
    *,
    include_dir: Path,
    say: Say,
    resamples: int = 10_000,
) -> tuple[list[MetricResult], dict[tuple[str, str], TaskScores]]:
    """Score the quantized model (sequential looks when the plan says so) and compare each metric."""

    def score(chunk: dict[str, tuple[int, ...]], requests: list[MetricRequest]) -> dict[tuple[str, str], TaskScores]:
        return served.score(plan.sources(), requests, chunk, include_dir=include_dir)

    return decide_by_looks(plan, base, score, say=say, resamples=resamples)


def decide_by_looks(
    plan: EvalDesign, base: BaselineSide, score: Scorer, *, say: Say, resamples: int = 10_000
) -> tuple[list[MetricResult], dict[tuple[str, str], TaskScores]]:
    """The looks: score each task's next chunk for its open metrics and decide them.

    A metric decided (PASS or FAIL) at a look keeps that outcome and the look it was decided at;
    later looks score and decide only the metrics still open, and a task's items are scored until
    every one of its metrics is decided or the last look is reached. The spec's verdict combines
    the metrics by intersection-union (``decide``: PASS only when every criterion passes), so a
    metric's early PASS never stops the evaluation of another that may still FAIL.
    """
    from gate.verdict.decide import compare_metric
    from gate.verdict.sample_size import measured_n_needed, schedule_looks
    from gate.verdict.sequential import decide_look

    results: dict[tuple[str, str], MetricResult] = {}
    scored: dict[tuple[str, str], TaskScores] = {}
    looks = {name: schedule_looks([_criterion(m, base) for m in t.metrics], t.n_total,
                              looks=4 if plan.sequential else 1, confidence=plan.confidence)
             for name, t in plan.tasks.items() if t.n_total > 0}
    open_metrics = {name: [m for m in plan.tasks[name].metrics] for name in looks}
    done_items = dict.fromkeys(looks, 0)
    look = 0
    while any(open_metrics.values()):
        chunk: dict[str, tuple[int, ...]] = {}
        for name in sorted(n for n, ms in open_metrics.items() if ms):
            sizes = looks[name].look_sizes
            chunk[name] = plan.tasks[name].order[done_items[name]: sizes[min(look, len(sizes) - 1)]]
        requests = [MetricRequest(m.tolerance.task, m.tolerance.metric) for n in chunk for m in open_metrics[n]]
        label = "; ".join(f"{n} items {done_items[n] + 1}-{done_items[n] + len(c)}" for n, c in chunk.items())
        say(f"quantized: look {look + 1}: {label}")
        got = score(chunk, requests)
        for name, items in chunk.items():
            done_items[name] += len(items)
            task = plan.tasks[name]
            seq = looks[name]
            index = min(look, seq.looks - 1)
            still_open = []
            for m in open_metrics[name]:
                scored[m.key] = _merge(scored.get(m.key), got[m.key])
                scores = paired(m, task.order, base.scores[m.key], scored[m.key], done_items[name])
                if seq.looks == 1:
                    result = compare_metric(m.tolerance, scores, confidence=plan.confidence, seed=plan.seed,
                                            resamples=resamples, n_total=task.n_total)
                    is_open = False
                else:
                    decision = decide_look(m.tolerance, scores, seq, index, plan.seed, resamples=resamples)
                    result, is_open = decision.result, decision.open
                if is_open:
                    still_open.append(m)
                elif result.outcome is Decision.inconclusive:
                    result = _with_needed(result, measured_n_needed(m.tolerance, scores, confidence=plan.confidence))
                if m.default_tolerance:
                    note = "stress suite at the default tolerance (add a quality.metrics entry to set your own)"
                    result = result.model_copy(update={"note": f"{result.note}; {note}" if result.note else note})
                results[m.key] = result
            open_metrics[name] = still_open if index < seq.looks - 1 else []
        look += 1
    ordered = [results[m.key] for m in plan.metrics if m.key in results]
    for m in plan.metrics:
        if m.key not in results:  # an empty task: nothing to compare
            ordered.append(_empty_result(m, plan.confidence))
    return ordered, scored


def _criterion(m: PlannedMetric, base: BaselineSide) -> tuple[Any, str, float | None]:
    """(tolerance, score kind, baseline accuracy) for the look floor of one metric."""
    scores = base.scores.get(m.key)
    kind = scores.kind if scores is not None else "binary"
    accuracy = float(np.mean(scores.values)) if scores is not None and kind == "binary" and scores.values else None
    return m.tolerance, kind, accuracy


def _with_needed(result: MetricResult, needed: int | None) -> MetricResult:
    """An undecided metric's result with the projected item count that would decide it."""
    if needed is None or needed <= result.n:
        return result
    text = f"needs about {needed:,} items"
    return result.model_copy(update={"n_needed": needed,
                                     "note": f"{result.note}; {text}" if result.note else text})


def _empty_result(m: PlannedMetric, confidence: float) -> MetricResult:
    tol = m.tolerance
    return MetricResult(task=tol.task, metric=tol.metric, n=0, n_total=0, baseline=0.0, quantized=0.0,
                        difference=0.0, ci_low=0.0, ci_high=0.0, confidence=confidence, tolerance=tol.tolerance,
                        tolerance_form=tol.tolerance_form, higher_is_better=tol.higher_is_better, method="none",
                        outcome=Decision.error, note="the task has no items")
