"""The runtime stack a result was produced on (configuration logging, re-validation)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

TRACKED_PACKAGES = ("torch", "transformers", "autoawq", "lm_eval", "torchao", "accelerate", "safetensors", "gguf")


def library_versions() -> dict[str, str]:
    """Python and tracked library versions, from package metadata (imports nothing)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hardware_versions() -> dict[str, str]:
    """CUDA, driver and GPU model when torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    out: dict[str, str] = {"device": "cpu", "cpu": platform.processor() or platform.machine()}
    if torch is None or not torch.cuda.is_available():
        return out
    out["device"] = "cuda"
    out["cuda"] = str(torch.version.cuda)
    out["gpu"] = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    out["compute_capability"] = f"{major}.{minor}"
    try:
        import subprocess

        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip().splitlines()
        if driver:
            out["driver"] = driver[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def runtime_versions() -> dict[str, str]:
    """Everything a result records about its stack."""
    return {**library_versions(), **hardware_versions()}
