"""QG605: the group size divides the input size of every quantized layer."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class GroupSizeDivides(Rule):
    id = "QG605"
    slug = "plan.group-size-divides"
    stage = "plan"
    summary = "quantization.group_size divides the input size of every quantized linear layer."
    why = (
        "Group-wise quantizers (AWQ, GPTQ, RTN) split each row into groups of `group_size` input columns;\n"
        "a size that does not divide the layer fails at quantization time, after the GPU was booked.\n"
        "The checkpoint's headers give the exact shapes, so this is known before any GPU time."
    )
    example = "quantization: {method: awq, bits: 4, group_size: 128, format: awq-gemm}   # hidden size 576\n"
    use_instead = "quantization: {method: awq, bits: 4, group_size: 64, format: awq-gemm}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        plan = facts.plan
        if plan is None or not plan.indivisible_layers:
            return
        first = plan.indivisible_layers[0]
        more = max(plan.indivisible_count, len(plan.indivisible_layers)) - 1
        others = f" and {more} more" if more else ""
        hint = (f"use group_size: {plan.suggested_group_size}" if plan.suggested_group_size
                else "use a group size that divides every input size, or -1 (per channel)")
        yield Violation(
            f"quantization.group_size: {plan.group_size} does not divide the input size of {first}{others}",
            key_path=("quantization", "group_size"),
            hint=hint,
        )
