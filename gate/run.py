"""``gate run``: the whole pipeline for one spec.

static stages (spec, weights, plan, policy) -> eval plan + sample-size check -> baseline
(resolved, then evaluated or taken from the baseline cache) -> quantize -> quantized evaluation
(sequential looks) -> verdict -> registry.

A blocking static outcome stops before any model is loaded; an eval set that cannot resolve its
tolerance stops before any model is evaluated. Only one model is resident at a time: the baseline
is loaded (only when something is missing from the cache), evaluated and freed before the
quantized model is loaded. Every stage is recorded with its timing and cache hit.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gate import __version__
from gate.errors import ExitCode, GateError
from gate.pipeline import StaticOptions, StaticOutcome, now_iso, run_static, spec_ref, static_result
from gate.result import Decision, Finding, GateResult, MetricResult, StageRecord, Verdict, exit_code_for

if TYPE_CHECKING:
    from gate.policy.engine import PolicySet

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    repo_root: Path
    cache_dir: Path
    device: str = "auto"
    """cpu | cuda | auto (cuda when available)."""
    policies_dir: Path | None = None
    policies_ref: str | None = None
    progress: bool = True
    registry_db: str | Path | None = None
    """Record the run in this registry, a SQLite path or a ``postgresql://`` URL (None: do not
    record); it also shares baseline results between runners."""
    registry_queue: Path | None = None
    """Where a record waits when the registry is unreachable (default: <repo>/.gate/registry-queue.jsonl)."""
    mlflow_uri: str | None = None
    """Also log the run to this MLflow tracking server (None: do not)."""
    mlflow_experiment: str | None = None
    record_run: bool = True
    """False: use the registry for shared baseline results only (``gate revalidate`` records itself)."""
    git_commit: str | None = None
    batch_size: int = 8
    seed: int = 0
    resamples: int = 10_000


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        from gate.errors import InputError

        raise InputError("--device cuda: no CUDA device is available", hint="use --device cpu or --device auto")
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Stages:
    """Records each stage; ``run`` re-raises ``GateError`` after recording the failure."""

    def __init__(self, records: list[StageRecord], say: Say) -> None:
        from gate.report.progress import active

        self.records = records
        self.say = say
        self.progress = active()

    def run(self, name: str, func: Callable[[], T], *, cache_hit: Callable[[T], bool | None] | None = None,
            message: Callable[[T], str | None] | None = None) -> T:
        start = time.perf_counter()
        if self.progress is not None:
            self.progress.stage(name)
        try:
            value = func()
        except GateError as exc:
            self.records.append(StageRecord(stage=name, status="failed", seconds=time.perf_counter() - start,
                                            message=exc.message))
            raise
        seconds = time.perf_counter() - start
        hit = cache_hit(value) if cache_hit else None
        self.records.append(StageRecord(stage=name, status="ok", seconds=seconds, cache_hit=hit,
                                        message=message(value) if message else None))
        self.say(f"{name}: done in {seconds:.1f} s" + (" (cached)" if hit else ""))
        return value

    def skip(self, *names_and_reason: str) -> None:
        *names, reason = names_and_reason
        for name in names:
            self.records.append(StageRecord(stage=name, status="skipped", message=reason))


def _console_say(enabled: bool) -> Say:
    from gate.report.progress import active

    progress = active()
    if progress is not None:  # gate run's own progress on the real terminal (library output goes to the log)
        return progress.say
    if not enabled:
        return lambda _msg: None
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    return lambda msg: console.print(f"[dim]gate run[/dim] {msg}")


def _free(*objects: Any) -> None:
    del objects
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


HEAVY_STAGES = ("eval-plan", "baseline", "evaluate-baseline", "quantize", "evaluate-quantized", "verdict")


def run_gate(path: Path, options: RunOptions, policy_set: PolicySet | None = None) -> GateResult:
    """Run every stage for one spec; return its ``GateResult`` (raises only on programming errors)."""
    say = _console_say(options.progress)
    static_options = StaticOptions(repo_root=options.repo_root, policies_dir=options.policies_dir,
                                   policies_ref=options.policies_ref)
    outcome = run_static(path, static_options, policy_set)
    if outcome.blocked:
        result = static_result(outcome, command="run")
        stages = [*result.stages, *(StageRecord(stage=s, status="skipped", message="a static stage blocked: nothing was "
                                                "quantized or evaluated") for s in HEAVY_STAGES)]
        return _record(result.model_copy(update={"stages": stages}), options, say)
    with tempfile.TemporaryDirectory(prefix="gate-tasks-") as scratch:
        try:
            result = _run_heavy(outcome, options, policy_set, Path(scratch), say)
        except GateError as exc:
            result = _error_result(outcome, exc)
    return _record(result, options, say)


def _run_heavy(outcome: StaticOutcome, options: RunOptions, policy_set: PolicySet | None, include_dir: Path,
               say: Say) -> GateResult:
    from gate.evaluate.baseline_cache import BaselineCache
    from gate.evaluate.plan import build_plan, sample_size_findings
    from gate.runtime import runtime_versions

    assert outcome.loaded is not None and outcome.facts is not None
    loaded = outcome.loaded
    stages = _Stages(outcome.stages, say)
    findings: list[Finding] = list(outcome.findings)
    hardware = outcome.facts.catalog.find(loaded.spec.constraint.target.hardware) if loaded.spec.constraint else None

    plan = stages.run("eval-plan", lambda: build_plan(loaded, options.repo_root, include_dir,
                                                      hardware_kind=hardware.kind if hardware else None,
                                                      seed=options.seed),
                      message=lambda p: f"{len(p.metrics)} metrics on {len(p.tasks)} tasks")
    policy = _inconclusive_policy(outcome, policy_set)
    refused = sample_size_findings(plan, inconclusive=policy)
    if refused:
        return _refused(outcome, findings + refused, "no model was evaluated", policy)

    device = resolve_device(options.device)
    from gate.evaluate.harness import EvalSettings, set_offline_defaults

    set_offline_defaults()
    settings = EvalSettings(batch_size=options.batch_size, device=device, seed=options.seed)
    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact

    baseline = stages.run("baseline", lambda: prepare_baseline(loaded, options.repo_root, options.cache_dir,
                                                                progress=options.progress),
                          message=lambda b: f"{b.source_kind} {b.source}")
    import torch  # noqa: F401 - hardware_versions() reports CUDA only once torch is imported

    from gate.evaluate.session import (
        baseline_complete,
        baseline_keys,
        cached_baseline,
        evaluate_baseline,
        evaluate_quantized,
    )

    runtime = runtime_versions()
    cache = BaselineCache(options.cache_dir, shared=_shared_baselines(options))
    keys = baseline_keys(plan, baseline.identity, settings, runtime)
    side = cached_baseline(cache, keys)
    if cache.shared_hits:
        say(f"baseline: {len(cache.shared_hits)} result(s) reused from the shared registry")

    def baseline_eval() -> Any:
        if baseline_complete(side):
            say("baseline: every result is in the baseline cache; the baseline is not loaded")
            return side
        model, tokenizer = load_for_eval(baseline.path, device)
        try:
            return evaluate_baseline(model, tokenizer, baseline.path, plan, side, keys, cache, settings=settings,
                                     include_dir=include_dir, say=say)
        finally:
            _free(model, tokenizer)

    was_cached = baseline_complete(side)
    side = stages.run("evaluate-baseline", baseline_eval, cache_hit=lambda _s: was_cached,
                      message=lambda s: "cached: " + ", ".join(k for k, v in s.cache_hits.items() if v) if any(
                          s.cache_hits.values()) else None)
    refused = sample_size_findings(plan, dict(side.scores), spent="only the baseline was evaluated", inconclusive=policy)
    if refused:
        return _refused(outcome, findings + refused, "only the baseline was evaluated", policy)

    artifact = stages.run("quantize", lambda: produce_artifact(loaded, baseline, options.repo_root, options.cache_dir,
                                                               progress=options.progress),
                          cache_hit=lambda a: a.cache_hit, message=lambda a: f"{a.method} {a.bits}-bit -> {a.path}")

    def quantized_eval() -> Any:
        from gate.evaluate.fidelity import compare as compare_fidelity
        from gate.evaluate.performance import check_constraint, measure

        model, tokenizer = load_for_eval(artifact.path, device)
        try:
            metrics, _scores = evaluate_quantized(model, tokenizer, plan, side, settings=settings,
                                                  include_dir=include_dir, say=say, resamples=options.resamples)
            assert side.reference is not None and side.performance is not None
            say("quantized: fidelity")
            fidelity = compare_fidelity(side.reference, model, plan.fidelity, device=device, max_kl=plan.max_kl,
                                        max_flip_rate=plan.max_flip_rate)
            say("quantized: speed and memory")
            perf = measure(model, tokenizer, artifact.path, plan.performance, device=device)
        finally:
            _free(model, tokenizer)
        performance = check_constraint(side.performance, perf, plan.targets, environment=runtime,
                                       baseline_cached=side.cache_hits.get("performance", False))
        return metrics, fidelity, performance

    metrics, fidelity, performance = stages.run("evaluate-quantized", quantized_eval)
    return _final(outcome, findings, metrics, fidelity, performance, artifact, runtime, policy_set, stages)


def _final(outcome: StaticOutcome, findings: list[Finding], metrics: list[MetricResult], fidelity: Any,
           performance: Any, artifact: Any, runtime: dict[str, str], policy_set: PolicySet | None,
           stages: _Stages) -> GateResult:
    from gate.verdict.decide import decide, exit_code

    policy = _inconclusive_policy(outcome, policy_set)
    findings = [*findings, *_measured_findings(outcome, performance, policy_set)]
    extra = [*fidelity.reasons]
    for check in performance.checks:
        if check.passed is False:
            extra.append(f"performance: {check.name} measured {check.measured:.4g}, target {check.target:.4g}")
        elif check.passed is None and check.note:
            extra.append(f"performance: {check.name} not judged ({check.note})")
    start = time.perf_counter()
    verdict = decide(metrics, findings=findings, fidelity_ok=fidelity.passed, performance_ok=performance.passed,
                     fidelity_inconclusive=fidelity.outcome == "inconclusive",
                     inconclusive=policy, extra_reasons=extra)
    stages.records.append(StageRecord(stage="verdict", status="ok", seconds=time.perf_counter() - start))
    assert outcome.loaded is not None
    return GateResult(
        gate_version=__version__, command="run", spec=spec_ref(outcome), started_at=outcome.started_at,
        finished_at=now_iso(), verdict=verdict, exit_code=int(exit_code(verdict, policy)), findings=findings,
        stages=stages.records, weights=_dump(outcome.facts.weights if outcome.facts else None),
        plan=_dump(outcome.facts.plan if outcome.facts else None), artifact=artifact.model_dump(mode="json"),
        metrics=metrics, fidelity=fidelity.model_dump(mode="json"), performance=performance.model_dump(mode="json"),
        runtime=runtime,
    )


def _measured_findings(outcome: StaticOutcome, performance: Any, policy_set: PolicySet | None) -> list[Finding]:
    """QG702/QG703: the constraint judged on what was measured (a memory-bound spec whose memory went up...)."""
    import dataclasses

    from gate.policy.engine import load_policy_set, run_measured_checks

    assert outcome.facts is not None
    policies = policy_set if policy_set is not None else load_policy_set(
        StaticOptions(repo_root=outcome.facts.repo_root))
    return run_measured_checks(dataclasses.replace(outcome.facts, performance=performance), policies)


def _inconclusive_policy(outcome: StaticOutcome, policy_set: PolicySet | None) -> Any:
    settings_for = getattr(policy_set, "settings_for", None)
    if settings_for is None or outcome.loaded is None:
        return "block"
    value = getattr(settings_for(outcome.loaded), "inconclusive", None)
    return value if value in ("block", "allow") else "block"


def _dump(section: Any) -> dict[str, Any] | None:
    return section.model_dump(mode="json") if section is not None else None


def _refused(outcome: StaticOutcome, findings: list[Finding], spent: str, policy: Any) -> GateResult:
    """An eval set that can never PASS: INCONCLUSIVE ("needs N items"); the policy's `inconclusive`
    decides whether it blocks."""
    from gate.verdict.decide import exit_code, inconclusive_reason

    refusals = [f for f in findings if f.rule_id == "QG490"]
    reasons = [*(f"{f.rule_id} {f.message}" for f in refusals), inconclusive_reason(policy)]
    base = static_result(outcome, command="run")
    stages = [*outcome.stages, *(StageRecord(stage=s, status="skipped", message=f"eval set too small: {spent}")
                                 for s in ("quantize", "evaluate-quantized", "verdict"))]
    verdict = Verdict(decision=Decision.inconclusive, reasons=reasons)
    return base.model_copy(update={
        "findings": findings, "stages": stages, "finished_at": now_iso(),
        "verdict": verdict, "exit_code": int(exit_code(verdict, policy)),
    })


def _error_result(outcome: StaticOutcome, error: GateError) -> GateResult:
    base = static_result(outcome, command="run")
    code = exit_code_for(Decision.error, ExitCode(error.exit_code))
    return base.model_copy(update={
        "stages": outcome.stages, "finished_at": now_iso(),
        "verdict": Verdict(decision=Decision.error, reasons=[str(error).splitlines()[0]]),
        "exit_code": int(code), "error": str(error),
    })


def _shared_baselines(options: RunOptions) -> Any:
    """The shared registry's baseline results (None for no registry or a per-runner SQLite file,
    whose runner already keeps them in its local cache)."""
    if options.registry_db is None:
        return None
    from gate.registry.baselines import shared_for

    return shared_for(options.registry_db)


def _record(result: GateResult, options: RunOptions, say: Say) -> GateResult:
    """Record the run in the registry (queued locally when it is unreachable) and in MLflow;
    neither can change the verdict."""
    if (options.registry_db is None or not options.record_run) and not options.mlflow_uri:
        return result
    from gate.registry.store import run_row

    row = run_row(result, git_commit=options.git_commit)  # one run_uid for the registry and MLflow
    records = []
    if options.registry_db is not None and options.record_run:
        from gate.registry.recording import record_or_queue

        queue = options.registry_queue or options.repo_root / ".gate" / "registry-queue.jsonl"
        records.append(record_or_queue(row, options.registry_db, queue, say=say))
    if options.mlflow_uri:
        from gate.registry.mlflow_export import log_to_mlflow

        records.append(log_to_mlflow(row, options.mlflow_uri, experiment=options.mlflow_experiment, say=say))
    return result.model_copy(update={"stages": [*result.stages, *records]}) if records else result
