"""The static stages (spec -> policy-load -> weights -> calibration -> tasks -> plan -> policy), the
first part of both ``gate check`` and ``gate run``.

Facts are gathered first (weight scan, memory plan), then every rule runs once over them, so a
reviewer sees all findings at once. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gate.errors import GateError, MultiSpecError
from gate.options import StaticOptions
from gate.pipeline.assemble import now_iso, static_result
from gate.pipeline.stages import StageRecorder
from gate.policy.facts import Facts
from gate.result import Finding, GateResult, Location, Severity, SpecPower, StageRecord
from gate.spec.loader import LoadedSpec, load_spec

if TYPE_CHECKING:
    from gate.policy.policy_set import PolicySet


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


def check_gate(path: Path, options: StaticOptions, policy_set: PolicySet | None = None) -> GateResult:
    """``gate check`` for one spec: the static stages, then their result (``gate run`` goes on instead)."""
    return static_result(run_static(path, options, policy_set))


def run_static(path: Path, options: StaticOptions, policy_set: PolicySet | None = None) -> StaticOutcome:
    """Load the spec, gather facts, evaluate every rule. Never raises ``GateError``."""
    outcome = StaticOutcome(path=path, started_at=now_iso())
    stages = StageRecorder(outcome.stages)
    try:
        loaded = stages.run("spec", lambda: load_spec(path))
        outcome.loaded = loaded
        # Imported after the spec loads, so a spec error is reported even if a later stage is broken.
        from gate.plan.catalog import load_catalog
        from gate.plan.memory import plan_for_spec
        from gate.policy.engine import load_policy_set, run_checks
        from gate.weights import scan_spec_weights
        from gate.weights.calibration import inspect_calibration
        from gate.weights.interface import FileVerdict

        policies = policy_set if policy_set is not None else stages.run("policy-load", lambda: load_policy_set(options))
        catalog = policies.extend_catalog(load_catalog())
        # The NaN/Inf value check rides on the lockfile's sha256 pass (no extra read); policies may disable QG511.
        scan_values = policies.resolve("QG511", loaded.spec.metadata).enabled
        # Chat templates are diffed against the base branch the policies come from (QG517).
        weights = stages.run("weights", lambda: scan_spec_weights(
            loaded, options.repo_root, scan_values=scan_values, base_ref=options.policies_ref))
        calibration = stages.run("calibration", lambda: inspect_calibration(loaded, options.repo_root))
        tasks = None
        if (options.repo_root / "tasks").is_dir():  # suites.REPO_TASKS_DIR; imported only when there are tasks
            from gate.evaluate.suites import scan_spec_tasks

            tasks = stages.run("tasks", lambda: scan_spec_tasks(loaded, options.repo_root))
        if weights is not None and (weights.blocked_by_content or weights.with_verdict(FileVerdict.invalid)):
            # Never parse files the weight scan judged unsafe or invalid; its findings say why.
            plan = None
            stages.skip(["plan"], "weights failed the scan")
        else:
            plan = stages.run("plan", lambda: plan_for_spec(loaded, catalog, weights, options.repo_root),
                              skipped=lambda p: "weights not available locally" if p is None else None)
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
        evaluation = stages.run("policy", lambda: run_checks(facts, policies))
        outcome.findings = list(evaluation.findings)
        outcome.checks = evaluation.checks
        if loaded.spec.quality is not None:  # shown even when blocked: authors size the eval sets early
            outcome.power = spec_power(loaded, options.repo_root)
    except GateError as exc:
        outcome.error = exc
        outcome.findings.extend(error_findings(exc))
    return outcome


def spec_power(loaded: LoadedSpec, repo_root: Path) -> SpecPower | None:
    """``check_power`` for ``gate check``; a task it cannot read is the rules' to report, not this.

    Remembered per spec (``gate.evaluate.power_cache``): a repeated check, the pre-commit case,
    imports neither numpy nor the verdict's statistics."""
    from gate.evaluate.power_cache import cached_power

    def compute() -> SpecPower | None:
        from gate.evaluate.design import check_power

        try:
            return check_power(loaded, repo_root)
        except GateError:
            return None

    return cached_power(loaded.sha256, repo_root, compute)


__all__ = ["StaticOptions", "StaticOutcome", "check_gate", "error_findings", "run_static", "spec_power"]
