"""Post-quantization sanity check: perplexity of baseline vs quantized on one short token row.

A quantizer can "succeed" and still write garbage: autoawq 0.2.9 on CPU mutates weights in place
during its scale search and silently corrupts the model (SmolLM2-135M perplexity 20 -> 315,655).
The check runs before an artifact enters the cache, so a corrupt artifact is never stored or
evaluated. It is a guard against breakage, not a quality gate: tolerances are the evaluation
stage's job. The default threshold (``DEFAULT_MAX_RATIO``, quantized perplexity > 10x baseline)
sits far above what a sound 4-bit quantization does and far below the corruption it exists to
catch; a spec that builds a deliberately extreme model can raise it with
``quantization.options.sanity_max_ratio``.

Cost matters: for a fast backend (torchao int8 quantizes SmolLM2-135M in about a second on two
CPU cores) this check is most of the gate's own work, and on a CPU even a short forward of a 135M
model costs a fifth of that. So:

- the row is short (``MAX_TOKENS``) and unpadded, one forward per model;
- backends hand over their in-memory model when they have one (no reload), and the gate runs the
  check while the artifact's files are still being written;
- everything the baseline side needs is computed once per baseline, calibration selection and
  runtime and cached (cache kind ``sanity``): the row's token ids, the baseline's perplexity on
  it, and the calibration samples' token counts. Every artifact of a baseline after the first
  loads neither the baseline model nor its tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gate.errors import BackendError

DEFAULT_MAX_RATIO = 10.0
TEXTS = 4
"""The row is the first ``TEXTS`` sanity texts joined by blank lines, cut to ``MAX_TOKENS``."""
MAX_TOKENS = 32
"""32 tokens, 31 predicted. Enough for a guard because the comparison is paired: baseline and
quantized model score the same tokens, so the ratio's noise is that of the mean per-token NLL
*difference*, which for a sound quantization is small (measured on SmolLM2, docs/quantize.md).
The 10x limit is ln 10 = 2.3 nats of mean difference; the x15,000 corruption it exists for is
9.6 nats."""
REFERENCE_FORMAT = 2


class SanityCheck(BaseModel):
    """Baseline vs quantized perplexity on the sanity row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    texts: int
    """Texts joined to make the row (the first ``TEXTS``; the row may end inside the first)."""
    tokens: int
    """Predicted tokens (row length - 1)."""
    baseline_perplexity: float
    quantized_perplexity: float
    ratio: float
    """quantized / baseline perplexity."""
    max_ratio: float
    passed: bool
    baseline_cached: bool = False
    """True when the baseline side came from the cache (neither the baseline nor its tokenizer was loaded)."""
    quantized_source: Literal["in-memory", "reloaded"] = "reloaded"
    """Which quantized model was checked: the backend's in-memory result, or the artifact reloaded."""


class Reference(BaseModel):
    """The baseline side of the check, computed once per baseline, texts and runtime."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_ids: list[int]
    """The sanity row, as the baseline's tokenizer encodes it."""
    texts: int
    perplexity: float
    """The baseline's perplexity on ``input_ids``."""
    calibration_tokens: list[int] | None
    """Token count of each selected calibration sample after truncation to ``max_seq_len`` (None
    without calibration): what ``CalibrationStats`` records."""
    cached: bool = False

    @property
    def tokens(self) -> int:
        return len(self.input_ids) - 1


def sanity_row(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Token ids of the first ``TEXTS`` texts joined by blank lines, cut to ``MAX_TOKENS``."""
    ids = [int(i) for i in tokenizer("\n\n".join(texts[:TEXTS]))["input_ids"][:MAX_TOKENS]]
    if len(ids) < 2:
        raise BackendError("sanity check: the texts produced fewer than two tokens", hint="check the calibration texts")
    return ids


def perplexity(model: Any, input_ids: Sequence[int]) -> float:
    """exp(mean next-token NLL) of ``model`` over one row of token ids."""
    import torch

    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    return math.exp(min(float(nll), 700.0))


def baseline_reference(
    load_baseline: Callable[[], Any],
    load_tokenizer: Callable[[], Any],
    texts: Sequence[str],
    calibration: tuple[Sequence[str], int | None] | None,
    cache_dir: Path,
    key_fields: dict[str, Any],
) -> Reference:
    """The baseline side of the check, from the cache or computed now.

    ``key_fields`` must identify the baseline and runtime (identity, torch/transformers versions,
    device); the texts, the check's sizes, this module's format and ``calibration``
    (``(selected texts, max_seq_len)``) are added here. The tokenizer and the baseline are loaded
    (``load_tokenizer()``, ``load_baseline()``) only on a miss.
    """
    from gate.cache import ContentCache, cache_key

    key = cache_key({
        **key_fields, "format": REFERENCE_FORMAT, "texts": _digest(list(texts[:TEXTS])), "max_texts": TEXTS,
        "max_tokens": MAX_TOKENS,
        "calibration": None if calibration is None else {"texts": _digest(list(calibration[0])), "max_seq_len": calibration[1]},
    })

    def build(out: Path) -> None:
        from gate.quantize.calibration import token_counts

        tokenizer = load_tokenizer()
        row = sanity_row(tokenizer, texts)
        reference = Reference(
            input_ids=row,
            texts=min(len(texts), TEXTS),
            perplexity=perplexity(load_baseline(), row),
            calibration_tokens=None if calibration is None else token_counts(tokenizer, *calibration),
        )
        (out / "reference.json").write_text(reference.model_dump_json(exclude={"cached"}) + "\n", encoding="utf-8")

    entry = ContentCache(cache_dir).get_or_build("sanity", key, build)
    data = json.loads((entry.path / "reference.json").read_text(encoding="utf-8"))
    return Reference.model_validate({**data, "cached": entry.hit})


def _digest(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def check_sanity(
    reference: Reference, quantized: Any, *, max_ratio: float = DEFAULT_MAX_RATIO,
    quantized_source: Literal["in-memory", "reloaded"] = "reloaded",
) -> SanityCheck:
    """Compare the quantized model's perplexity on the reference row with the baseline's; raise
    ``BackendError`` when the quantized model is broken."""
    base_ppl = reference.perplexity
    quant_ppl = perplexity(quantized, reference.input_ids)
    ratio = quant_ppl / base_ppl if base_ppl > 0 else math.inf
    passed = math.isfinite(quant_ppl) and ratio <= max_ratio
    result = SanityCheck(
        texts=reference.texts,
        tokens=reference.tokens,
        baseline_perplexity=round(base_ppl, 4),
        quantized_perplexity=round(quant_ppl, 4) if math.isfinite(quant_ppl) else quant_ppl,
        ratio=round(ratio, 4) if math.isfinite(ratio) else ratio,
        max_ratio=max_ratio,
        passed=passed,
        baseline_cached=reference.cached,
        quantized_source=quantized_source,
    )
    if not passed:
        raise BackendError(
            f"sanity check failed: quantized perplexity {quant_ppl:.4g} is {ratio:.4g}x the baseline's "
            f"{base_ppl:.4g} on {reference.tokens} calibration tokens (limit {max_ratio:g}x); "
            "the quantized model is broken",
            hint="likely causes: a backend bug that corrupts weights (e.g. autoawq's in-place scale search on CPU), "
            "NaN/Inf weights, or too few bits for this model; the artifact was not cached",
        )
    return result
