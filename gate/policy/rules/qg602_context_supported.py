"""QG602: the serving context does not exceed the longest context the model supports."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class ContextSupported(Rule):
    id = "QG602"
    slug = "plan.context-supported"
    stage = "plan"
    waivable = False
    summary = "constraint.target.context is at most the model's maximum context (max_position_embeddings)."
    why = (
        "A model served past the context it was trained for produces garbage (or refuses the request),\n"
        "and the memory plan's KV cache would be sized for a workload that cannot happen. No waiver can\n"
        "make the positions exist."
    )
    example = "constraint:\n  target: {hardware: nvidia-l4, memory_gb: 24, context: 32768}   # model supports 8192\n"
    use_instead = "constraint:\n  target: {hardware: nvidia-l4, memory_gb: 24, context: 8192}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        plan = facts.plan
        if plan is None or plan.context_supported is not False:
            return
        yield Violation(
            f"constraint.target.context: {plan.context} tokens exceeds the {plan.max_context} the model supports "
            f"(max_position_embeddings of {plan.architecture})",
            key_path=("constraint", "target", "context"),
            hint=f"set `context` to {plan.max_context} or less, or choose a long-context variant of the model",
        )
