"""lm-eval as the task engine: per-item scores of an already-loaded model.

``evaluate_tasks`` wraps the model in lm-eval's ``HFLM`` (no reload), runs ``simple_evaluate`` with
``log_samples=True`` and turns the logged samples into ``TaskScores`` ordered by document id, so
the same items line up between baseline and quantized. Local tasks are loaded through
``TaskManager(include_path=..., include_defaults=False)`` (indexing lm-eval's ~15k built-in tasks
costs ~18 s, so the defaults are indexed only when a standard task is named). lm-eval is imported
inside the functions: ``gate check`` never pays for it.

The model runs wrapped in ``with_progress`` (``gate.evaluate.lm_progress``), so each lm-eval call
shows items done / total, elapsed and an estimate in the gate's progress; the same one-call helper
gives any other lm-eval model (the API models against a served runtime) the same progress. HFLM
itself reports a rolling (perplexity) call's documents only when the last one is done, so the
gate's HFLM subclass also counts the windows as their batches finish.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gate.errors import SourceLocation
from gate.evaluate.interface import EvaluateError, TaskError, TaskScores, score_kind
from gate.evaluate.suites import TaskSource, materialize
from gate.runtime import set_offline_defaults


@dataclass(frozen=True)
class EvalSettings:
    """How tasks are run; part of the baseline cache key."""

    batch_size: int = 8
    device: str = "cpu"
    max_length: int | None = None
    """Context window handed to HFLM (None: the model's own)."""
    seed: int = 0

    def key(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricRequest:
    """One (task, metric) whose per-item scores are wanted, and how many items to use."""

    task: str
    metric: str
    limit: int | None = None


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    sources: Sequence[TaskSource],
    requests: Sequence[MetricRequest],
    *,
    settings: EvalSettings,
    include_dir: Path,
    items: Mapping[str, Sequence[int]] | None = None,
) -> dict[tuple[str, str], TaskScores]:
    """Evaluate ``model`` on the requested tasks; return per-item scores keyed by (task, metric).

    ``items`` picks document indices per task (sequential looks); otherwise each request's
    ``limit`` (first N documents) or the whole task is used.
    """
    set_offline_defaults()
    import lm_eval
    from lm_eval.tasks import TaskManager

    from gate.evaluate.lm_progress import with_progress

    by_name = {s.name: s for s in sources}
    tasks = sorted({r.task for r in requests})
    missing = [t for t in tasks if t not in by_name]
    if missing:
        raise EvaluateError(f"internal: tasks {missing} were not resolved before evaluation")
    local = [by_name[t] for t in tasks if by_name[t].local]
    materialize(local, include_dir)
    standard = any(not by_name[t].local for t in tasks)
    manager = TaskManager(include_path=str(include_dir), include_defaults=standard, verbosity="ERROR")

    chosen: dict[str, list[int]] = {}
    for task in tasks:
        if items is not None and task in items:
            # Sorted on purpose: lm-eval 0.4.13 iterates the chosen documents in dataset order but
            # labels the k-th one ``samples[k]``, so an unsorted list mislabels doc ids and would
            # silently break the baseline/quantized pairing.
            chosen[task] = sorted(items[task])
            continue
        limits = [r.limit for r in requests if r.task == task]
        limit = None if any(x is None for x in limits) else max(x for x in limits if x is not None)
        if limit is not None:
            available = by_name[task].n_items
            chosen[task] = list(range(min(limit, available) if available is not None else limit))

    lm = with_progress(_reporting_hflm()(pretrained=model, tokenizer=tokenizer, batch_size=settings.batch_size,
                                         device=settings.device, max_length=settings.max_length))
    try:
        output = lm_eval.simple_evaluate(
            model=lm, tasks=tasks, task_manager=manager, log_samples=True, bootstrap_iters=0,
            samples=chosen or None, random_seed=settings.seed, numpy_random_seed=settings.seed,
            torch_random_seed=settings.seed, fewshot_random_seed=settings.seed, verbosity="ERROR",
        )
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        raise EvaluateError(f"lm-eval failed on tasks {', '.join(tasks)}: {type(exc).__name__}: {exc}",
                            hint="check the task YAML and its data; standard tasks need their datasets online") from exc
    if output is None:
        raise EvaluateError("lm-eval returned no results", hint="this happens on non-zero ranks; run single-process")
    return {(r.task, r.metric): _scores(r, output["samples"].get(r.task, [])) for r in requests}


@functools.cache
def _reporting_hflm() -> type[Any]:
    """HFLM that also reports each document of a rolling call when its last window is scored.

    HFLM splits every document into token windows, scores them in batches of ``batch_size``
    windows in request order (``_loglikelihood_tokens``) and tells the cache hook about the
    documents only after the last batch. Counting the windows per document up front (the same
    lm-eval function, on the same tokens) and the windows scored per batch says which documents
    are done while the call runs. The batches are HFLM's own: scores are unchanged.
    """
    from lm_eval import utils
    from lm_eval.models.huggingface import HFLM

    from gate.evaluate.lm_progress import CountingHook

    class ReportingHFLM(HFLM):
        _rolling: _RollingWindows | None = None

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            hook = self.cache_hook
            if not isinstance(hook, CountingHook) or self.world_size > 1 or self.batch_size == "auto":
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
            ends, windows = [], 0
            for request in requests:
                (text,) = request.args
                windows += sum(1 for _ in utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1))
                ends.append(windows)
            self._rolling = _RollingWindows(ends, [r.args for r in requests], hook)
            try:
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
            finally:
                self._rolling = None

        def _loglikelihood_tokens(self, requests: list[Any], *args: Any, **kwargs: Any) -> list[tuple[float, bool]]:
            answers = super()._loglikelihood_tokens(requests, *args, **kwargs)
            if self._rolling is not None:
                self._rolling.scored(len(requests))
            return answers

    return ReportingHFLM


