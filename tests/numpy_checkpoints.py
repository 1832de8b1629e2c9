"""Tiny checkpoints written with numpy (real safetensors, no torch): enough for the static stages
(`gate check`, `gate init`), which read headers and config.json only."""

from __future__ import annotations

import json
from pathlib import Path


def numpy_checkpoint(out: Path, config: dict[str, object], tensors: dict[str, tuple[int, ...]]) -> Path:
    """A real safetensors checkpoint written with numpy (no torch): enough for the static stages."""
    import numpy as np
    from safetensors.numpy import save_file

    out.mkdir(parents=True)
    save_file({name: np.zeros(shape, dtype=np.float16) for name, shape in tensors.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


_SHAPE = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 32, "vocab_size": 64,
          "max_position_embeddings": 512, "torch_dtype": "float16"}


def llama_dir(out: Path) -> Path:
    layer = "model.layers.0."
    return numpy_checkpoint(out, {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **_SHAPE}, {
        "model.embed_tokens.weight": (64, 32), f"{layer}self_attn.q_proj.weight": (32, 32),
        f"{layer}self_attn.k_proj.weight": (32, 32), f"{layer}self_attn.v_proj.weight": (32, 32),
        f"{layer}self_attn.o_proj.weight": (32, 32), f"{layer}mlp.up_proj.weight": (64, 32),
        f"{layer}mlp.down_proj.weight": (32, 64), "model.norm.weight": (32,), "lm_head.weight": (64, 32),
    })


def bert_dir(out: Path) -> Path:
    layer = "encoder.layer.0."
    return numpy_checkpoint(out, {"architectures": ["BertModel"], "model_type": "bert", **_SHAPE}, {
        "embeddings.word_embeddings.weight": (64, 32), f"{layer}attention.self.query.weight": (32, 32),
        f"{layer}attention.self.key.weight": (32, 32), f"{layer}attention.self.value.weight": (32, 32),
        f"{layer}intermediate.dense.weight": (64, 32), f"{layer}output.dense.weight": (32, 64),
    })
