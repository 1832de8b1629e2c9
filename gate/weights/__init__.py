"""The weight supply chain: sha256 lockfiles, safetensors/GGUF validation, an allowlist pickle
scanner working on opcodes only, remote-code detection and path confinement.

Nothing here imports torch or unpickles anything; ``gate check`` calls ``scan_spec_weights``.
"""

from __future__ import annotations

from gate.weights.interface import WeightScan, WeightsError
from gate.weights.lockfile import sha256_file, verify_lockfile, write_lockfile
from gate.weights.scan import scan_paths, scan_spec_weights

__all__ = [
    "WeightScan",
    "WeightsError",
    "scan_paths",
    "scan_spec_weights",
    "sha256_file",
    "verify_lockfile",
    "write_lockfile",
]
