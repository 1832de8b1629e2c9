"""Checkpoints described by shape alone (no files): published Llama-style architectures, for
known-answer tests of the memory plan and for the plan facts in ``tests/policy/cases/QG6*.yaml``."""

from __future__ import annotations

from gate.plan.checkpoint import Checkpoint, ModelShape, TensorInfo


def llama_checkpoint(
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    max_context: int,
    tied: bool = False,
    architecture: str = "LlamaForCausalLM",
    bits: int = 16,
) -> Checkpoint:
    head_dim = hidden // heads
    tensors = [TensorInfo("model.embed_tokens.weight", (vocab, hidden), bits)]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors += [
            TensorInfo(p + "self_attn.q_proj.weight", (heads * head_dim, hidden), bits),
            TensorInfo(p + "self_attn.k_proj.weight", (kv_heads * head_dim, hidden), bits),
            TensorInfo(p + "self_attn.v_proj.weight", (kv_heads * head_dim, hidden), bits),
            TensorInfo(p + "self_attn.o_proj.weight", (hidden, heads * head_dim), bits),
            TensorInfo(p + "mlp.gate_proj.weight", (intermediate, hidden), bits),
            TensorInfo(p + "mlp.up_proj.weight", (intermediate, hidden), bits),
            TensorInfo(p + "mlp.down_proj.weight", (hidden, intermediate), bits),
            TensorInfo(p + "input_layernorm.weight", (hidden,), bits),
            TensorInfo(p + "post_attention_layernorm.weight", (hidden,), bits),
        ]
    tensors.append(TensorInfo("model.norm.weight", (hidden,), bits))
    if not tied:
        tensors.append(TensorInfo("lm_head.weight", (vocab, hidden), bits))
    shape = ModelShape(
        architecture=architecture, model_type="llama", layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, hidden=hidden, vocab=vocab, max_context=max_context, tie_word_embeddings=tied,
        dtype="bfloat16",
    )
    return Checkpoint(source="path", location="weights/llama", tensors=tuple(tensors), shape=shape)


def llama3_8b() -> Checkpoint:
    """Meta-Llama-3.1-8B's published config: 8.03B parameters."""
    return llama_checkpoint(hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, vocab=128256,
                            max_context=131072)


def smollm2_135m() -> Checkpoint:
    """SmolLM2-135M's published config (hidden 576: not divisible by 128)."""
    return llama_checkpoint(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, vocab=49152,
                            max_context=8192, tied=True)
