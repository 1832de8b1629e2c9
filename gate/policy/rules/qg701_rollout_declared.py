"""QG701: rollout behind a flag, with a traffic slice and rollback, for tiers the policy names."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import Tier


class RolloutParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: tuple[Tier, ...] = (Tier.critical, Tier.standard)


class RolloutDeclared(Rule):
    id = "QG701"
    slug = "rollout.declared"
    summary = "Tiers named by the policy declare a rollout flag, a traffic slice and rollback to the archived baseline."
    why = (
        "Offline evaluation never covers all of production. The quantized model goes out behind a flag\n"
        "on a slice of traffic against the original, with the full-precision weights archived for\n"
        "one-step rollback (SCALE stage 5)."
    )
    example = "metadata: {tier: standard}\nrollout: {flag: quant-support}\n"
    use_instead = "metadata: {tier: standard}\nrollout: {flag: quant-support, traffic_slice: 0.05, rollback: baseline}\n"
    params = RolloutParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, RolloutParams)
        spec = facts.loaded.spec
        if spec.metadata.tier not in params.tiers:
            return
        rollout = spec.rollout
        tier = spec.metadata.tier.value
        if rollout is None:
            yield Violation(
                f"rollout: missing; required for tier {tier}",
                key_path=("rollout",),
                hint="add `rollout: {flag: ..., traffic_slice: 0.05, rollback: baseline}`",
            )
            return
        for key, hint in (
            ("flag", "name the feature flag that routes traffic to the quantized model"),
            ("traffic_slice", "add the initial fraction of traffic, e.g. 0.05"),
            ("rollback", "add `rollback: baseline` (the archived full-precision weights)"),
        ):
            if getattr(rollout, key) is None:
                yield Violation(f"rollout.{key}: missing; required for tier {tier}", key_path=("rollout",), hint=hint)
