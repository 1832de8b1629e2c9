"""A content-addressed store for artifacts, converted baselines and evaluation results.

Layout: ``<root>/<kind>/<key>/`` plus a manifest ``<root>/<kind>/<key>/.gate-entry.json`` listing
every file's sha256. The key is the sha256 of everything that determines the content (see
``cache_key``), so a hit is correct by construction and does no work.

- Writes are atomic: an entry is built in a temporary sibling directory and renamed into place.
- A corrupt or partial entry (missing manifest, a file whose hash differs, an extra file) is
  detected on read and rebuilt.
- Concurrent builders of the same key serialise on an ``fcntl`` lock file; the second one finds
  the first one's entry and returns it as a hit.
- A builder that raises leaves nothing behind.
- Entries holding a symlink, or anything but regular files and folders, are never returned (a
  link could point at a file a later job does not expect to read).
- Shared read-only layers (``$GATE_CACHE_SHARED``, ``os.pathsep``-separated) are read after the
  root and never written: on CI, pull-request jobs write only their own per-PR root, and only a
  trusted job on the base branch (scheduled re-validation) writes the shared layer, so no pull
  request can write an entry another pull request reads. Entries are verified on every read.

Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path(".gate/cache")
"""Default root, relative to the repository root; ``GATE_CACHE_DIR`` overrides it."""

SHARED_ENV = "GATE_CACHE_SHARED"
"""Read-only cache layers written by trusted jobs only (see module docs)."""

MANIFEST = ".gate-entry.json"
_CHUNK = 1 << 20


def default_cache_dir(repo_root: Path) -> Path:
    """``$GATE_CACHE_DIR`` when set, else ``<repo_root>/.gate/cache``."""
    env = os.environ.get("GATE_CACHE_DIR")
    return Path(env) if env else repo_root / DEFAULT_CACHE_DIR


def shared_cache_dirs() -> tuple[Path, ...]:
    """The read-only layers named by ``$GATE_CACHE_SHARED`` (empty when unset)."""
    return tuple(Path(p) for p in os.environ.get(SHARED_ENV, "").split(os.pathsep) if p)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``fields`` (sorted keys, no whitespace)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One verified entry."""

    path: Path
    key: str
    hit: bool
    """True when the entry existed and verified; False when it was built now."""
    manifest_sha256: str
    """sha256 of the manifest (identifies the entry's exact content)."""


class ContentCache:
    """The store rooted at ``root`` (created on first write), over read-only ``shared`` layers."""

    def __init__(self, root: Path, shared: Sequence[Path] | None = None) -> None:
        self.root = root
        self.shared = tuple(shared) if shared is not None else shared_cache_dirs()
        """Read after ``root``, never written (default: ``$GATE_CACHE_SHARED``)."""

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> CacheEntry | None:
        """The entry if present and intact in the root or a shared layer, else None (a corrupt entry is not returned)."""
        for base in (self.root, *self.shared):
            entry = _verified(base / kind / key, key)
            if entry is not None:
                return entry
        return None

    def get_or_build(self, kind: str, key: str, build: Callable[[Path], Mapping[str, str] | None]) -> CacheEntry:
        """Return the entry, building it with ``build(tmp_dir)`` when absent or corrupt.

        ``build`` may return the sha256 of files it has just written (relative path -> digest) so
        the manifest does not hash them again; files it does not list are hashed here."""
        entry = self.get(kind, key)
        if entry is not None:
            return entry
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        with self._lock(kind, key):
            entry = self.get(kind, key)  # another process may have built it while we waited
            if entry is not None:
                return entry
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=self.root / kind))
            try:
                known = build(tmp)
                tmp.chmod(0o755)  # mkdtemp creates 0700; entries are shared read-only data
                manifest_sha = write_manifest(tmp, key, known)
                final = self.entry_dir(kind, key)
                if final.exists():  # corrupt or partial: move aside, then remove
                    trash = Path(tempfile.mkdtemp(prefix=f".trash-{key[:16]}-", dir=self.root / kind))
                    final.rename(trash / "old")
                    shutil.rmtree(trash, ignore_errors=True)
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return CacheEntry(path=final, key=key, hit=False, manifest_sha256=manifest_sha)

    @contextlib.contextmanager
    def _lock(self, kind: str, key: str) -> Iterator[None]:
        lock_path = self.root / kind / f".{key}.lock"
        with lock_path.open("a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _verified(path: Path, key: str) -> CacheEntry | None:
    """The entry at ``path`` if its manifest names ``key`` and every file (regular, no links) matches it."""
    manifest = path / MANIFEST
    try:
        if path.is_symlink() or manifest.is_symlink() or not manifest.is_file():
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files: dict[str, str] = data["files"]
        if data.get("key") != key or not isinstance(files, dict):
            return None
        present: set[str] = set()
        for p in path.rglob("*"):
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                return None
            if p.is_file() and p.name != MANIFEST:
                present.add(str(p.relative_to(path)))
        if present != set(files):
            return None
        for rel, digest in files.items():
            if sha256_file(path / rel) != digest:
                return None
        return CacheEntry(path=path, key=key, hit=True, manifest_sha256=sha256_file(manifest))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_manifest(path: Path, key: str, known: Mapping[str, str] | None = None) -> str:
    """Write the manifest of every file under ``path`` (``known`` digests taken as given); return its sha256."""
    known = known or {}
    files = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = str(p.relative_to(path))
            files[rel] = known[rel] if rel in known else sha256_file(p)
    text = json.dumps({"key": key, "files": files}, indent=2, sort_keys=True) + "\n"
    (path / MANIFEST).write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
