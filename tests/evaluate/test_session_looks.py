"""The quantized side's looks (``decide_by_looks``): decided metrics stay decided at the look that
decided them, open metrics keep being scored, and a FAIL is never hidden by another's early PASS.

The scorer stands in for the model (the true external boundary): it returns fixed per-item 0/1
scores for exactly the items and metrics it is asked for, and records what it was asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gate.errors import SourceLocation
from gate.evaluate.design import EvalDesign, PlannedMetric, PlannedTask
from gate.evaluate.fidelity import FidelitySettings
from gate.evaluate.harness import MetricRequest
from gate.evaluate.interface import TaskScores
from gate.evaluate.performance import ConstraintTargets, PerformanceSettings
from gate.evaluate.session import BaselineSide, decide_by_looks
from gate.evaluate.suites import TaskSource
from gate.result import Decision
from gate.spec.models import MetricTolerance
from gate.verdict.decide import decide

N = 8000


def _task(name: str, metrics: list[MetricTolerance]) -> PlannedTask:
    source = TaskSource(name=name, yaml_path=Path(f"{name}.yaml"), config={}, data_files=(), n_items=N,
                        sha256="0" * 64, shipped=False)
    planned = tuple(PlannedMetric(tolerance=t, location=SourceLocation("spec.yaml", 10 + i, 7))
                    for i, t in enumerate(metrics))
    return PlannedTask(source=source, order=tuple(range(N)), metrics=planned)


def _plan(tasks: list[PlannedTask]) -> EvalDesign:
    return EvalDesign(tasks={t.source.name: t for t in tasks}, confidence=0.95, sequential=True,
                    fidelity=FidelitySettings(texts_name="t"), fidelity_texts=Path("t.jsonl"), max_kl=None,
                    max_flip_rate=None, performance=PerformanceSettings(), targets=ConstraintTargets(kind=None))


def _scores(task: str, metric: str, values: np.ndarray) -> TaskScores:
    return TaskScores(task=task, metric=metric, kind="binary", doc_ids=list(range(len(values))),
                      values=[float(v) for v in values])


def test_decided_metrics_stay_decided_and_a_fail_is_not_hidden() -> None:
    base = (np.arange(N) % 10 < 7).astype(float)  # baseline accuracy 0.7
    # qa/acc: identical on the first 2000 items (PASS at look 1), much worse afterwards: a
    # re-decision at a later look would FAIL it; a decided metric keeps its look-1 PASS.
    early_pass = base.copy()
    early_pass[2000:2600] = 0
    # qa/em: 1.5 points worse throughout: not decided at look 1 (2000 items), FAIL at a later look.
    drifting = base.copy()
    drifting[np.arange(0, N, 47)] = 0
    # other/acc: identical everywhere: PASS at look 1.
    quant = {("qa", "acc"): early_pass, ("qa", "em"): drifting, ("other", "acc"): base}
    asked: list[tuple[int, list[tuple[str, str]]]] = []

    def score(chunk: dict[str, tuple[int, ...]], requests: list[MetricRequest]) -> dict[tuple[str, str], TaskScores]:
        asked.append((len(asked) + 1, [(r.task, r.metric) for r in requests]))
        out = {}
        for r in requests:
            items = np.asarray(chunk[r.task])
            out[(r.task, r.metric)] = TaskScores(task=r.task, metric=r.metric, kind="binary",
                                                 doc_ids=[int(i) for i in items],
                                                 values=[float(v) for v in quant[(r.task, r.metric)][items]])
        return out

    acc = MetricTolerance(task="qa", metric="acc", max_drop=2.0)
    em = MetricTolerance(task="qa", metric="em", max_drop=1.0)
    other = MetricTolerance(task="other", metric="acc", max_drop=2.0)
    plan = _plan([_task("qa", [acc, em]), _task("other", [other])])
    side = BaselineSide(scores={k: _scores(k[0], k[1], base) for k in quant})
    results, _ = decide_by_looks(plan, side, score, say=lambda _line: None, resamples=1000)
    by_key = {(r.task, r.metric): r for r in results}

    first = by_key[("qa", "acc")]
    assert (first.outcome, first.look, first.looks, first.n) == (Decision.passed, 1, 4, 2000)
    assert by_key[("other", "acc")].look == 1
    fail = by_key[("qa", "em")]
    assert fail.outcome is Decision.failed and fail.look is not None and fail.look > 1
    # After look 1 only the open metric is scored: qa/acc and other/acc are never asked again.
    assert asked[0] == (1, [("other", "acc"), ("qa", "acc"), ("qa", "em")])
    assert all(keys == [("qa", "em")] for _, keys in asked[1:]) and len(asked) == fail.look
    # Intersection-union: the early PASSes do not hide the FAIL.
    verdict = decide(results, findings=[], fidelity_ok=None, performance_ok=None)
    assert verdict.decision is Decision.failed
    assert verdict.reasons[0].startswith(f"qa/em: drop {fail.difference:.2f} points")
