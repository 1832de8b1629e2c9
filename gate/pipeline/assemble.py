"""The one result assembler: every ``GateResult`` (check, run, refused, error) is built here.

A stage hands back its own frozen result type; this module writes its section into the contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gate import __version__
from gate.errors import GateError
from gate.pipeline.exit import exit_code
from gate.result import (
    Decision,
    Finding,
    GateResult,
    MetricResult,
    RuntimeInfo,
    ServingRuntime,
    SpecRef,
    StageRecord,
    Verdict,
)
from gate.spec.yaml_source import display_path

if TYPE_CHECKING:
    from gate.evaluate.interface import FidelityResult, PerformanceResult
    from gate.pipeline.static import StaticOutcome
    from gate.quantize.artifact import Artifact
    from gate.verdict.decide import InconclusivePolicy


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def static_verdict(outcome: StaticOutcome) -> Verdict:
    """ERROR for a spec that did not load or a stage that failed, FAIL for a blocking finding, else PASS."""
    if outcome.error is not None:
        return Verdict(decision=Decision.error, reasons=[str(outcome.error).splitlines()[0]])
    if outcome.blocked:
        return Verdict(decision=Decision.failed,
                       reasons=[f"{f.rule_id} {f.message}" for f in outcome.findings if f.blocking])
    return Verdict(decision=Decision.passed, reasons=["all static checks passed"])


def static_result(outcome: StaticOutcome, command: str = "check") -> GateResult:
    """The ``GateResult`` of the static stages alone (``gate check``; ``gate run`` when they block)."""
    return assemble(outcome, command=command, verdict=static_verdict(outcome), error=outcome.error)


def error_result(outcome: StaticOutcome, error: GateError, command: str = "run") -> GateResult:
    """A stage after the static ones raised ``error``: ERROR, with that error's exit code."""
    verdict = Verdict(decision=Decision.error, reasons=[str(error).splitlines()[0]])
    return assemble(outcome, command=command, verdict=verdict, error=error)


def assemble(outcome: StaticOutcome, *, command: str, verdict: Verdict, inconclusive: InconclusivePolicy = "block",
             error: GateError | None = None, findings: Sequence[Finding] | None = None,
             stages: Sequence[StageRecord] | None = None, artifact: Artifact | None = None,
             metrics: Sequence[MetricResult] = (), fidelity: FidelityResult | None = None,
             performance: PerformanceResult | None = None, runtime: dict[str, str] | None = None,
             serving: ServingRuntime | None = None) -> GateResult:
    """The result of one spec: the static outcome's sections, plus what later stages produced.

    ``findings`` and ``stages`` default to the static outcome's; the exit code follows from the
    verdict (``gate.pipeline.exit.exit_code``). Stage outputs become contract sections through
    ``gate.result_build``; ``runtime`` is ``gate.runtime.runtime_versions()``, ``serving`` the
    serving runtime the models were evaluated in (None: the gate's own process)."""
    from gate.result_build import artifact_record, criteria_of, fidelity_measurement, performance_measurement

    facts = outcome.facts
    return GateResult(
        gate_version=__version__,
        command=command,
        spec=spec_ref(outcome),
        started_at=outcome.started_at,
        finished_at=now_iso(),
        verdict=verdict,
        exit_code=int(exit_code(verdict, inconclusive, error=error)),
        findings=list(outcome.findings if findings is None else findings),
        checks=outcome.checks,
        stages=list(outcome.stages if stages is None else stages),
        weights=facts.weights if facts else None,
        plan=facts.plan if facts else None,
        artifact=artifact_record(artifact) if artifact is not None else None,
        criteria=criteria_of(metrics, fidelity, performance),
        power=outcome.power,
        fidelity=fidelity_measurement(fidelity) if fidelity is not None else None,
        performance=performance_measurement(performance) if performance is not None else None,
        runtime=RuntimeInfo.model_validate(runtime or {}).model_copy(update={"serving": serving}),
        error=str(error) if error is not None else None,
    )


def spec_ref(outcome: StaticOutcome) -> SpecRef:
    loaded = outcome.loaded
    if loaded is None:
        return SpecRef(path=display_path(outcome.path))
    spec = loaded.spec
    q = spec.quantization
    c = spec.calibration
    m = spec.model
    baseline = f"{m.hub}@{m.revision}" if m.hub else (m.path or m.gguf)
    return SpecRef(
        path=loaded.shown_path,
        name=spec.metadata.name,
        sha256=loaded.sha256,
        owner=spec.metadata.owner,
        tier=spec.metadata.tier.value,
        traffic_share=spec.metadata.traffic_share,
        method=q.method if q else None,
        bits=q.bits if q else None,
        group_size=q.group_size if q else None,
        format=q.format if q else None,
        baseline=baseline,
        calibration_source=c.source if c else None,
        calibration_sha256=c.sha256 if c else None,
        calibration_samples=c.samples if c else None,
        calibration_max_seq_len=c.max_seq_len if c else None,
    )
