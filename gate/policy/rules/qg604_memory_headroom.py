"""QG604: a fitting plan leaves headroom (estimates are estimates; allocators fragment)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity


class HeadroomParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_headroom: float = Field(default=0.10, ge=0, lt=1)
    """Minimum free fraction of the target's memory."""


class MemoryHeadroom(Rule):
    id = "QG604"
    slug = "plan.memory-headroom"
    stage = "plan"
    severity = Severity.warn
    summary = "The planned footprint leaves at least 10% of the target's memory free (policy-tunable)."
    why = (
        "The plan is an estimate (within about 15% for weights and KV cache); allocator fragmentation,\n"
        "longer-than-planned prompts and runtime upgrades eat the rest. A plan that fits with 2% to spare\n"
        "is one traffic spike from an out-of-memory crash."
    )
    example = (
        "# Llama-3.1-8B\nconstraint:\n  target: {hardware: nvidia-t4, memory_gb: 16, context: 8192, batch: 4}\n"
        "quantization: {method: int8, bits: 8, format: int8-weight-only}   # plan: 15.22 GB, 4.9% free\n"
    )
    use_instead = (
        "# Llama-3.1-8B\nconstraint:\n  target: {hardware: nvidia-t4, memory_gb: 16, context: 8192, batch: 4}\n"
        "quantization: {method: awq, bits: 4, group_size: 128, format: awq-gemm}   # plan: 11.53 GB, 28% free\n"
    )
    params = HeadroomParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, HeadroomParams)
        plan = facts.plan
        if plan is None or plan.fits is not True or plan.target_memory_gb is None or plan.headroom_gb is None:
            return
        fraction = plan.headroom_gb / plan.target_memory_gb
        if fraction >= params.min_headroom:
            return
        yield Violation(
            f"memory plan: {plan.label} needs {plan.total_gb:.2f} GB of {plan.target_memory_gb:g} GB, leaving "
            f"{fraction:.1%} headroom (policy minimum {params.min_headroom:.0%})",
            key_path=("constraint", "target"),
            hint="lower the precision, shorten context/batch, or pick a target with more memory",
        )
