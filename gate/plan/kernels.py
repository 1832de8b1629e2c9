"""Format x hardware: the serialized formats the gate knows, which method produces each, and why.

The formats the gate produces come from the backends' descriptors (``gate/quantize/*.py``,
``DESCRIPTOR``); formats produced by external tooling only are listed here. The catalog
(``gate/data/hardware.yaml``) lists per target which of these formats (or format families, such
as ``gguf`` for every GGUF type) have fast kernels there; this module is the vocabulary it is
validated against and what ``gate init`` reasons with (DOMAIN.md, "Format x hardware").
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
    family: str | None = None
    """Kernel family the hardware catalog may name instead (``gguf`` for ``gguf-q4_k_m``)."""
    bits_per_weight: float | None = None
    """Bytes per weight x 8 for fixed-block formats (scales included); None: ``bits`` + group scales."""


EXTERNAL: tuple[FormatInfo, ...] = (
    FormatInfo("gptq", None, (4, 8), "NVIDIA GPUs (exllama kernels)"),
    FormatInfo("gptq-marlin", None, (4, 8), "NVIDIA GPUs, compute capability >= 8.0 (Marlin kernels)"),
    FormatInfo("fp8", None, (8,), "NVIDIA Hopper/Ada, compute capability >= 8.9"),
    FormatInfo("gguf", None, (2, 3, 4, 5, 6, 8),
               "CPUs, Apple silicon, consumer GPUs via llama.cpp (any GGUF type; the gguf method writes gguf-<type>)"),
)
"""Formats no descriptor produces (or, for ``gguf``, the family name the catalog uses)."""


def _formats() -> dict[str, FormatInfo]:
    from gate.quantize.registry import DESCRIPTORS

    out: dict[str, FormatInfo] = {}
    for descriptor in DESCRIPTORS.values():
        for f in descriptor.formats:
            out[f.name] = FormatInfo(f.name, descriptor.alias, f.bits, f.runs_fast_on, f.family, f.bits_per_weight)
    for info in EXTERNAL:
        out.setdefault(info.name, info)
    return out


FORMATS: dict[str, FormatInfo] = _formats()


def formats_of(method: str) -> list[str]:
    """Formats the gate's ``method`` produces, in preference order."""
    return [f.name for f in FORMATS.values() if f.method == method]


def method_for(fmt: str) -> str | None:
    info = FORMATS.get(fmt)
    return info.method if info else None


def kernel_names(fmt: str) -> tuple[str, ...]:
    """The names a hardware catalog entry may list for ``fmt``: itself, then its family."""
    info = FORMATS.get(fmt)
    return (fmt, info.family) if info and info.family else (fmt,)


def bits_per_weight(fmt: str | None) -> float | None:
    """Storage bits per quantized weight of a fixed-block format, None for group-wise formats."""
    info = FORMATS.get(fmt) if fmt else None
    return info.bits_per_weight if info else None