class _RollingWindows:
    """A rolling call's documents by the cumulative count of windows that ends each."""

    def __init__(self, ends: list[int], args: list[tuple[Any, ...]], hook: Any) -> None:
        self.ends, self.args, self.hook = ends, args, hook
        self.windows = 0
        self.next = 0

    def scored(self, windows: int) -> None:
        self.windows += windows
        while self.next < len(self.ends) and self.ends[self.next] <= self.windows:
            self.hook.tracker.request_done("loglikelihood_rolling", self.args[self.next])
            self.next += 1


def _scores(request: MetricRequest, samples: list[dict[str, Any]]) -> TaskScores:
    if not samples:
        raise EvaluateError(f"task {request.task!r} produced no samples",
                            hint="the task's evaluation split is empty or its name is wrong")
    if request.metric not in samples[0]:
        available = [k for k in samples[0].get("metrics", [])]
        raise EvaluateError(f"task {request.task!r} has no metric {request.metric!r}",
                            hint=f"metrics of this task: {', '.join(available) or 'none'}")
    ordered = sorted(samples, key=lambda s: int(s["doc_id"]))
    raw = [s[request.metric] for s in ordered]
    doc_ids = [int(s["doc_id"]) for s in ordered]
    if isinstance(raw[0], (list, tuple)):
        # loglikelihood_rolling: (log-likelihood, words or bytes) -> (nll, count)
        pairs = [[-float(v[0]), float(v[1])] for v in raw]
        if any(not math.isfinite(p[0]) for p in pairs):
            raise EvaluateError(f"task {request.task!r}: the model produced non-finite log-likelihoods",
                                hint="the quantized weights are likely broken (NaN/Inf)")
        kind = score_kind(request.metric, [])
        if kind not in ("perplexity", "bits_per_byte"):
            kind = "perplexity"
        return TaskScores(task=request.task, metric=request.metric, kind=kind, doc_ids=doc_ids, values=pairs)
    values = [float(v) for v in raw]
    if any(not math.isfinite(v) for v in values):
        raise EvaluateError(f"task {request.task!r}: metric {request.metric!r} has non-finite item scores",
                            hint="the quantized weights are likely broken (NaN/Inf)")
    return TaskScores(task=request.task, metric=request.metric, kind=score_kind(request.metric, values),
                      doc_ids=doc_ids, values=values)


def count_items(
    source: TaskSource, include_dir: Path, location: SourceLocation | None = None, repo_root: Path | None = None
) -> int:
    """Items in a task's evaluation split, loading it through lm-eval when not known from its files."""
    if source.n_items is not None:
        return source.n_items
    set_offline_defaults()
    from lm_eval.tasks import TaskManager, get_task_dict

    materialize([source], include_dir)
    manager = TaskManager(include_path=str(include_dir), include_defaults=not source.local, verbosity="ERROR")
    try:
        task = get_task_dict([source.name], manager)[source.name]
        return len(list(task.eval_docs))
    except Exception as exc:  # lm-eval raises many types for unknown or offline tasks
        from gate.evaluate.suites import known_local_tasks
        from gate.suggest import did_you_mean

        local = known_local_tasks(repo_root)
        guess = did_you_mean(source.name, local)
        hint = f"did you mean `{guess}`? " if guess else ""
        raise TaskError(
            f"task {source.name!r} is not a shipped or repository task, and lm-eval could not load it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            hint=hint + "shipped suites: " + ", ".join(known_local_tasks(None))
            + "; a standard lm-eval task needs its dataset online or in the local Hugging Face cache",
            location=location,
        ) from None
