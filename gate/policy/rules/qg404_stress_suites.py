"""QG404: stress suites run for the tiers the policy names."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import StressSuite, Tier


class StressParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: tuple[Tier, ...] = (Tier.critical,)
    """Tiers that must run the suites."""
    suites: tuple[StressSuite, ...] = (StressSuite.reasoning, StressSuite.instructions, StressSuite.long_context)


class StressSuites(Rule):
    id = "QG404"
    slug = "quality.stress-suites"
    summary = "Tiers named by the policy run the stress suites: reasoning, instruction following, long context."
    why = (
        "Quantization breaks multi-step reasoning, precise instruction and format following, and\n"
        "long-context retrieval first, while fluent text hides it. Fluency is never proof of quality."
    )
    example = "metadata: {tier: critical}\nquality:\n  stress: [reasoning]\n"
    use_instead = "metadata: {tier: critical}\nquality:\n  stress: [reasoning, instructions, long_context]\n"
    params = StressParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, StressParams)
        spec = facts.loaded.spec
        if spec.metadata.tier not in params.tiers:
            return
        declared = set(spec.quality.stress) if spec.quality else set()
        missing = [s.value for s in params.suites if s not in declared]
        if missing:
            yield Violation(
                f"quality.stress: missing {', '.join(missing)}; required for tier {spec.metadata.tier.value}",
                key_path=("quality", "stress") if spec.quality and spec.quality.stress else ("quality",),
                hint=f"add `stress: [{', '.join(s.value for s in params.suites)}]` under `quality`",
            )
