"""A baseline's model shape from its safetensors headers (no torch), for the pre-flight checks
every backend shares (``Quantizer.validate`` / ``interface.check_request``).

Running them before quantizing turns a failure an hour into a GPU job ("group size 128 does not
divide 576") into a clear message in seconds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from gate.errors import InputError, SourceLocation
from gate.quantize.interface import LinearShape, ModelShape, matches

__all__ = ["matches", "read_model_shape"]  # matches: the backends' keep_full_precision test, defined in interface

_NOT_LINEAR = ("embed", "norm", "wte", "wpe", "rotary")



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
