"""QG301: the calibration sample count is within the policy's bounds."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class SampleBounds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_samples: int = Field(default=128, gt=0)
    max_samples: int = Field(default=512, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SampleBounds:
        if self.min_samples > self.max_samples:
            raise ValueError(f"min_samples ({self.min_samples}) is above max_samples ({self.max_samples})")
        return self


class CalibrationSamples(Rule):
    id = "QG301"
    slug = "calibration.sample-count"
    summary = "The calibration set has between 128 and 512 samples (bounds are policy parameters)."
    why = (
        "Too few samples miss the variety of production inputs (lengths, topics, formats) and the scales\n"
        "overfit them; far more costs calibration time without improving accuracy."
    )
    example = "calibration:\n  source: data/calibration/support.jsonl\n  samples: 16\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n  samples: 256\n"
    params = SampleBounds

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, SampleBounds)
        cal = facts.loaded.spec.calibration
        if cal is None:
            return
        if not params.min_samples <= cal.samples <= params.max_samples:
            side = "below" if cal.samples < params.min_samples else "above"
            yield Violation(
                f"calibration.samples: {cal.samples} is {side} the policy's bounds "
                f"({params.min_samples}-{params.max_samples})",
                key_path=("calibration", "samples"),
                hint=f"use {params.min_samples}-{params.max_samples} samples that mirror production inputs",
            )
