"""QG603: a memory-bound spec states the serving context and batch the KV cache is sized for."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity
from gate.spec.models import ConstraintKind


class ServingShapeDeclared(Rule):
    id = "QG603"
    slug = "plan.serving-shape-declared"
    stage = "plan"
    severity = Severity.warn
    summary = "A memory-bound spec states `context` and `batch` in its target, so the KV cache can be sized."
    why = (
        "At serving time the KV cache (2 x layers x KV heads x head dim x context x batch x 2 bytes) can\n"
        "rival the weights: 8k context at batch 4 on Llama-3.1-8B is 4.29 GB next to 3.6 GB of int4 weights. Without the serving\n"
        "shape the plan assumes 2048 tokens at batch 1 and may call a model fitting that will not."
    )
    example = "constraint:\n  kind: memory\n  target: {hardware: nvidia-l4, memory_gb: 24}\n"
    use_instead = "constraint:\n  kind: memory\n  target: {hardware: nvidia-l4, memory_gb: 24, context: 8192, batch: 4}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        constraint = facts.loaded.spec.constraint
        if constraint is None or constraint.kind is not ConstraintKind.memory:
            return
        missing = [k for k in ("context", "batch") if getattr(constraint.target, k) is None]
        if not missing:
            return
        assumed = {"context": "2048 tokens", "batch": "batch 1"}
        yield Violation(
            f"constraint.target: {' and '.join(missing)} not stated; the memory plan assumes "
            f"{' and '.join(assumed[k] for k in missing)}",
            key_path=("constraint", "target"),
            hint="add the serving `context` (tokens) and `batch` (concurrent sequences) to `constraint.target`",
        )
