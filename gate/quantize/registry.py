"""The quantizer registry: the single source of truth for ``quantization.method``.

Aliases map to ``"module:Class"`` strings, imported only when a backend is used, so the spec
schema (and ``gate check``) can list the methods without importing torch.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "awq": "gate.quantize.awq:AwqBackend",
    "int8": "gate.quantize.int8:Int8Backend",
    "rtn": "gate.quantize.rtn:RtnBackend",
}
"""alias -> ``module:Class`` of the backend implementing ``gate.quantize.interface.Quantizer``."""
