"""Post-quantization sanity check: perplexity of baseline vs quantized on a few texts.

A quantizer can "succeed" and still write garbage: autoawq 0.2.9 on CPU mutates weights in place
during its scale search and silently corrupts the model (SmolLM2-135M perplexity 20 -> 315,655).
The check is cheap (a handful of short texts) and runs before an artifact enters the cache, so a
corrupt artifact is never stored or evaluated. It is a guard against breakage, not a quality
gate: tolerances are the evaluation stage's job. The default threshold (``DEFAULT_MAX_RATIO``,
quantized perplexity > 10x baseline) sits far above what a sound 4-bit quantization does
(SmolLM2: +11%) and far below the corruption it exists to catch (x15,000); a spec that builds a
deliberately extreme model can raise it with ``quantization.options.sanity_max_ratio``.

Cost matters here: for a fast backend (torchao int8 quantizes SmolLM2-135M in ~1 s on two CPU
cores) this check is most of the gate's own work. So the texts go through one batched forward,
backends hand over their in-memory model when they have one (no reload), and the baseline's
perplexity is cached per baseline, texts and runtime (cache kind ``sanity``): every artifact of a
baseline after the first skips loading it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gate.errors import BackendError

DEFAULT_MAX_RATIO = 10.0
TEXTS = 4
MAX_TOKENS = 32
"""Four texts of at most 32 tokens: ~124 predicted tokens, one batched forward per model. Enough
for a guard: per-token NLLs spread ~2-3 nats, so the mean over ~124 tokens has a standard error
of ~0.25 nats, and the 10x limit (ln 10 = 2.3 nats) sits ~9 standard errors above an unchanged
model; the x15,000 corruption (9.6 nats) it exists for is beyond doubt."""
REFERENCE_FORMAT = 1


class SanityCheck(BaseModel):
    """Baseline vs quantized perplexity on the sanity texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    texts: int
    tokens: int
    baseline_perplexity: float
    quantized_perplexity: float
    ratio: float
    """quantized / baseline perplexity."""
    max_ratio: float
    passed: bool
    baseline_cached: bool = False
    """True when the baseline's perplexity came from the cache (the baseline was not loaded)."""
    quantized_source: Literal["in-memory", "reloaded"] = "reloaded"
    """Which quantized model was checked: the backend's in-memory result, or the artifact reloaded."""


def perplexity(model: Any, tokenizer: Any, texts: list[str], max_tokens: int = MAX_TOKENS) -> tuple[float, int]:
    """exp(mean next-token NLL) over ``texts`` (each truncated to ``max_tokens``); and the token count.

    One right-padded batch: padding comes after every real token, so causal attention never lets a
    real position see it, and padded positions are left out of the mean.
    """
    import torch

    rows = [ids[:max_tokens] for ids in (tokenizer(text)["input_ids"] for text in texts)]
    rows = [ids for ids in rows if len(ids) >= 2]
    if not rows:
        raise BackendError("sanity check: no text produced at least two tokens", hint="check the calibration texts")
    device = next(model.parameters()).device
    width = max(len(ids) for ids in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[i, : len(ids)] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="none"
        )
        counted = mask[:, 1:].reshape(-1).to(nll.dtype)
        total_nll = float((nll * counted).sum())
        total = int(counted.sum())
    return math.exp(min(total_nll / total, 700.0)), total


def texts_digest(texts: list[str]) -> str:
    """sha256 identifying the sanity texts (as used: the first ``TEXTS``)."""
    return hashlib.sha256(json.dumps(texts[:TEXTS], ensure_ascii=False).encode("utf-8")).hexdigest()


def reference_perplexity(
    load_baseline: Callable[[], Any], tokenizer: Any, texts: list[str], cache_dir: Path, key_fields: dict[str, Any]
) -> tuple[float, int, bool]:
    """The baseline's sanity perplexity and token count, computed once per baseline and texts.

    ``key_fields`` must identify the baseline and runtime (identity, torch/transformers versions,
    device); the texts, their sizes and this module's format are added here. Returns
    ``(perplexity, tokens, cached)``; the baseline is loaded (``load_baseline()``) only on a miss.
    """
    from gate.cache import ContentCache, cache_key

    key = cache_key({
        **key_fields, "format": REFERENCE_FORMAT, "texts": texts_digest(texts), "max_texts": TEXTS, "max_tokens": MAX_TOKENS,
    })

    def build(out: Path) -> None:
        ppl, tokens = perplexity(load_baseline(), tokenizer, texts[:TEXTS])
        (out / "reference.json").write_text(json.dumps({"perplexity": ppl, "tokens": tokens}) + "\n", encoding="utf-8")

    entry = ContentCache(cache_dir).get_or_build("sanity", key, build)
    data = json.loads((entry.path / "reference.json").read_text(encoding="utf-8"))
    return float(data["perplexity"]), int(data["tokens"]), entry.hit


def check_sanity(
    reference: tuple[float, int, bool], quantized: Any, tokenizer: Any, texts: list[str], *,
    max_ratio: float = DEFAULT_MAX_RATIO, quantized_source: Literal["in-memory", "reloaded"] = "reloaded",
) -> SanityCheck:
    """Compare the quantized model's perplexity with the baseline's ``reference_perplexity``;
    raise ``BackendError`` when the quantized model is broken."""
    base_ppl, tokens, cached = reference
    sample = texts[:TEXTS]
    quant_ppl, _ = perplexity(quantized, tokenizer, sample)
    ratio = quant_ppl / base_ppl if base_ppl > 0 else math.inf
    passed = math.isfinite(quant_ppl) and ratio <= max_ratio
    result = SanityCheck(
        texts=len(sample),
        tokens=tokens,
        baseline_perplexity=round(base_ppl, 4),
        quantized_perplexity=round(quant_ppl, 4) if math.isfinite(quant_ppl) else quant_ppl,
        ratio=round(ratio, 4) if math.isfinite(ratio) else ratio,
        max_ratio=max_ratio,
        passed=passed,
        baseline_cached=cached,
        quantized_source=quantized_source,
    )
    if not passed:
        raise BackendError(
            f"sanity check failed: quantized perplexity {quant_ppl:.4g} is {ratio:.4g}x the baseline's "
            f"{base_ppl:.4g} on {len(sample)} calibration texts (limit {max_ratio:g}x); the quantized model is broken",
            hint="likely causes: a backend bug that corrupts weights (e.g. autoawq's in-place scale search on CPU), "
            "NaN/Inf weights, or too few bits for this model; the artifact was not cached",
        )
    return result
