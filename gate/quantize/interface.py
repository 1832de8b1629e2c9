"""The quantizer extension point: one ABC, the family's error and its frozen result types.

A backend (``awq.py``, ``int8.py``, ``rtn.py``) turns a local Hugging Face baseline directory
into an artifact directory. The gate calls ``validate`` before any heavy work (bits, group size,
mixed precision, shapes read from ``config.json`` — no torch), then ``quantize``, then ``load``.
Backends are registered by alias in ``registry.py`` and imported on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import BackendError, InputError, SourceLocation

__all__ = [
    "BackendError",
    "LinearShape",
    "ModelShape",
    "Progress",
    "QuantizeOutcome",
    "QuantizeRequest",
    "Quantizer",
    "QuantizerInputError",
]

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: called by backends as layers or batches complete."""


class QuantizerInputError(InputError):
    """The request cannot be served by this backend (unsupported bits, group size, ...): a problem
    with one spec key, which the gate locates in the spec (``key_path``)."""

    def __init__(self, key: str, problem: str, *, hint: str | None = None,
                 location: SourceLocation | None = None) -> None:
        self.key_path: tuple[str, ...] = tuple(key.split("."))
        """The spec key at fault, e.g. ``("quantization", "group_size")``."""
        super().__init__(f"{key}: {problem}", hint=hint, location=location)


@dataclass(frozen=True)
class LinearShape:
    """One linear layer of the baseline, as the quantizer sees it."""

    name: str
    """Module name, e.g. ``model.layers.0.mlp.down_proj``."""
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ModelShape:
    """What ``validate`` needs to know about a baseline (read from ``config.json``, no torch)."""

    model_type: str
    linears: tuple[LinearShape, ...]
    """Every linear a backend would quantize, including ``lm_head``."""
    hidden_size: int
    num_layers: int


@dataclass(frozen=True)
class QuantizeRequest:
    """Everything a backend needs from the spec, already validated and resolved."""

    method: str
    bits: int
    group_size: int | None
    """None (or -1 in the spec) = per output channel."""
    format: str = ""
    """The spec's ``quantization.format`` (e.g. awq-gemm)."""
    keep_full_precision: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    calibration_texts: tuple[str, ...] = ()
    max_seq_len: int = 512
    seed: int = 0
    location: SourceLocation | None = None
    """Where ``quantization`` is in the spec (for error messages)."""


@dataclass(frozen=True)
class QuantizeOutcome:
    """What a backend reports after quantizing (the gate reads ``quantization_config`` from the
    ``config.json`` the backend writes)."""

    params: dict[str, Any]
    """The exact parameters passed to the library (recorded in provenance)."""
    versions: dict[str, str]
    """Backend library versions (e.g. autoawq, torchao)."""
    model: Any = field(default=None, compare=False, repr=False)
    """The quantized model still in memory, computing what ``load(out_dir)`` would (eval mode), or
    None. When present the gate runs its sanity check on it instead of reloading the artifact;
    evaluation always loads the artifact from disk."""
    write: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Writes the artifact's weights and ``config.json`` into ``out_dir``, when the backend left
    that to the gate (backends with an in-memory ``model``: the gate runs it on a worker thread
    while it checks the model, so it must only read the model). None: ``quantize`` wrote them."""


class Quantizer(ABC):
    """One quantization method. Subclasses are stateless; instances are cheap."""

    alias: str = ""
    """Registry alias (``quantization.method``)."""
    supported_bits: tuple[int, ...] = ()
    supports_keep_full_precision: bool = True
    needs_calibration: bool = False
    packages: tuple[str, ...] = ()
    """Distributions whose versions the artifact records."""
    option_names: tuple[str, ...] = ()
    """Keys allowed in ``quantization.options``."""

    def quantizes(self, module: str) -> bool:
        """Would this backend quantize ``module`` (before ``keep_full_precision``)?"""
        return True

    def validate(self, request: QuantizeRequest, shape: ModelShape) -> None:
        """Refuse a request this backend cannot serve, before any heavy work.

        The default checks bits, options, group size divisibility of every quantized linear's
        input size, and ``keep_full_precision`` support; backends extend it.
        """
        check_request(self, request, shape)

    def cache_fields(self) -> dict[str, Any]:
        """What else determines the artifact's bytes (e.g. an external tool's build); part of the
        content-cache key. Python package versions are keyed already."""
        return {}

    def validate_calibration(self, request: QuantizeRequest, baseline: Path) -> None:
        """Check the calibration texts suit this backend (default: nothing to check)."""
        return None

    @abstractmethod
    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        """Quantize the baseline; write weights and ``config.json`` into ``out_dir`` now, or return
        them as ``QuantizeOutcome.write`` (the gate copies the tokenizer)."""

    @abstractmethod
    def load(self, path: Path, device: str = "cpu") -> Any:
        """Load an artifact written by ``quantize`` as a torch module in eval mode."""


COMMON_OPTIONS = ("sanity_max_ratio",)
"""``quantization.options`` every backend accepts (read by the gate, not the backend)."""


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
            "quantization.bits", f"{name} does not support {request.bits}-bit weights (supported: {allowed})",
            hint=f"use bits: {quantizer.supported_bits[-1]}, or a method that supports {request.bits} bits",
            location=where,
        )
    allowed_options = (*quantizer.option_names, *COMMON_OPTIONS)
    unknown = sorted(set(request.options) - set(allowed_options))
    if unknown:
        allowed = ", ".join(allowed_options)
        raise QuantizerInputError(
            "quantization.options", f"{name} has no option {unknown[0]!r}",
            hint=f"options {name} understands: {allowed}",
            location=where,
        )
    if request.keep_full_precision and not quantizer.supports_keep_full_precision:
        raise QuantizerInputError(
            "quantization.keep_full_precision", f"{name} cannot keep modules in full precision",
            hint="remove keep_full_precision, or use a method that supports mixed precision (awq, rtn, int8)",
            location=where,
        )
    names = [lin.name for lin in shape.linears]
    for pattern in request.keep_full_precision:
        if not any(matches(n, (pattern,)) for n in names):
            raise QuantizerInputError(
                "quantization.keep_full_precision", f"{pattern!r} matches no linear layer of the model",
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
                "quantization.group_size", f"{group} does not divide the input size {lin.in_features} of {lin.name}",
                hint=fix + " (or -1 for per-channel where the method allows it)",
                location=where,
            )
