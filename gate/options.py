"""How the static stages run, and where the repository is: below ``policy/`` so every floor may read it.

``StaticOptions`` is read by policy loading (which policies), the weight scan (the base branch for
chat-template diffs) and the orchestrator (``gate.pipeline``); it imports nothing of the gate's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StaticOptions:
    """How to run the static stages."""

    repo_root: Path
    policies_dir: Path | None = None
    """Directory of org policies (default: ``<repo_root>/policies`` when it exists)."""
    policies_ref: str | None = None
    """Read ``policies/`` at this git ref instead (base-branch policies in PRs)."""
    today: dt.date = field(default_factory=dt.date.today)


def find_repo_root(start: Path) -> Path:
    """The enclosing git work tree (or ``start`` itself when not in one)."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / ".git").exists():
            return candidate
    return current
