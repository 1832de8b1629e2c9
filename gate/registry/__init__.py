"""The run registry: which models are quantized, how, at what accuracy delta, on which stack."""

from __future__ import annotations

from pathlib import Path

from gate.registry.engine import DEFAULT_DB, RegistryError, RegistryUnavailable, parse_target
from gate.registry.store import Registry, RunRecord
from gate.result import GateResult


def record_run(result: GateResult, *, db_path: str | Path = DEFAULT_DB, git_commit: str | None = None) -> int:
    """Record one ``gate run`` result in the registry at ``db_path`` (path or URL); return its run id."""
    return Registry(db_path).record(result, git_commit=git_commit)


__all__ = ["DEFAULT_DB", "Registry", "RegistryError", "RegistryUnavailable", "RunRecord", "parse_target", "record_run"]
