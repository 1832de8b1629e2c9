"""Baseline reuse: the baseline's evaluation results, cached by what determines them.

A pull request that changes only the quantization should evaluate only the quantized model. Each
baseline component is one cache entry whose key hashes everything that can change it:

- task scores: baseline identity (lockfile / content hash), task definition and data hash,
  metric, item selection, eval settings, runtime versions and hardware;
- fidelity reference: baseline identity, text set hash, fidelity settings, runtime and hardware;
- performance: baseline identity, performance settings, runtime and hardware (timings are only
  comparable on the same machine and stack).

Entries live under ``<cache_dir>/baseline/<sha256>.json`` (+ ``.npz`` for the fidelity
reference), written atomically. A corrupt entry is treated as a miss and overwritten.

With a shared store (the registry's ``baseline_results``, ``gate/registry/baselines.py``) a local
miss is looked up there under the same key and, when found, written to the local cache; every
result this runner computes is also stored there, so a fleet evaluates each baseline once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gate.evaluate.fidelity import FidelityReference
from gate.evaluate.interface import ModelPerformance, TaskScores

if TYPE_CHECKING:
    from gate.registry.baselines import SharedBaselines

CACHE_FORMAT = 2
"""Bumped whenever cached results from older gate versions must not be reused (2: doc ids of
sequentially chosen items were mislabeled by lm-eval before the harness sorted them)."""


def cache_key(component: str, parts: dict[str, Any]) -> str:
    """sha256 of the component name and its canonical-JSON key parts."""
    body = json.dumps({"format": CACHE_FORMAT, "component": component, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class BaselineCache:
    """Content-addressed store of baseline results (one directory, plain files)."""

    def __init__(self, cache_dir: Path, shared: SharedBaselines | None = None) -> None:
        self.root = cache_dir / "baseline"
        self.shared = shared
        """The fleet-wide store behind the local files (None: local only)."""
        self.shared_hits: set[str] = set()
        """Keys this process took from the shared store."""

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}{suffix}"

    def _read_local(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, ".json")
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("key") == key else None

    def _read(self, key: str) -> dict[str, Any] | None:
        """The local entry, else the shared one (then kept locally too)."""
        data = self._read_local(key)
        if data is not None or self.shared is None:
            return data
        entry = self.shared.get(key)
        if entry is None or entry.payload.get("key") != key:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        if entry.blob is not None:
            _atomic_write(self._path(key, ".npz"), entry.blob)
        _atomic_write(self._path(key, ".json"), json.dumps(entry.payload, sort_keys=True).encode("utf-8"))
        self.shared_hits.add(key)
        return entry.payload

    def _write(self, key: str, payload: dict[str, Any], blob: bytes | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, **payload}
        _atomic_write(self._path(key, ".json"), json.dumps(entry, sort_keys=True).encode("utf-8"))
        if self.shared is not None:
            self.shared.put(key, str(payload["component"]), entry, blob)

    def get_scores(self, key: str) -> TaskScores | None:
        data = self._read(key)
        if data is None:
            return None
        try:
            return TaskScores.model_validate(data["scores"])
        except (KeyError, ValidationError):
            return None

    def put_scores(self, key: str, scores: TaskScores) -> None:
        self._write(key, {"component": "scores", "scores": scores.model_dump(mode="json")})

    def get_performance(self, key: str) -> ModelPerformance | None:
        data = self._read(key)
        if data is None:
            return None
        try:
            return ModelPerformance.model_validate(data["performance"])
        except (KeyError, ValidationError):
            return None

    def put_performance(self, key: str, performance: ModelPerformance) -> None:
        self._write(key, {"component": "performance", "performance": performance.model_dump(mode="json")})

    def get_fidelity(self, key: str) -> FidelityReference | None:
        data = self._read(key)
        if data is None or not self._path(key, ".npz").is_file():
            return None
        try:
            return FidelityReference.load(self._path(key, ".npz"))
        except (OSError, ValueError, KeyError):
            return None

    def put_fidelity(self, key: str, reference: FidelityReference) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".npz.tmp")
        os.close(fd)
        reference.save(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared runner cache must stay readable
        os.replace(tmp, self._path(key, ".npz"))
        blob = self._path(key, ".npz").read_bytes() if self.shared is not None else None
        self._write(key, {"component": "fidelity", "documents": len(reference.token_ids)}, blob)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared runner cache must stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
