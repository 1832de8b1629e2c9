"""Memory-fit plan (minimal placeholder; issue #9 replaces this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class MemoryPlan:
    pass


def plan_for_spec(loaded: Any, catalog: Any, weights: Any, repo_root: Path) -> MemoryPlan | None:
    return None
