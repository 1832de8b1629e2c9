"""QG606: the baseline is a causal language model (the only model class the gate can judge)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
"""transformers class names with a causal-LM head (``LlamaForCausalLM``, ``GPT2LMHeadModel``)."""

GGUF_ENCODERS = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5", "t5encoder", "modern-bert",
                           "neo-bert"})
"""llama.cpp architectures without a causal-LM head (embedding encoders, encoder-decoders)."""


def has_causal_lm_head(architecture: str) -> bool:
    """Whether the plan's architecture (config.json ``architectures[0]``, or ``gguf:<arch>``) is causal."""
    if architecture.startswith("gguf:"):
        return architecture.removeprefix("gguf:") not in GGUF_ENCODERS
    return architecture.endswith(CAUSAL_SUFFIXES)


class CausalLM(Rule):
    id = "QG606"
    slug = "plan.causal-lm"
    stage = "plan"
    summary = "The baseline has a causal-LM head (`config.json` `architectures` names a `*ForCausalLM` class)."
    why = (
        "The gate loads both models as causal language models and judges them on next-token\n"
        "log-likelihoods, generations, KL divergence and decode speed. An encoder (`BertModel`) or a\n"
        "classifier has no such head: transformers would bolt a randomly initialised one on, every\n"
        "metric would measure noise, and a PASS would mean nothing. Such a model is refused before\n"
        "any GPU time instead of being passed."
    )
    example = '# weights/encoder/config.json\n{"architectures": ["BertModel"], "model_type": "bert"}\n'
    use_instead = ('# weights/assistant/config.json\n{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}\n'
                   "# (validate encoders with a tool built for embeddings or classification)\n")

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        plan = facts.plan
        if plan is None or has_causal_lm_head(plan.architecture):
            return
        yield Violation(f"model: {not_causal_message(plan.architecture)}", key_path=("model",), hint=HINT)


HINT = "gate a causal LM (a *ForCausalLM checkpoint); if this one is, name its class in config.json `architectures`"


def not_causal_message(architecture: str) -> str:
    """Why the gate cannot judge ``architecture`` (also what ``gate init`` says)."""
    source = "the GGUF header's general.architecture" if architecture.startswith("gguf:") else "config.json `architectures`"
    return f"{architecture} has no causal-LM head ({source}); the gate can only judge causal language models"
