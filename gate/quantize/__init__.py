"""Quantization backends behind one interface (see ``interface.py``), loaded lazily.

The public entry points (``prepare_baseline``, ``produce_artifact``, ``load_for_eval`` and their
result types) are imported on first attribute access: ``gate.spec.models`` imports the registry
from this package, and importing the artifact machinery eagerly would make that circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.quantize.artifact import Artifact, load_for_eval, produce_artifact
    from gate.quantize.sources import Baseline, prepare_baseline

__all__ = ["Artifact", "Baseline", "load_for_eval", "prepare_baseline", "produce_artifact"]

_LAZY = {
    "Artifact": "gate.quantize.artifact",
    "produce_artifact": "gate.quantize.artifact",
    "load_for_eval": "gate.quantize.artifact",
    "Baseline": "gate.quantize.sources",
    "prepare_baseline": "gate.quantize.sources",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gate.quantize' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
