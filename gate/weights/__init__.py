"""Weight supply chain (minimal placeholder; issue #4 replaces this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def scan_spec_weights(loaded: Any, repo_root: Path) -> Any:
    return None
