"""``gate run``: the static stages, then the heavy ones, for one spec.

static stages (spec, weights, plan, policy) -> eval-design + sample-size check -> baseline (resolved,
then evaluated or taken from the baseline cache) -> quantize -> quantized evaluation (sequential
looks) -> verdict -> registry (``gate.pipeline.record``).

A blocking static outcome stops before any model is loaded; an eval set that cannot resolve its
tolerance stops before any model is evaluated. Only one model is resident at a time: the baseline
is loaded (only when something is missing from the cache), evaluated and freed before the
quantized model is loaded. Every stage is recorded with its timing and cache hit.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import GateError
from gate.options import StaticOptions
from gate.pipeline.assemble import assemble, error_result, static_result
from gate.pipeline.record import record
from gate.pipeline.stages import HEAVY_STAGES, Say, StageRecorder
from gate.pipeline.static import StaticOutcome, run_static
from gate.result import Decision, Finding, GateResult, MetricResult, StageRecord, StageStatus, Verdict

if TYPE_CHECKING:
    from gate.evaluate.design import EvalDesign
    from gate.evaluate.harness import EvalSettings
    from gate.evaluate.session import BaselineKeys, BaselineSide
    from gate.policy.policy_set import PolicySet
    from gate.quantize.artifact import Artifact
    from gate.quantize.sources import Baseline
    from gate.serve import ServingSession
    from gate.verdict.decide import InconclusivePolicy


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


def run_gate(path: Path, options: RunOptions, policy_set: PolicySet | None = None) -> GateResult:
    """Run every stage for one spec; return its ``GateResult`` (raises only on programming errors)."""
    say = _console_say(options.progress)
    static_options = StaticOptions(repo_root=options.repo_root, policies_dir=options.policies_dir,
                                   policies_ref=options.policies_ref)
    outcome = run_static(path, static_options, policy_set)
    if outcome.blocked:
        StageRecorder(outcome.stages).skip(HEAVY_STAGES, "a static stage blocked: nothing was quantized or evaluated")
        return record(static_result(outcome, command="run"), options, say)
    with tempfile.TemporaryDirectory(prefix="gate-tasks-") as scratch:
        try:
            result = _run_heavy(outcome, options, policy_set, Path(scratch), say)
        except GateError as exc:
            result = error_result(outcome, exc)
    return record(result, options, say)


@dataclass(frozen=True)
class _Heavy:
    """What every heavy stage of one run reads."""

    outcome: StaticOutcome
    options: RunOptions
    policy_set: PolicySet | None
    include_dir: Path
    """Scratch directory for generated lm-eval task files."""
    say: Say
    stages: StageRecorder
    inconclusive: InconclusivePolicy


def _run_heavy(outcome: StaticOutcome, options: RunOptions, policy_set: PolicySet | None, include_dir: Path,
               say: Say) -> GateResult:
    from gate.evaluate.design import sample_size_findings
    from gate.report.progress import active

    run = _Heavy(outcome, options, policy_set, include_dir, say, StageRecorder(outcome.stages, say=say,
                 progress=active()), _inconclusive_policy(outcome, policy_set))
    plan = _eval_plan_stage(run)
    refused = sample_size_findings(plan, inconclusive=run.inconclusive)
    if refused:
        return _refused(run, refused, "no model was evaluated")

    device = resolve_device(options.device)
    from gate.evaluate.harness import EvalSettings, set_offline_defaults
    from gate.quantize import prepare_baseline, produce_artifact

    set_offline_defaults()
    settings = EvalSettings(batch_size=options.batch_size, device=device, seed=options.seed)
    assert outcome.loaded is not None
    loaded = outcome.loaded
    baseline = run.stages.run("baseline", lambda: prepare_baseline(loaded, options.repo_root, options.cache_dir,
                                                                    progress=options.progress),
                              message=lambda b: f"{b.source_kind} {b.source}")
    import torch  # noqa: F401 - hardware_versions() reports CUDA only once torch is imported

    from gate.runtime import runtime_versions

    runtime = runtime_versions()
    serving = _serving(run, device)
    side = _evaluate_baseline_stage(run, plan, baseline, settings, {**runtime, **serving.cache_identity()}, serving)
    refused = sample_size_findings(plan, dict(side.scores), spent="only the baseline was evaluated",
                                   inconclusive=run.inconclusive)
    if refused:
        return _refused(run, refused, "only the baseline was evaluated")

    artifact = run.stages.run("quantize", lambda: produce_artifact(loaded, baseline, options.repo_root,
                                                                   options.cache_dir, progress=options.progress),
                              cache_hit=lambda a: a.cache_hit, message=lambda a: f"{a.method} {a.bits}-bit -> {a.path}")
    metrics, fidelity, performance = _evaluate_quantized_stage(run, plan, side, artifact, runtime, serving)
    return _verdict_stage(run, metrics, fidelity, performance, artifact, runtime, serving)


def _serving(run: _Heavy, device: str) -> ServingSession:
    """The spec's serving runtime (``serving``, or the default for its target and format), checked
    installed at an acceptable version before any model is loaded; baseline and candidate are both
    served by it (``gate.serve``)."""
    from gate.serve import start_session

    assert run.outcome.loaded is not None and run.outcome.facts is not None
    spec = run.outcome.loaded.spec
    hardware = run.outcome.facts.catalog.find(spec.constraint.target.hardware) if spec.constraint else None
    return start_session(spec, hardware.kind if hardware else None, work_dir=run.include_dir / ".serve",
                         cache_dir=run.options.cache_dir, device=device, eval_batch_size=run.options.batch_size,
                         seed=run.options.seed)


def _eval_plan_stage(run: _Heavy) -> EvalDesign:
    from gate.evaluate.design import build_design

    outcome = run.outcome
    assert outcome.loaded is not None and outcome.facts is not None
    loaded = outcome.loaded
    constraint = loaded.spec.constraint
    hardware = outcome.facts.catalog.find(constraint.target.hardware) if constraint else None
    return run.stages.run("eval-design", lambda: build_design(loaded, run.options.repo_root, run.include_dir,
                                                          hardware_kind=hardware.kind if hardware else None,
                                                          seed=run.options.seed),
                          message=lambda p: f"{len(p.metrics)} metrics on {len(p.tasks)} tasks")


def _evaluate_baseline_stage(run: _Heavy, plan: EvalDesign, baseline: Baseline, settings: EvalSettings,
                             runtime: dict[str, str], serving: ServingSession) -> BaselineSide:
    """The baseline's scores, reference logits and performance: from the baseline cache (local, then
    the shared registry), else by loading and evaluating the baseline."""
    from gate.evaluate.baseline_cache import BaselineCache
    from gate.evaluate.session import baseline_complete, baseline_keys, cached_baseline

    cache = BaselineCache(run.options.cache_dir, shared=_shared_baselines(run.options))
    keys = baseline_keys(plan, baseline.identity, settings, runtime)
    side = cached_baseline(cache, keys)
    if cache.shared_hits:
        run.say(f"baseline: {len(cache.shared_hits)} result(s) reused from the shared registry")
    was_cached = baseline_complete(side)
    return run.stages.run(
        "evaluate-baseline", lambda: _evaluate_baseline(run, plan, baseline, side, keys, cache, serving),
        cache_hit=lambda _s: was_cached,
        message=lambda s: "cached: " + ", ".join(k for k, v in s.cache_hits.items() if v)
        if any(s.cache_hits.values()) else None)


def _evaluate_baseline(run: _Heavy, plan: EvalDesign, baseline: Baseline, side: BaselineSide, keys: BaselineKeys,
                       cache: Any, serving: ServingSession) -> BaselineSide:
    from gate.evaluate.session import baseline_complete, evaluate_baseline

    if baseline_complete(side):
        run.say("baseline: every result is in the baseline cache; the baseline is not loaded")
        return side
    with serving.open(baseline.path, "baseline", identity=baseline.identity) as served:
        return evaluate_baseline(served, plan, side, keys, cache, include_dir=run.include_dir, say=run.say)


def _evaluate_quantized_stage(run: _Heavy, plan: EvalDesign, side: BaselineSide, artifact: Artifact,
                              runtime: dict[str, str], serving: ServingSession) -> tuple[list[MetricResult], Any, Any]:
    return run.stages.run("evaluate-quantized",
                          lambda: _evaluate_quantized(run, plan, side, artifact, runtime, serving))


def _evaluate_quantized(run: _Heavy, plan: EvalDesign, side: BaselineSide, artifact: Artifact,
                        runtime: dict[str, str], serving: ServingSession) -> tuple[list[MetricResult], Any, Any]:
    """The quantized model's metrics (sequential looks), fidelity against the baseline's reference,
    and speed/memory against the constraint, all inside the serving runtime."""
    from gate.evaluate.performance import check_constraint
    from gate.evaluate.session import evaluate_quantized

    with serving.open(artifact.path, "candidate") as served:
        metrics, _scores = evaluate_quantized(served, plan, side, include_dir=run.include_dir, say=run.say,
                                              resamples=run.options.resamples)
        assert side.reference is not None and side.performance is not None
        run.say("quantized: fidelity")
        fidelity = served.fidelity_compare(side.reference, plan.fidelity, max_kl=plan.max_kl,
                                           max_flip_rate=plan.max_flip_rate)
        run.say("quantized: speed and memory")
        perf = served.performance(plan.performance)
        served.check_alive()
    performance = check_constraint(side.performance, perf, plan.targets, environment=runtime,
                                   baseline_cached=side.cache_hits.get("performance", False),
                                   serving_declared=serving.choice.declared)
    return metrics, fidelity, performance


def _verdict_stage(run: _Heavy, metrics: list[MetricResult], fidelity: Any, performance: Any, artifact: Artifact,
                   runtime: dict[str, str], serving: ServingSession) -> GateResult:
    from gate.result import ServingRuntime
    from gate.verdict.decide import decide

    findings = [*run.outcome.findings, *_measured_findings(run.outcome, performance, run.policy_set)]
    extra = [*fidelity.reasons]
    for check in performance.checks:
        if check.passed is False:
            extra.append(f"performance: {check.name} measured {check.measured:.4g}, target {check.target:.4g}"
                         + (f" ({check.note})" if check.note and performance.quantized.fallback else ""))
        elif check.passed is None and check.note:
            extra.append(f"performance: {check.name} not judged ({check.note})")
    start = time.perf_counter()
    verdict = decide(metrics, findings=findings, fidelity_ok=fidelity.passed, performance_ok=performance.passed,
                     fidelity_inconclusive=fidelity.outcome == "inconclusive",
                     inconclusive=run.inconclusive, extra_reasons=extra)
    run.stages.records.append(StageRecord(stage="verdict", status=StageStatus.ok, seconds=time.perf_counter() - start))
    return assemble(run.outcome, command="run", verdict=verdict, inconclusive=run.inconclusive, findings=findings,
                    artifact=artifact, metrics=metrics, fidelity=fidelity, performance=performance, runtime=runtime,
                    serving=ServingRuntime.model_validate(serving.record(performance.quantized.dtype or None,
                                                                         performance.quantized.fallback)))


def _measured_findings(outcome: StaticOutcome, performance: Any, policy_set: PolicySet | None) -> list[Finding]:
    """QG702/QG703: the constraint judged on what was measured (a memory-bound spec whose memory went up...)."""
    from gate.policy.engine import load_policy_set, run_measured_checks

    assert outcome.facts is not None
    policies = policy_set if policy_set is not None else load_policy_set(
        StaticOptions(repo_root=outcome.facts.repo_root))
    return run_measured_checks(dataclasses.replace(outcome.facts, performance=performance), policies)


def _inconclusive_policy(outcome: StaticOutcome, policy_set: PolicySet | None) -> InconclusivePolicy:
    settings_for = getattr(policy_set, "settings_for", None)
    if settings_for is None or outcome.loaded is None:
        return "block"
    value = getattr(settings_for(outcome.loaded), "inconclusive", None)
    return "allow" if value == "allow" else "block"


def _refused(run: _Heavy, refused: list[Finding], spent: str) -> GateResult:
    """An eval set that can never PASS: INCONCLUSIVE ("needs N items"); the policy's `inconclusive`
    decides whether it blocks."""
    from gate.verdict.decide import inconclusive_reason

    findings = [*run.outcome.findings, *refused]
    reasons = [*(f"{f.rule_id} {f.message}" for f in findings if f.rule_id == "QG490"),
               inconclusive_reason(run.inconclusive)]
    run.stages.skip(("quantize", "evaluate-quantized", "verdict"), f"eval set too small: {spent}")
    verdict = Verdict(decision=Decision.inconclusive, reasons=reasons)
    return assemble(run.outcome, command="run", verdict=verdict, inconclusive=run.inconclusive, findings=findings)


def _shared_baselines(options: RunOptions) -> Any:
    """The shared registry's baseline results (None for no registry or a per-runner SQLite file,
    whose runner already keeps them in its local cache)."""
    if options.registry_db is None:
        return None
    from gate.registry.baselines import shared_for

    return shared_for(options.registry_db)
