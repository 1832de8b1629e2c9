"""The runtime stack a result was produced on (configuration logging, re-validation)."""

from __future__ import annotations

import os
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


# --- Hub access ----------------------------------------------------------------------------------

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_defaulted: set[str] = set()
"""The offline variables ``set_offline_defaults`` set (the user had not)."""


def set_offline_defaults() -> None:
    """Evaluation never reaches for the Hub at run time: set the offline variables the user left
    unset (lm-eval task datasets would otherwise be fetched at whatever revision is current).
    A pinned ``model.hub`` snapshot is still downloaded (see ``user_chose_hub_offline``)."""
    for name in OFFLINE_VARIABLES:
        if name not in os.environ:
            os.environ[name] = "1"
            _defaulted.add(name)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def user_chose_hub_offline() -> bool:
    """True when the user, not the gate's defaults, set HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE on.

    The spec pins ``model.hub`` to a commit and the weights stage verifies it, so downloading it is
    what the spec asks for; only the user's own offline choice stops it."""
    return any(
        os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
        if name not in _defaulted
    )
