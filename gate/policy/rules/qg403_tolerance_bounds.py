"""QG403: tolerances stay within the bounds the policy sets (per tier, via scoped policy entries)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import TOLERANCE_FORMS


class ToleranceBounds(BaseModel):
    """The loosest tolerance a spec may declare for each form (None = unbounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_drop: float | None = Field(default=2.0, ge=0, description="Points of absolute drop (acc 0.73 = 73 points).")
    max_relative_drop: float | None = Field(default=0.05, ge=0, le=1)
    max_increase: float | None = Field(default=None, ge=0)
    max_relative_increase: float | None = Field(default=0.10, ge=0)
    max_kl: float | None = Field(default=0.10, ge=0, description="Mean KL per token, nats.")
    max_flip_rate: float | None = Field(default=0.15, ge=0, le=1)


class ToleranceWithinBounds(Rule):
    id = "QG403"
    slug = "quality.tolerance-bounds"
    summary = "Each declared tolerance is within the bound the policy sets for the spec's tier."
    why = (
        "Owners choose tolerances per use case, but a platform bounds them: a critical model may not\n"
        "accept a 5-point drop just because the owner wrote it down. Bounds are policy parameters,\n"
        "usually scoped per tier."
    )
    example = "metadata: {tier: critical}\nquality:\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 5.0}\n"
    use_instead = "metadata: {tier: critical}\nquality:\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 1.0}\n"
    params = ToleranceBounds

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, ToleranceBounds)
        spec = facts.loaded.spec
        quality = spec.quality
        if quality is None:
            return
        tier = spec.metadata.tier.value
        for index, metric in enumerate(quality.metrics):
            form = metric.tolerance_form
            assert form in TOLERANCE_FORMS
            bound = getattr(params, form)
            if bound is not None and metric.tolerance > bound:
                yield Violation(
                    f"quality.metrics[{index}].{form}: {metric.tolerance:g} for {metric.task}/{metric.metric} "
                    f"is above the policy's bound of {bound:g} for tier {tier}",
                    key_path=("quality", "metrics", index, form),
                    hint=f"tighten it to at most {bound:g}, or ask the platform team for a waiver",
                )
        fidelity = quality.fidelity
        if fidelity is None:
            return
        for name in ("max_kl", "max_flip_rate"):
            value = getattr(fidelity, name)
            bound = getattr(params, name)
            if value is not None and bound is not None and value > bound:
                yield Violation(
                    f"quality.fidelity.{name}: {value:g} is above the policy's bound of {bound:g} for tier {tier}",
                    key_path=("quality", "fidelity", name),
                    hint=f"tighten it to at most {bound:g}",
                )
