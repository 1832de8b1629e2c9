"""Pre-flight checks shared by every backend (no torch): shapes from safetensors headers.

Running them before quantizing turns a failure an hour into a GPU job ("group size 128 does not
divide 576") into a clear message in seconds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from gate.errors import InputError, SourceLocation
from gate.quantize.interface import LinearShape, ModelShape, QuantizeRequest, QuantizerInputError

if TYPE_CHECKING:
    from gate.quantize.interface import Quantizer

_NOT_LINEAR = ("embed", "norm", "wte", "wpe", "rotary")

COMMON_OPTIONS = ("sanity_max_ratio",)
"""``quantization.options`` every backend accepts (read by the gate, not the backend)."""


def read_model_shape(baseline: Path) -> ModelShape:
    """Linear layers (name, in, out) of a baseline directory, from its safetensors headers."""
    config_path = baseline / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"cannot read the baseline's config.json: {exc}",
            hint="the baseline must be a Hugging Face model directory with config.json",
            location=SourceLocation(str(config_path)),
        ) from None
    text = config.get("text_config", config)
    linears: dict[str, LinearShape] = {}
    files = sorted(baseline.glob("*.safetensors"))
    if not files:
        raise InputError(
            "the baseline has no *.safetensors files",
            hint="convert the weights to safetensors (pickle checkpoints are refused)",
            location=SourceLocation(str(baseline)),
        )
    for file in files:
        for name, shape in _header_shapes(file).items():
            if not name.endswith(".weight") or len(shape) != 2:
                continue
            module = name[: -len(".weight")]
            if any(part in module.split(".")[-1] for part in _NOT_LINEAR):
                continue
            linears[module] = LinearShape(module, in_features=shape[1], out_features=shape[0])
    if "lm_head" not in linears and text.get("vocab_size") and text.get("hidden_size"):
        # Tied embeddings: lm_head shares the embedding matrix and is not stored on its own.
        linears["lm_head"] = LinearShape("lm_head", in_features=int(text["hidden_size"]), out_features=int(text["vocab_size"]))
    return ModelShape(
        model_type=str(config.get("model_type", "unknown")),
        linears=tuple(sorted(linears.values(), key=lambda s: s.name)),
        hidden_size=int(text.get("hidden_size", 0)),
        num_layers=int(text.get("num_hidden_layers", 0)),
    )


def _header_shapes(file: Path) -> dict[str, list[int]]:
    with file.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise InputError(f"{file.name} is not a safetensors file (too short)", location=SourceLocation(str(file)))
        (size,) = struct.unpack("<Q", raw)
        if size > 100 * 1024 * 1024:
            raise InputError(f"{file.name}: safetensors header of {size} bytes is over 100 MB", location=SourceLocation(str(file)))
        header = json.loads(fh.read(size))
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def matches(module: str, patterns: tuple[str, ...]) -> bool:
    """Does ``module`` match a ``keep_full_precision`` entry (exact name or last component)?"""
    return any(module == p or module.endswith("." + p) or module.split(".")[-1] == p for p in patterns)


def check_request(quantizer: Quantizer, request: QuantizeRequest, shape: ModelShape) -> None:
    """The checks every backend shares; raise ``QuantizerInputError`` naming the fix."""
    where = request.location
    name = quantizer.alias
    if request.bits not in quantizer.supported_bits:
        allowed = ", ".join(str(b) for b in quantizer.supported_bits)
        raise QuantizerInputError(
            f"quantization.bits: {name} does not support {request.bits}-bit weights (supported: {allowed})",
            hint=f"use bits: {quantizer.supported_bits[-1]}, or a method that supports {request.bits} bits",
            location=where,
        )
    allowed_options = (*quantizer.option_names, *COMMON_OPTIONS)
    unknown = sorted(set(request.options) - set(allowed_options))
    if unknown:
        allowed = ", ".join(allowed_options)
        raise QuantizerInputError(
            f"quantization.options: {name} has no option {unknown[0]!r}",
            hint=f"options {name} understands: {allowed}",
            location=where,
        )
    if request.keep_full_precision and not quantizer.supports_keep_full_precision:
        raise QuantizerInputError(
            f"quantization.keep_full_precision: {name} cannot keep modules in full precision",
            hint="remove keep_full_precision, or use a method that supports mixed precision (awq, rtn, int8)",
            location=where,
        )
    names = [lin.name for lin in shape.linears]
    for pattern in request.keep_full_precision:
        if not any(matches(n, (pattern,)) for n in names):
            raise QuantizerInputError(
                f"quantization.keep_full_precision: {pattern!r} matches no linear layer of the model",
                hint=f"use module names such as {', '.join(sorted({n.split('.')[-1] for n in names})[:6])}",
                location=where,
            )
    group = request.group_size
    if group is None:
        return
    for lin in shape.linears:
        if matches(lin.name, request.keep_full_precision) or not quantizer.quantizes(lin.name):
            continue
        if lin.in_features % group:
            divisors = [g for g in (32, 64, 128, 256) if all(
                x.in_features % g == 0 for x in shape.linears
                if quantizer.quantizes(x.name) and not matches(x.name, request.keep_full_precision)
            )]
            fix = f"use group_size: {divisors[-1]}" if divisors else "use a group size that divides every input size"
            raise QuantizerInputError(
                f"quantization.group_size: {group} does not divide the input size {lin.in_features} of {lin.name}",
                hint=fix + " (or -1 for per-channel where the method allows it)",
                location=where,
            )
