"""Post-quantization sanity check: perplexity of baseline vs quantized on a few texts.

A quantizer can "succeed" and still write garbage: autoawq 0.2.9 on CPU mutates weights in place
during its scale search and silently corrupts the model (SmolLM2-135M perplexity 20 -> 315,655).
The check is cheap (a handful of short texts) and runs before an artifact enters the cache, so a
corrupt artifact is never stored or evaluated. It is a guard against breakage, not a quality
gate: tolerances are the evaluation stage's job. The default threshold (``DEFAULT_MAX_RATIO``,
quantized perplexity > 10x baseline) sits far above what a sound 4-bit quantization does
(SmolLM2: +11%) and far below the corruption it exists to catch (x15,000); a spec that builds a
deliberately extreme model can raise it with ``quantization.options.sanity_max_ratio``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from gate.errors import BackendError

DEFAULT_MAX_RATIO = 10.0
TEXTS = 4
MAX_TOKENS = 64


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


def perplexity(model: Any, tokenizer: Any, texts: list[str], max_tokens: int = MAX_TOKENS) -> tuple[float, int]:
    """exp(mean next-token NLL) over ``texts`` (each truncated to ``max_tokens``); and the token count."""
    import torch

    total_nll = 0.0
    total = 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)["input_ids"].to(device)
            if ids.shape[1] < 2:
                continue
            logits = model(input_ids=ids).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum")
            total_nll += float(nll)
            total += ids.shape[1] - 1
    if total == 0:
        raise BackendError("sanity check: no text produced at least two tokens", hint="check the calibration texts")
    return math.exp(min(total_nll / total, 700.0)), total


def check_sanity(
    baseline: Any, quantized: Any, tokenizer: Any, texts: list[str], *, max_ratio: float = DEFAULT_MAX_RATIO
) -> SanityCheck:
    """Compare perplexities; raise ``BackendError`` when the quantized model is broken."""
    sample = texts[:TEXTS]
    base_ppl, tokens = perplexity(baseline, tokenizer, sample)
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
    )
    if not passed:
        raise BackendError(
            f"sanity check failed: quantized perplexity {quant_ppl:.4g} is {ratio:.4g}x the baseline's "
            f"{base_ppl:.4g} on {len(sample)} calibration texts (limit {max_ratio:g}x); the quantized model is broken",
            hint="likely causes: a backend bug that corrupts weights (e.g. autoawq's in-place scale search on CPU), "
            "NaN/Inf weights, or too few bits for this model; the artifact was not cached",
        )
    return result
