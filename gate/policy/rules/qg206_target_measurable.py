"""QG206: the constraint's target states the limit the constraint is about."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import ConstraintKind


class TargetMeasurable(Rule):
    id = "QG206"
    slug = "constraint.limit-stated"
    summary = (
        "The target states the limit its constraint is about: memory_gb (memory), tokens_per_s "
        "(throughput), cost_per_million_tokens or hourly_cost (cost)."
    )
    why = (
        "A constraint without a number cannot be checked: the memory plan needs the memory limit, the\n"
        "performance stage needs the throughput target, a cost case needs the price it must beat."
    )
    example = "constraint:\n  kind: memory\n  statement: \"Must fit one L4.\"\n  target: {hardware: nvidia-l4}\n"
    use_instead = (
        "constraint:\n  kind: memory\n  statement: \"Must fit one L4.\"\n"
        "  target: {hardware: nvidia-l4, memory_gb: 24, context: 8192, batch: 4}\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        constraint = facts.loaded.spec.constraint
        if constraint is None:
            return
        target = constraint.target
        path = ("constraint", "target")
        if constraint.kind is ConstraintKind.memory and target.memory_gb is None:
            yield Violation(
                "constraint.target.memory_gb: missing; a memory-bound spec must state the memory limit",
                key_path=path,
                hint="add `memory_gb` (memory available to the model, GB) to `constraint.target`",
            )
        elif constraint.kind is ConstraintKind.throughput and target.tokens_per_s is None:
            yield Violation(
                "constraint.target.tokens_per_s: missing; a throughput-bound spec must state its throughput target",
                key_path=path,
                hint="add `tokens_per_s` to `constraint.target`",
            )
        elif constraint.kind is ConstraintKind.cost and target.cost_per_million_tokens is None and target.hourly_cost is None:
            yield Violation(
                "constraint.target: a cost-bound spec must state `cost_per_million_tokens` or `hourly_cost`",
                key_path=path,
                hint="add the cost ceiling (USD per million tokens) or the target's hourly price",
            )
