"""The static stages (spec -> weights -> plan -> policy), shared by ``gate check`` and ``gate run``.

Facts are gathered first (weight scan, memory plan), then every rule runs once over them, so a
reviewer sees all findings at once. Nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import __version__
from gate.errors import ExitCode, GateError, InputError, MultiSpecError, SpecError
from gate.policy.facts import Facts
from gate.result import (
    Decision,
    Finding,
    GateResult,
    Location,
    Severity,
    SpecPower,
    SpecRef,
    StageRecord,
    Verdict,
    exit_code_for,
)
from gate.spec.loader import LoadedSpec, load_spec
from gate.spec.yaml_source import display_path

if TYPE_CHECKING:
    from gate.policy.policy_set import PolicySet


@dataclass(frozen=True)
class StaticOptions:
    """How to run the static stages."""

    repo_root: Path
    policies_dir: Path | None = None
    """Directory of org policies (default: ``<repo_root>/policies`` when it exists)."""
    policies_ref: str | None = None
    """Read ``policies/`` at this git ref instead (base-branch policies in PRs)."""
    today: dt.date = field(default_factory=dt.date.today)


@dataclass
class StaticOutcome:
    """What the static stages produced for one spec."""

    path: Path
    started_at: str
    loaded: LoadedSpec | None = None
    facts: Facts | None = None
    findings: list[Finding] = field(default_factory=list)
    checks: int | None = None
    """Rule checks that ran (None when the spec did not load)."""
    stages: list[StageRecord] = field(default_factory=list)
    error: GateError | None = None
    power: SpecPower | None = None
    """Chance of each criterion (and the spec) to PASS an unchanged model at the declared sizes."""

    @property
    def blocked(self) -> bool:
        return self.error is not None or any(f.blocking for f in self.findings)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_findings(error: GateError) -> list[Finding]:
    """A spec error as findings, so every report shows it at its file:line:col."""
    errors = error.errors if isinstance(error, MultiSpecError) else [error]
    return [
        Finding(
            rule_id="QG000",
            slug="spec.invalid",
            severity=Severity.deny,
            message=e.message,
            location=Location.of(e.location),
            hint=e.hint,
            stage="spec",
        )
        for e in errors
    ]


def run_static(path: Path, options: StaticOptions, policy_set: PolicySet | None = None) -> StaticOutcome:
    """Load the spec, gather facts, evaluate every rule. Never raises ``GateError``."""
    outcome = StaticOutcome(path=path, started_at=now_iso())

    def stage(name: str, func: Any) -> Any:
        start = time.perf_counter()
        try:
            value = func()
        except GateError as exc:
            outcome.stages.append(StageRecord(stage=name, status="failed", seconds=time.perf_counter() - start, message=exc.message))
            raise
        outcome.stages.append(StageRecord(stage=name, status="ok", seconds=time.perf_counter() - start))
        return value

    try:
        loaded = stage("spec", lambda: load_spec(path))
        outcome.loaded = loaded
        # Imported after the spec loads, so a spec error is reported even if a later stage is broken.
        from gate.plan.catalog import load_catalog
        from gate.plan.memory import plan_for_spec
        from gate.policy.engine import load_policy_set, run_checks
        from gate.weights import scan_spec_weights
        from gate.weights.calibration import inspect_calibration
        from gate.weights.interface import FileVerdict

        policies = policy_set if policy_set is not None else stage("policy-load", lambda: load_policy_set(options))
        catalog = policies.extend_catalog(load_catalog())
        # The NaN/Inf value check rides on the lockfile's sha256 pass (no extra read); policies may disable QG511.
        scan_values = policies.resolve("QG511", loaded.spec.metadata).enabled
        # Chat templates are diffed against the base branch the policies come from (QG517).
        weights = stage("weights", lambda: scan_spec_weights(
            loaded, options.repo_root, scan_values=scan_values, base_ref=options.policies_ref))
        calibration = stage("calibration", lambda: inspect_calibration(loaded, options.repo_root))
        tasks = None
        if (options.repo_root / "tasks").is_dir():  # suites.REPO_TASKS_DIR; imported only when there are tasks
            from gate.evaluate.suites import scan_spec_tasks

            tasks = stage("tasks", lambda: scan_spec_tasks(loaded, options.repo_root))
        if weights is not None and (weights.blocked_by_content or weights.with_verdict(FileVerdict.invalid)):
            # Never parse files the weight scan judged unsafe or invalid; its findings say why.
            plan = None
            outcome.stages.append(StageRecord(stage="plan", status="skipped", message="weights failed the scan"))
        else:
            plan = stage("plan", lambda: plan_for_spec(loaded, catalog, weights, options.repo_root))
            if plan is None:
                last = outcome.stages.pop()
                outcome.stages.append(last.model_copy(update={"status": "skipped",
                                                              "message": "weights not available locally"}))
        facts = Facts(
            loaded=loaded,
            catalog=catalog,
            today=options.today,
            repo_root=options.repo_root,
            weights=weights,
            plan=plan,
            calibration=calibration,
            tasks=tasks,
        )
        outcome.facts = facts
        evaluation = stage("policy", lambda: run_checks(facts, policies))
        outcome.findings = list(evaluation.findings)
        outcome.checks = evaluation.checks
        if loaded.spec.quality is not None:  # shown even when blocked: authors size the eval sets early
            outcome.power = spec_power(loaded, options.repo_root)
    except GateError as exc:
        outcome.error = exc
        outcome.findings.extend(error_findings(exc))
    return outcome


def spec_power(loaded: LoadedSpec, repo_root: Path) -> SpecPower | None:
    """``check_power`` for ``gate check``; a task it cannot read is the rules' to report, not this."""
    from gate.evaluate.plan import check_power

    try:
        return check_power(loaded, repo_root)
    except GateError:
        return None


def static_result(outcome: StaticOutcome, command: str = "check") -> GateResult:
    """The ``GateResult`` of ``gate check`` (static stages only)."""
    error = outcome.error
    if error is not None:
        decision = Decision.error
        reasons = [str(error).splitlines()[0]]
        code = exit_code_for(decision, ExitCode(error.exit_code))
    elif outcome.blocked:
        decision = Decision.failed
        blocking = [f for f in outcome.findings if f.blocking]
        reasons = [f"{f.rule_id} {f.message}" for f in blocking]
        code = ExitCode.BLOCKED
    else:
        decision = Decision.passed
        reasons = ["all static checks passed"]
        code = ExitCode.OK
    return GateResult(
        gate_version=__version__,
        command=command,
        spec=spec_ref(outcome),
        started_at=outcome.started_at,
        finished_at=now_iso(),
        verdict=Verdict(decision=decision, reasons=reasons),
        exit_code=int(code),
        findings=outcome.findings,
        checks=outcome.checks,
        stages=outcome.stages,
        weights=outcome.facts.weights.model_dump(mode="json") if outcome.facts and outcome.facts.weights else None,
        plan=outcome.facts.plan.model_dump(mode="json") if outcome.facts and outcome.facts.plan else None,
        power=outcome.power,
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


def find_repo_root(start: Path) -> Path:
    """The enclosing git work tree (or ``start`` itself when not in one)."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / ".git").exists():
            return candidate
    return current


__all__ = [
    "InputError",
    "SpecError",
    "StaticOptions",
    "StaticOutcome",
    "error_findings",
    "find_repo_root",
    "run_static",
    "static_result",
]
