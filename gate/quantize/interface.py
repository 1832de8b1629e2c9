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
    """The request cannot be served by this backend (unsupported bits, group size, ...)."""


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
        from gate.quantize.checks import check_request

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
