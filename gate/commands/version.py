"""`gate version`: the gate's version and, with --runtime, the ML stack's."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

from gate import __version__

HELP = "print the quant-gate version (and library versions with --runtime)"

RUNTIME_PACKAGES = ("pydantic", "ruamel.yaml", "rich", "safetensors", "torch", "transformers", "autoawq", "lm_eval", "torchao", "gguf")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", action="store_true", help="also list installed library versions (no imports)")
    parser.add_argument("--format", choices=["terminal", "json"], default="terminal")


def installed_versions() -> dict[str, str]:
    """Versions from package metadata (never imports the packages)."""
    out = {"python": platform.python_version()}
    for name in RUNTIME_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run(args: argparse.Namespace) -> int:
    data = {"quant-gate": __version__}
    if args.runtime:
        data.update(installed_versions())
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key} {value}")
    return 0
