"""Remote code: anything that makes a loader run code shipped with the model.

``*.py``/``*.pyc`` files in the model directory, ``auto_map`` in ``config.json`` (or any other
top-level JSON config, e.g. ``tokenizer_config.json``), and ``model.trust_remote_code: true`` in
the spec are all evidence; each is denied (QG506, never waivable).
"""

from __future__ import annotations

import json
from pathlib import Path

CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw")
MAX_CONFIG_BYTES = 64 << 20


def is_code(path: Path) -> bool:
    return path.suffix.lower() in CODE_SUFFIXES


def auto_map_entries(path: Path) -> list[str] | None:
    """``auto_map`` entries (``Key: module.Class``) of a JSON config, or None when it has none.

    Unreadable or non-JSON files have none (their other checks report them)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "auto_map" not in data:
        return None
    auto_map = data["auto_map"]
    if isinstance(auto_map, dict):
        return sorted(f"{key}: {_render(value)}" for key, value in auto_map.items())
    return [f"auto_map: {_render(auto_map)}"]


def _render(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v is not None)
    return str(value)
