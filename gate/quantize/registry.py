"""The quantizer registry: the single source of truth for ``quantization.method``.

Each backend module declares a ``DESCRIPTOR`` (``descriptor.py``): alias, formats, bits, group
sizes, kernels, environment. Backend modules are torch-free at import, so the spec schema and
``gate check`` read the descriptors without importing torch; the implementing class is imported
only when a backend is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from gate.descriptors import load_descriptors
from gate.errors import InputError, MissingExtraError
from gate.quantize.descriptor import BackendDescriptor
from gate.suggest import unknown_choice_message

if TYPE_CHECKING:
    from gate.quantize.interface import Quantizer

BACKEND_MODULES: tuple[str, ...] = (
    "gate.quantize.awq",
    "gate.quantize.int8",
    "gate.quantize.rtn",
    "gate.quantize.gguf",
    "gate.quantize.llmc",
)
"""Modules defining a ``DESCRIPTOR``; adding a backend is adding its module here."""


DESCRIPTORS: dict[str, BackendDescriptor] = load_descriptors(BACKEND_MODULES, BackendDescriptor, lambda d: d.alias, "alias")
"""alias -> descriptor, in ``BACKEND_MODULES`` order."""

METHODS: dict[str, str] = {alias: d.implementation for alias, d in DESCRIPTORS.items()}
"""alias -> ``module:Class`` of the backend implementing ``gate.quantize.interface.Quantizer``."""

EXTRAS: dict[str, tuple[str, ...]] = {alias: d.requires for alias, d in DESCRIPTORS.items()}
"""alias -> top-level modules it needs; a missing one names the pip extra to install."""

ALGORITHMS: tuple[str, ...] = tuple(dict.fromkeys(a for d in DESCRIPTORS.values() for a in d.algorithms))
"""Every quantization algorithm some backend computes (QG207 pins a backend per algorithm)."""


def default_pins() -> tuple[tuple[str, str], ...]:
    """``(algorithm, backend)``: the one maintained (non-legacy) backend computing each algorithm, on
    every target; QG207's default. Two maintained backends for one algorithm is a registry error
    (mark one legacy, or let policies choose with a target-specific pin)."""
    pins: list[tuple[str, str]] = []
    for algorithm in ALGORITHMS:
        maintained = [d.alias for d in DESCRIPTORS.values() if algorithm in d.algorithms and not d.legacy]
        if len(maintained) > 1:
            raise TypeError(f"algorithm {algorithm!r} has several maintained backends ({', '.join(maintained)})")
        if maintained:
            pins.append((algorithm, maintained[0]))
    return tuple(pins)


INSTALL_HINT = "pip install 'quant-gate[ml]' (install torch first with an explicit pin, e.g. pip install torch==2.13.0)"


def get_quantizer(alias: str) -> Quantizer:
    """The backend for ``alias``, imported now; unknown alias or missing library -> clear error."""
    target = METHODS.get(alias)
    if target is None:
        raise InputError(unknown_choice_message("method", alias, METHODS), hint="set quantization.method to a registered method")
    for module in EXTRAS.get(alias, ()):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(
                f"quantization method {alias!r} needs the Python package {module!r}, which is not installed",
                hint=INSTALL_HINT,
            )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    quantizer: Quantizer = cls()
    return quantizer


def explain_backend(alias: str) -> str:
    """``gate explain METHOD``: what a backend produces, where it runs, and what it is the default for."""
    d = DESCRIPTORS[alias]
    lines = [f"{d.alias}: {d.summary}", ""]
    lines += _status(d)
    blocks = sorted({f.block_size for f in d.formats if f.block_size})
    if blocks:
        groups = "fixed by the format (blocks of " + " or ".join(str(b) for b in blocks) + " weights); write -1"
    elif d.group_sizes:
        groups = ", ".join("per channel" if g is None else str(g) for g in d.group_sizes)
    else:
        groups = "any that divides every quantized layer's input size"
    lines += [
        f"Bits: {', '.join(str(b) for b in d.bits)}",
        f"Group sizes: {groups}",
        f"Calibration: {'required' if d.needs_calibration else 'optional (see the formats)'}",
        f"Environment: {d.environment}",
    ]
    if d.tools:
        lines.append(f"External tools: {', '.join(d.tools)}")
    lines += ["", "Formats (quantization.format):"]
    for f in d.formats:
        extra = []
        if f.bits_per_weight is not None:
            extra.append(f"{f.bits_per_weight:g} bits/weight")
        if f.needs_importance_matrix:
            extra.append("needs calibration (importance matrix)")
        note = f" ({'; '.join(extra)})" if extra else ""
        computed = f" ({' or options.algorithm: '.join(f.algorithms)})" if len(f.algorithms) > 1 else ""
        lines.append(f"  {f.name}: {'/'.join(str(b) for b in f.bits)}-bit{computed}{note}; fast on {f.runs_fast_on}")
    return "\n".join(lines) + "\n"


def _status(d: BackendDescriptor) -> list[str]:
    """Whether ``d`` is a target's default and which algorithms QG207 pins to it (built-in defaults)."""
    pins = dict(default_pins())
    lines: list[str] = []
    if d.legacy:
        moved = [(a, pins[a]) for a in d.algorithms if pins.get(a, d.alias) != d.alias]
        instead = "".join(f"; {a} is sanctioned in {b} ({recipe_text(b, a, d.bits[-1])}), so QG207 warns on method: {d.alias}"
                          for a, b in moved)
        lines.append(f"Status: legacy (its library is archived), kept behind its interface{instead}.")
    elif d.sanctioned_for:
        lines.append(f"Status: the gate's default backend for {' and '.join(d.sanctioned_for)} targets.")
    own = [a for a in d.algorithms if pins.get(a) == d.alias]
    if own:
        lines.append(f"Sanctioned backend (QG207) for: {', '.join(own)}, on every target unless a policy pins another")
    return lines


def recipe_text(backend: str, algorithm: str, bits: int) -> str:
    """``format: X`` (plus ``options: {algorithm: Y}`` when it is not the format's default)."""
    recipe = DESCRIPTORS[backend].recipe_for(algorithm, bits)
    if recipe is None:
        return f"method: {backend}"
    fmt, needs_option = recipe
    return f"format: {fmt.name}" + (f", options: {{algorithm: {algorithm}}}" if needs_option else "")


def explain_backends() -> str:
    """``gate explain backends``: the sanctioned backend per target and per algorithm (built-in defaults)."""
    lines = ["Quantization backends: the built-in defaults (policies change them: QG202 sanctions method and bits,",
             "QG207 pins the backend per algorithm; `gate explain METHOD` describes one backend)", "",
             "Default backends per target kind:"]
    for kind in ("gpu", "cpu"):
        chosen = [d for d in DESCRIPTORS.values() if kind in d.sanctioned_for and not d.legacy]
        lines.append(f"  {kind}: " + "; ".join(f"{d.alias} ({', '.join(f.name for f in d.formats)})" for d in chosen))
    lines += ["", "Sanctioned backend per algorithm (QG207, every target):"]
    for algorithm, backend in default_pins():
        legacy = [d.alias for d in DESCRIPTORS.values() if d.legacy and algorithm in d.algorithms]
        note = f"; legacy, warned: {', '.join(f'method: {a}' for a in legacy)}" if legacy else ""
        lines.append(f"  {algorithm}: method: {backend}, {recipe_text(backend, algorithm, 4)}{note}")
    return "\n".join(lines) + "\n"
