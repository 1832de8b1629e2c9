"""Runs that could not reach the registry wait in a local JSONL file for `gate registry sync`.

A runner whose registry is down still reports its verdict; its record is appended here, one line
in the export format (``exchange.py``), under an exclusive lock so concurrent runs on one machine
never interleave. ``sync`` imports every queued line in one transaction (lines already present,
by ``run_uid``, are skipped, so a sync interrupted after its commit is safe to repeat) and only
then empties the file.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gate.registry.exchange import EXPORT_FORMAT_VERSION, read_jsonl
from gate.registry.store import Registry

QUEUE_ENV = "GATE_REGISTRY_QUEUE"
DEFAULT_QUEUE = Path(".gate") / "registry-queue.jsonl"


def queue_path(value: Path | None = None, root: Path | None = None) -> Path:
    """``value``, else ``$GATE_REGISTRY_QUEUE``, else ``<root>/.gate/registry-queue.jsonl``."""
    if value is not None:
        return value
    env = os.environ.get(QUEUE_ENV)
    if env:
        return Path(env)
    return (root or Path.cwd()) / DEFAULT_QUEUE


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def enqueue(path: Path, row: dict[str, Any]) -> None:
    """Append one run row (as ``run_row`` builds it) durably."""
    line = json.dumps({"export_version": EXPORT_FORMAT_VERSION, **row}, sort_keys=True) + "\n"
    with _locked(path) as fd:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)


def pending(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def sync(path: Path, registry: Registry) -> tuple[int, int]:
    """Upload every queued run; return (imported, already present). The file is emptied only
    after the registry committed them; any error leaves it as it was."""
    if not path.is_file():
        return 0, 0
    with _locked(path) as fd:
        rows = read_jsonl(path)
        if not rows:
            return 0, 0
        result = registry.import_rows(rows)
        os.ftruncate(fd, 0)
        os.fsync(fd)
    return result
