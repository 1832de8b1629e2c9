"""QG607: the plan finds something to quantize."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class Quantizable(Rule):
    id = "QG607"
    slug = "plan.quantizable"
    stage = "plan"
    summary = "The checkpoint has linear layers inside decoder blocks for the quantizer to quantize."
    why = (
        "The backends quantize the 2-D linear weights of the decoder blocks (`model.layers.N.*`).\n"
        "When the plan finds none, the \"quantized\" model would be the baseline itself (or the\n"
        "quantizer would fail on the runner): the comparison measures nothing and a PASS would\n"
        "certify a quantization that never happened."
    )
    example = "# a checkpoint whose blocks are named encoder.layer.N.* (a BERT-style encoder): 0 quantizable parameters\n"
    use_instead = "# a decoder checkpoint: model.layers.N.self_attn.q_proj.weight, ... (a *ForCausalLM model)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        plan = facts.plan
        if plan is None or plan.quantized_parameters > 0:
            return
        yield Violation(f"model: {nothing_quantizable_message(plan.parameters, plan.architecture)}", key_path=("model",),
                        hint=HINT)


HINT = "gate a decoder-only causal LM whose blocks are named layers.N / h.N / blocks.N"


def nothing_quantizable_message(parameters: int, architecture: str) -> str:
    """The finding's text (also what ``gate init`` says)."""
    return (f"the plan finds 0 quantizable parameters in {parameters:,} ({architecture}): no linear layer sits inside "
            "a decoder block")
