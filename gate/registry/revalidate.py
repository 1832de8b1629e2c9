"""Re-validation after a stack upgrade: re-run passing models whose recorded runtime differs.

What counts as "the stack" is ``RUNTIME_KEYS``: the libraries and hardware a quantized model's
accuracy depends on. Python patch releases and OS details do not trigger a re-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate.registry.diff import Change, runtime_changes
from gate.registry.store import Registry, RunRecord
from gate.result import GateResult

RUNTIME_KEYS = ("torch", "transformers", "autoawq", "lm_eval", "torchao", "device", "cuda", "driver", "gpu",
                "serving", "serving_version")
"""``serving``/``serving_version``: the runtime the run was judged in and its version (compared with the
version of that runtime installed now)."""


@dataclass(frozen=True)
class Candidate:
    run: RunRecord
    """The newest run of the model (a passing one)."""
    changes: list[Change]
    """Runtime differences between that run and the current environment."""


@dataclass(frozen=True)
class Revalidation:
    model: str
    previous_run_id: int
    changes: list[Change]
    decision: str
    """The new run's decision (pass | fail | inconclusive | error)."""
    new_run_id: int | None
    message: str | None = None

    @property
    def regressed(self) -> bool:
        return self.decision != "pass"


def find_candidates(registry: Registry, current: dict[str, str], model: str | None = None) -> list[Candidate]:
    """Models whose newest run passed on a different stack than ``current``.

    A model whose newest run failed (e.g. a re-validation that regressed) is not a candidate:
    its regression is already on record and needs a human, not another re-run.
    """
    out = []
    for run in registry.latest_per_model():
        if run.verdict != "pass" or (model is not None and run.model != model):
            continue
        from gate.serve import installed_serving

        changes = runtime_changes(run.runtime, {**current, **installed_serving(run.runtime.get("serving"))},
                                  RUNTIME_KEYS)
        if changes:
            out.append(Candidate(run, changes))
    return out


def revalidate(
    registry: Registry,
    candidates: list[Candidate],
    rerun: Callable[[RunRecord], GateResult],
    *,
    git_commit: str | None = None,
) -> list[Revalidation]:
    """Re-run each candidate with ``rerun`` and record the new result in the registry."""
    outcomes = []
    for candidate in candidates:
        result = rerun(candidate.run)
        new_id = registry.record(result, git_commit=git_commit)
        outcomes.append(
            Revalidation(
                model=candidate.run.model,
                previous_run_id=candidate.run.id,
                changes=candidate.changes,
                decision=result.verdict.decision.value,
                new_run_id=new_id,
                message=result.verdict.reasons[0] if result.verdict.reasons else None,
            )
        )
    return outcomes
