"""A tiny Llama whose tokenizer llama.cpp's converter understands: a SentencePiece model trained
on the tiny corpus (``tokenizer.model``), so ``convert_hf_to_gguf.py`` takes its SentencePiece
path rather than the BPE path, which only knows the pre-tokenizers of published models. Byte
fallback is on: llama.cpp's SentencePiece vocabulary needs the ``<0x0A>`` byte tokens (without them
llama-imatrix aborts with ``unordered_map::at`` while tokenizing).

Widths are multiples of 256 because K-quants (Q4_K ... Q6_K) pack 256 weights per super-block;
narrower rows fall back to other types inside llama-quantize and would not test what they claim.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.tiny_models import corpus


def build_tiny_spm_llama(out_dir: Path, *, train_steps: int = 30, seed: int = 0) -> Path:
    """A trained tiny LlamaForCausalLM (hidden 256, 2 layers) with a SentencePiece tokenizer."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f"{out_dir.name}.spm"
    work.mkdir(parents=True, exist_ok=True)
    text = work / "corpus.txt"
    text.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(work / "tok"), vocab_size=512, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, hard_vocab_limit=False, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
        num_threads=1, minloglevel=2,
    )
    shutil.copy(work / "tok.model", out_dir / "tokenizer.model")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    tokenizer = AutoTokenizer.from_pretrained(out_dir)  # converted from tokenizer.model
    tokenizer.save_pretrained(out_dir)
    shutil.copy(work / "tok.model", out_dir / "tokenizer.model")
    shutil.rmtree(work)
    _retrain(out_dir, len(tokenizer), train_steps, seed)
    return out_dir


def _retrain(out_dir: Path, vocab: int, train_steps: int, seed: int) -> None:
    """Resize the model to the SentencePiece vocabulary and train it briefly on the corpus."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if train_steps:
        batch = tokenizer(corpus()[:64], truncation=True, max_length=40)
        optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        ids = [torch.tensor([row]) for row in batch["input_ids"]]
        for step in range(train_steps):
            row = ids[step % len(ids)]
            loss = model(input_ids=row, labels=row).loss
            loss.backward()
            optim.step()
            optim.zero_grad()
        model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "tiny_model.json").write_text(json.dumps({"train_steps": train_steps, "seed": seed, "tokenizer": "spm"}))
