"""QG601: the quantized model, its KV cache and runtime fit the target's memory (static estimate)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from gate.plan.memory import human_bytes
from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import ConstraintKind


class MemoryFitsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    constraint_kinds: tuple[ConstraintKind, ...] = (ConstraintKind.memory, ConstraintKind.throughput, ConstraintKind.cost)
    """Constraint kinds the rule applies to (a model that does not fit cannot serve any of them)."""


class MemoryFits(Rule):
    id = "QG601"
    slug = "plan.memory-fits"
    stage = "plan"
    summary = "The planned precision fits the target's memory: weights + scales + kept tensors + KV cache + overhead."
    why = (
        "Quantizing and evaluating a model that cannot fit its target wastes GPU time and ends in a\n"
        "deployment that fails. The plan computes the footprint from the checkpoint's own headers\n"
        "(exact shapes), config.json (layers, KV heads, head dim) and the target's context and batch,\n"
        "before any GPU minute is spent, and names the largest precision that would fit."
    )
    example = (
        "# Llama-3.1-8B\nconstraint:\n  kind: memory\n  target: {hardware: nvidia-l4, memory_gb: 12, context: 8192, batch: 4}\n"
        "quantization: {method: int8, bits: 8, format: int8-weight-only}   # plan: 15.22 GB > 12 GB\n"
    )
    use_instead = (
        "# Llama-3.1-8B\nconstraint:\n  kind: memory\n  target: {hardware: nvidia-l4, memory_gb: 12, context: 8192, batch: 4}\n"
        "quantization: {method: awq, bits: 4, group_size: 128, format: awq-gemm}   # plan: 11.53 GB, fits\n"
    )
    params = MemoryFitsParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, MemoryFitsParams)
        plan, constraint = facts.plan, facts.loaded.spec.constraint
        if plan is None or plan.fits is not False or constraint is None or constraint.kind not in params.constraint_kinds:
            return
        assert plan.target_memory_gb is not None
        where = f" on {plan.target_hardware}" if plan.target_hardware else ""
        text = (
            f"memory plan: {plan.label} needs {plan.total_gb:.2f} GB > {plan.target_memory_gb:g} GB{where} "
            f"({plan.breakdown()}; context {plan.context} x batch {plan.batch})"
        )
        fitting = [f for f in plan.fitting_precisions if f.fits]
        if plan.largest_fitting:
            text += f"; largest precision that fits: {plan.largest_fitting}"
            hint = f"lower the precision to {fitting[0].label}, shorten context/batch, or pick a larger target"
        else:
            text += "; no precision of 4 bits or more fits"
            hint = "pick a target with more memory, or shorten the context or batch (below 4 bits needs a QAT plan)"
        key = ("constraint", "target", "memory_gb") if constraint.target.memory_gb is not None else ("constraint", "target")
        yield Violation(text, key_path=key, hint=hint, detail={
            "total_bytes": plan.total_bytes, "target_memory_gb": plan.target_memory_gb,
            "kv_cache": human_bytes(plan.kv_cache_bytes), "largest_fitting": plan.largest_fitting,
        })
