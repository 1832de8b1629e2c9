"""Tiny Llama-style models built locally (no Hub): a BPE tokenizer trained on a small English
corpus, a random or briefly trained LlamaForCausalLM, saved as safetensors."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "A model is quantized when its weights are stored with fewer bits.",
    "Calibration data should mirror the inputs seen in production.",
    "The baseline and the quantized model answer the same questions.",
    "Memory of weights is parameters times bits divided by eight.",
    "Reviewers read the report before they approve the pull request.",
    "Every spec names its constraint, precision, calibration and tolerance.",
    "Small evaluation sets cannot resolve tight tolerances without pairing.",
    "The river flows past the old mill and into the quiet valley.",
    "She counted seven apples, gave away three, and kept the rest.",
    "If it rains tomorrow, the match will be moved to the indoor court.",
    "Numbers one two three four five six seven eight nine ten.",
]


def corpus(repeat: int = 20) -> list[str]:
    return [f"{line} {CORPUS_LINES[(i + 3) % len(CORPUS_LINES)]}" for i, line in enumerate(CORPUS_LINES * repeat)]


def train_tokenizer(out_dir: Path, vocab_size: int = 384) -> None:
    """Train a byte-level BPE tokenizer and save it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(out_dir)


def build_tiny_llama(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    train_steps: int = 0,
    seed: int = 0,
) -> Path:
    """Write a tiny LlamaForCausalLM (safetensors + config + tokenizer) into ``out_dir``.

    ``train_steps`` > 0 trains it briefly on the corpus so its predictions carry signal
    (perplexity well below the vocabulary size), which quality tests need.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    if train_steps > 0:
        texts = corpus()
        batch = tokenizer(texts[:64], return_tensors="pt", padding=True, truncation=True, max_length=48)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(train_steps):
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optim.step()
            optim.zero_grad()
        model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "tiny_model.json").write_text(json.dumps({"train_steps": train_steps, "seed": seed}))
    return out_dir
