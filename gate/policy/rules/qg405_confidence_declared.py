"""QG405: the confidence level of the statistical decision is declared."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class ConfidenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_confidence: float = Field(default=0.9, gt=0.5, lt=1.0)


class ConfidenceDeclared(Rule):
    id = "QG405"
    slug = "quality.confidence-declared"
    summary = "`quality.confidence` is declared (default minimum 0.90), so pass/fail has a stated error rate."
    why = (
        "A tolerance only means something with a confidence level: the gate passes when the upper\n"
        "confidence bound of the drop is within tolerance. Left implicit, the error rate of the gate\n"
        "itself is unknown; set too low, noise passes."
    )
    example = "quality:\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 1.0}\n"
    use_instead = "quality:\n  confidence: 0.95\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 1.0}\n"
    params = ConfidenceParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, ConfidenceParams)
        quality = facts.loaded.spec.quality
        if quality is None or not quality.metrics:
            return
        if quality.confidence is None:
            yield Violation(
                "quality.confidence: missing; declare the confidence level of the intervals",
                key_path=("quality",),
                hint="add `confidence: 0.95`",
            )
        elif quality.confidence < params.min_confidence:
            yield Violation(
                f"quality.confidence: {quality.confidence:g} is below the policy's minimum of {params.min_confidence:g}",
                key_path=("quality", "confidence"),
                hint=f"use at least {params.min_confidence:g}",
            )
