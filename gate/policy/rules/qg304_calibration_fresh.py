"""QG304: the calibration data is not older than the policy's freshness window."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class FreshnessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_days: int = Field(default=365, gt=0, description="Oldest acceptable collection date, in days before today.")


class CalibrationFresh(Rule):
    id = "QG304"
    slug = "calibration.fresh"
    summary = "The calibration set records when it was collected, within the policy's freshness window."
    why = (
        "Calibration must mirror production inputs, and traffic shifts. A set collected long ago (or of\n"
        "unknown age) calibrates for inputs the model no longer sees."
    )
    example = "calibration:\n  source: data/calibration/support.jsonl\n  collected: 2023-01-15\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n  collected: 2026-10-01\n"
    params = FreshnessParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, FreshnessParams)
        cal = facts.loaded.spec.calibration
        if cal is None:
            return
        if cal.collected is None:
            yield Violation(
                "calibration.collected: missing; record when the calibration data was collected",
                key_path=("calibration",),
                hint="add `collected: YYYY-MM-DD`",
            )
            return
        age = (facts.today - cal.collected).days
        if age > params.max_age_days:
            yield Violation(
                f"calibration.collected: {cal.collected.isoformat()} is {age} days old, "
                f"over the policy's {params.max_age_days}-day freshness window",
                key_path=("calibration", "collected"),
                hint="refresh the calibration set from recent production traffic",
            )
        elif age < 0:
            yield Violation(
                f"calibration.collected: {cal.collected.isoformat()} is in the future",
                key_path=("calibration", "collected"),
                hint="use the date the data was collected",
            )
