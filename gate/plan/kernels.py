"""Format x hardware: the serialized formats the gate knows, which method produces each, and why.

The catalog (``gate/data/hardware.yaml``) lists per target which of these formats have fast
kernels there; this module is the vocabulary it is validated against and what ``gate init``
reasons with (DOMAIN.md, "Format x hardware").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatInfo:
    """One serialized quantized format."""

    name: str
    method: str | None
    """The gate's quantizer alias that produces it (None: produced by external tooling)."""
    bits: tuple[int, ...]
    runs_fast_on: str
    """DOMAIN.md's "runs fast on" column."""


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo("awq-gemm", "awq", (4,), "NVIDIA GPUs, compute capability >= 7.5 (batched GEMM kernels)"),
        FormatInfo("awq-gemv", "awq", (4,), "NVIDIA GPUs, compute capability >= 7.5 (batch-1 GEMV kernels)"),
        FormatInfo("awq-marlin", "awq", (4,), "NVIDIA GPUs, compute capability >= 8.0 (Marlin kernels)"),
        FormatInfo("gptq", None, (4, 8), "NVIDIA GPUs (exllama kernels)"),
        FormatInfo("gptq-marlin", None, (4, 8), "NVIDIA GPUs, compute capability >= 8.0 (Marlin kernels)"),
        FormatInfo("int8-weight-only", "int8", (8,), "NVIDIA GPUs and CPUs with strong integer units"),
        FormatInfo("llm-int8", "int8", (8,), "NVIDIA GPUs; CPU backend in recent bitsandbytes"),
        FormatInfo("fp8", None, (8,), "NVIDIA Hopper/Ada, compute capability >= 8.9"),
        FormatInfo("gguf", None, (2, 3, 4, 5, 6, 8), "CPUs, Apple silicon, consumer GPUs via llama.cpp"),
        FormatInfo("rtn", "rtn", (2, 3, 4, 8), "anywhere (dequantize + matmul): a correctness reference"),
    )
}


def formats_of(method: str) -> list[str]:
    """Formats the gate's ``method`` produces, in preference order."""
    return [f.name for f in FORMATS.values() if f.method == method]


def method_for(fmt: str) -> str | None:
    info = FORMATS.get(fmt)
    return info.method if info else None
