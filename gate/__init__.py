"""quant-gate: a declarative policy-and-validation gate for model quantization."""

from __future__ import annotations

__version__ = "0.1.0"
