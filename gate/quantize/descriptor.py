"""What a quantizer backend declares about itself, as plain data (no torch, no backend library).

Every backend module (``awq.py``, ``int8.py``, ``rtn.py``, ``gguf.py``) defines one module-level
``DESCRIPTOR``; the registry (``registry.py``), the format vocabulary the kernel check and the
hardware catalog read (``gate/plan/kernels.py``), the memory plan (bits per weight of fixed-block
formats), ``gate init`` (which formats a method offers) and the spec's JSON Schema (the method
enum) all read those descriptors, so a new backend is one new module plus its name in
``registry.BACKEND_MODULES``. Importing a backend module must stay cheap and torch-free: heavy
imports live inside its methods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FormatSpec:
    """One serialized format a backend writes."""

    name: str
    """The spec's ``quantization.format`` value, e.g. ``awq-gemm`` or ``gguf-q4_k_m``."""
    bits: tuple[int, ...]
    """Values of ``quantization.bits`` the format stores."""
    runs_fast_on: str
    """Hardware with fast kernels for it (DOMAIN.md's "runs fast on" column)."""
    family: str | None = None
    """The catalog's kernel family when the hardware catalog names a family rather than each
    format (every ``gguf-*`` type runs wherever ``gguf`` does). None: the format itself."""
    bits_per_weight: float | None = None
    """Storage per quantized weight including its block scales, for formats with fixed block
    layouts (GGUF types); None: ``bits`` plus the group-wise scales the memory plan adds."""
    block_size: int | None = None
    """Weights per block of a fixed-block format (GGUF: 32 for Q8_0, 256 for K- and IQ types)."""
    needs_importance_matrix: bool = False
    """The format cannot be produced without calibration statistics (GGUF IQ types)."""
    tool_name: str | None = None
    """The producing tool's own name for the format (``Q4_K_M`` for llama-quantize)."""
    algorithms: tuple[str, ...] = ()
    """Quantization algorithms that compute this format's weights (``awq``, ``gptq``, ...), the
    backend's default first; ``quantization.options.algorithm`` picks another. Policies pin a
    backend per algorithm (QG207)."""


@dataclass(frozen=True)
class BackendDescriptor:
    """One quantizer backend: what it produces, from what, with which environment."""

    alias: str
    """``quantization.method``."""
    implementation: str
    """``module:Class`` implementing ``gate.quantize.interface.Quantizer`` (imported on use)."""
    summary: str
    formats: tuple[FormatSpec, ...]
    """In preference order (``gate init`` offers the first with kernels on the target)."""
    bits: tuple[int, ...]
    group_sizes: tuple[int | None, ...] = ()
    """Group sizes it accepts (None: per channel); empty: any size dividing every layer."""
    needs_calibration: bool = False
    requires: tuple[str, ...] = ()
    """Top-level Python modules the gate's environment needs (a missing one names the pip extra)."""
    tools: tuple[str, ...] = ()
    """External programs it runs (e.g. llama.cpp's llama-quantize), found outside Python."""
    environment: str = "the project environment ('quant-gate[ml]')"
    """Where the backend's library runs, in words (``gate explain`` shows it)."""
    sanctioned_for: tuple[str, ...] = ()
    """Target kinds (gpu, cpu) for which this backend is the gate's default for its method family."""
    legacy: bool = False
    """Kept for compatibility behind its interface; a maintained backend is the default."""

    def format(self, name: str) -> FormatSpec | None:
        return next((f for f in self.formats if f.name == name), None)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Every algorithm any of its formats is computed with, in declaration order."""
        return tuple(dict.fromkeys(a for f in self.formats for a in f.algorithms))

    def algorithm_of(self, format_name: str, options: Mapping[str, object]) -> str | None:
        """The algorithm a spec with this format and ``quantization.options`` runs (None: unknown format)."""
        fmt = self.format(format_name)
        if fmt is None or not fmt.algorithms:
            return None
        chosen = options.get("algorithm")
        return chosen if isinstance(chosen, str) and chosen in fmt.algorithms else fmt.algorithms[0]

    def recipe_for(self, algorithm: str, bits: int) -> tuple[FormatSpec, bool] | None:
        """``(format, needs options.algorithm)`` that makes this backend compute ``algorithm`` at
        ``bits`` (any bit width when none matches); None when it never computes it."""
        offered = [f for f in self.formats if algorithm in f.algorithms]
        if not offered:
            return None
        fmt = next((f for f in offered if bits in f.bits), offered[0])
        return fmt, fmt.algorithms[0] != algorithm


def code_digest(*files: Path) -> str:
    """sha256 of the code that turns a spec's fields into the library call (a backend's module, its
    worker): part of the content-cache key, so changing how a recipe is built never serves an artifact
    made the old way. Any edit of those files gives new keys (the safe side)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
