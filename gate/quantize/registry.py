"""The quantizer registry: the single source of truth for ``quantization.method``.

Aliases map to ``"module:Class"`` strings, imported only when a backend is used, so the spec
schema (and ``gate check``) can list the methods without importing torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from gate.errors import InputError, MissingExtraError
from gate.suggest import unknown_choice_message

if TYPE_CHECKING:
    from gate.quantize.interface import Quantizer

METHODS: dict[str, str] = {
    "awq": "gate.quantize.awq:AwqBackend",
    "int8": "gate.quantize.int8:Int8Backend",
    "rtn": "gate.quantize.rtn:RtnBackend",
}
"""alias -> ``module:Class`` of the backend implementing ``gate.quantize.interface.Quantizer``."""

EXTRAS: dict[str, tuple[str, ...]] = {
    "awq": ("torch", "transformers", "awq"),
    "int8": ("torch", "transformers", "torchao"),
    "rtn": ("torch", "transformers"),
}
"""alias -> top-level modules it needs; a missing one names the pip extra to install."""

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
