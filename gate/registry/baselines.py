"""Baseline results shared by a fleet of runners through the registry.

A baseline's per-item results (task scores, the fidelity reference, performance figures) are
stored once, under the content key the local baseline cache uses (``evaluate/baseline_cache.py``:
weights identity, task and data hashes, items, settings, runtime and hardware), so any runner with
the same key reuses them instead of evaluating the baseline again. Rows are insert-once: the first
runner to finish a key wins and later writers of the same key change nothing (the content is the
same by construction). Binary payloads carry their sha256 and are verified on read.

Only a PostgreSQL registry shares baseline results (``shared_for``): a SQLite registry is one
runner's file, and that runner's local cache already holds them.

The shared store is best effort: when the registry is unreachable the run goes on with its local
cache (and evaluates what is missing), and says so; it never fails a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.registry.engine import RegistryError, insert_new, parse_target
from gate.registry.store import Registry, now


@dataclass(frozen=True)
class SharedEntry:
    """One shared baseline result."""

    component: str
    """scores | fidelity | performance"""
    payload: dict[str, Any]
    """The JSON the local cache stores for the key."""
    blob: bytes | None
    """The binary side (the fidelity reference's ``.npz``), verified against its sha256."""


class SharedBaselines:
    """The ``baseline_results`` table of one registry."""

    def __init__(self, location: str | Path) -> None:
        self.registry = Registry(parse_target(location))
        self.errors: list[str] = []
        """Registry errors met (first line each); the caller reports them, nothing is raised."""
        self._down = False
        self._ready = False

    def _usable(self) -> bool:
        """Create or upgrade the schema once (the run records into it anyway); False when down."""
        if self._down:
            return False
        if not self._ready:
            try:
                self.registry.migrate()
            except RegistryError as exc:
                self._failed(exc)
                return False
            self._ready = True
        return True

    def _failed(self, exc: RegistryError) -> None:
        self._down = True  # one outage per run is enough: do not wait on a dead server per key
        self.errors.append(str(exc).splitlines()[0])

    def get(self, key: str) -> SharedEntry | None:
        if not self._usable():
            return None
        from gate.registry.schema import baseline_results as table

        try:
            with self.registry._connect(write=False) as conn:
                row = conn.execute(table.select().where(table.c.key == key)).mappings().first()
        except RegistryError as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        blob = bytes(row["blob"]) if row["blob"] is not None else None
        if blob is not None and hashlib.sha256(blob).hexdigest() != row["blob_sha256"]:
            return None
        try:
            payload = json.loads(row["payload_json"])
        except ValueError:
            return None
        return SharedEntry(row["component"], payload, blob) if isinstance(payload, dict) else None

    def put(self, key: str, component: str, payload: dict[str, Any], blob: bytes | None = None) -> None:
        if not self._usable():
            return
        from gate.registry.schema import baseline_results as table

        values = {"key": key, "component": component, "payload_json": json.dumps(payload, sort_keys=True),
                  "blob": blob, "blob_sha256": hashlib.sha256(blob).hexdigest() if blob is not None else None,
                  "created_at": now(), "created_by": f"{socket.gethostname()}:{os.getpid()}"}
        try:
            with self.registry._connect(write=True) as conn:
                conn.execute(insert_new(self.registry.target.engine, table, "key"), values)
        except RegistryError as exc:
            self._failed(exc)

    def count(self) -> int:
        from sqlalchemy import func, select

        from gate.registry.schema import baseline_results as table

        with self.registry._connect(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def shared_for(location: str | Path) -> SharedBaselines | None:
    """The shared baseline store of a registry, or None when the registry is not shared (SQLite)."""
    return SharedBaselines(location) if parse_target(location).engine == "postgresql" else None
