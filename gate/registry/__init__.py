"""The run registry: which models are quantized, how, at what accuracy delta, on which stack."""

from __future__ import annotations

from pathlib import Path

from gate.registry.store import DEFAULT_DB, Registry, RegistryError, RunRecord
from gate.result import GateResult


def record_run(result: GateResult, *, db_path: Path = DEFAULT_DB, git_commit: str | None = None) -> int:
    """Record one ``gate run`` result; return its run id."""
    return Registry(db_path).record(result, git_commit=git_commit)


__all__ = ["DEFAULT_DB", "Registry", "RegistryError", "RunRecord", "record_run"]
