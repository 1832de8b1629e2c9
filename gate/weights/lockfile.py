"""sha256 lockfiles: pin every file of a baseline model in git, verify before anything loads it.

Format (JSON, deterministic: sorted keys and files, two-space indent, trailing newline)::

    {
      "files": [{"path": "config.json", "sha256": "<64 hex>", "size": 612}, ...],
      "lockfile_version": 1,
      "revision": null
    }

``path`` is relative to the model directory (for a GGUF source: the file's name). Hashing streams
fixed-size chunks into a reused buffer (constant memory whatever the file size) and runs files in
a thread pool (``hashlib`` releases the GIL while hashing).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import SourceLocation
from gate.weights.interface import LockChange, LockState, LockStatus, WeightsError

LOCKFILE_VERSION = 1
CHUNK_BYTES = 1 << 20
"""1 MiB reads: large enough that syscall overhead vanishes, small enough to stay in L2/L3."""
MAX_LOCKFILE_BYTES = 16 << 20
SKIPPED_DIRS = (".git", ".cache")
"""Directories never hashed: VCS data and hub download metadata."""
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class LockEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Lockfile:
    files: tuple[LockEntry, ...]
    revision: str | None = None

    def render(self) -> str:
        data = {
            "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in sorted(self.files, key=lambda e: e.path)],
            "lockfile_version": LOCKFILE_VERSION,
            "revision": self.revision,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


ChunkObserver = Callable[[int, memoryview], None]
"""Sees every chunk hashed, with its file offset (e.g. the NaN/Inf check): one read, two checks."""


def sha256_file(path: Path, chunk_bytes: int = CHUNK_BYTES, observer: ChunkObserver | None = None) -> str:
    """The hex sha256 of a file, streamed in ``chunk_bytes`` reads into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    offset = 0
    with path.open("rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            if observer is not None:
                observer(offset, view[:n])
            offset += n
    return digest.hexdigest()


def is_regular(path: Path) -> bool:
    """A regular file (symlinks followed); False for FIFOs, devices, loops and dangling links,
    which are never opened (a FIFO would block the reader forever)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def hash_files(
    paths: Iterable[Path], workers: int | None = None, observers: Mapping[Path, ChunkObserver] | None = None
) -> dict[Path, str]:
    """sha256 of many files, in parallel; result keyed by the paths given. ``observers`` see the
    chunks of their file as it is hashed."""
    todo = list(paths)
    if not todo:
        return {}
    seen = observers or {}

    def one(path: Path) -> str:
        return sha256_file(path, observer=seen.get(path))

    count = min(workers or default_workers(), len(todo))
    if count == 1:
        return {p: one(p) for p in todo}
    # Largest first, so one big shard does not start last and leave the other workers idle.
    order = sorted(todo, key=lambda p: p.stat().st_size, reverse=True)
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="gate-sha256") as pool:
        digests = dict(zip(order, pool.map(one, order), strict=True))
    return {p: digests[p] for p in todo}


def model_files(model_path: Path, *, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every file of a model: a GGUF file itself, or a directory's files (recursively, sorted,
    without ``.git``/``.cache``). Symlinks are followed only by the caller's choice: this lists them
    like files (a symlinked directory too, never descended into); confinement decides whether they
    may be read, and the scan refuses anything that is not a regular file."""
    if model_path.is_file():
        return [model_path]
    skip = {Path(os.path.realpath(p)) for p in exclude}  # realpath: no RuntimeError on a symlink loop
    found: list[Path] = []
    for root, dirs, files in os.walk(model_path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        # os.walk does not follow a symlinked directory; it is listed as an entry of its own so the
        # scan reports it (QG518) instead of silently skipping what it hides.
        linked = [d for d in dirs if (Path(root) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in linked]
        for name in sorted([*files, *linked]):
            path = Path(root) / name
            if Path(os.path.realpath(path)) in skip:
                continue
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(model_path).as_posix())


def relative_name(model_path: Path, path: Path) -> str:
    if model_path.is_file():
        return path.name
    return path.relative_to(model_path).as_posix()


def build_lockfile(
    model_path: Path, revision: str | None = None, *, exclude: Iterable[Path] = (), workers: int | None = None,
    known: Mapping[Path, str] | None = None,
) -> Lockfile:
    """Hash every file of ``model_path``; ``known`` digests (files the caller hashed after writing
    them and has not touched since) are taken as given."""
    files = model_files(model_path, exclude=exclude)
    for path in files:
        if not is_regular(path):
            raise WeightsError(
                "is not a regular file (a FIFO, device, symlinked directory, symlink loop or dangling symlink); it cannot be pinned",
                hint="remove it from the model directory, or replace it with the real file",
                location=SourceLocation(str(path)),
            )
    known = known or {}
    digests = {p: known[p] for p in files if p in known}
    digests.update(hash_files([p for p in files if p not in digests], workers))
    entries = tuple(LockEntry(path=relative_name(model_path, p), size=p.stat().st_size, sha256=digests[p]) for p in files)
    return Lockfile(files=entries, revision=revision)


def write_lockfile(
    model_path: Path, out: Path, revision: str | None = None, *, workers: int | None = None,
    known: Mapping[Path, str] | None = None,
) -> Lockfile:
    """Hash every file of ``model_path`` (a directory or one GGUF file) and write ``out``."""
    if not os.path.lexists(model_path):
        raise WeightsError(
            "model path does not exist",
            hint="pass the model directory (or GGUF file) to lock",
            location=SourceLocation(str(model_path)),
        )
    if not model_path.is_dir() and not is_regular(model_path):
        raise WeightsError(
            "is not a regular file or directory (a FIFO, device, symlink loop or dangling symlink); it cannot be pinned",
            hint="pass the model directory or the GGUF file itself",
            location=SourceLocation(str(model_path)),
        )
    if revision is not None and not (len(revision) == 40 and set(revision) <= HEX):
        raise WeightsError(
            f"revision {revision!r} is not a 40-hex commit",
            hint="pin the hub commit sha (e.g. from `huggingface-cli download --revision`), never a branch",
        )
    lock = build_lockfile(model_path, revision, exclude=[out], workers=workers, known=known)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(lock.render(), encoding="utf-8")
    return lock


def read_lockfile(path: Path, shown: str | None = None) -> Lockfile:
    """Parse a lockfile; malformed content raises ``WeightsError`` with ``path:line:col``."""
    shown = shown or str(path)
    try:
        raw = path.read_bytes()[: MAX_LOCKFILE_BYTES + 1]
    except OSError as exc:
        raise WeightsError(f"cannot read lockfile: {exc.strerror}", location=SourceLocation(shown)) from None
    if len(raw) > MAX_LOCKFILE_BYTES:
        raise WeightsError(f"lockfile is over {MAX_LOCKFILE_BYTES} bytes", location=SourceLocation(shown))
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise WeightsError("lockfile is not UTF-8 text", hint="regenerate it with `gate lock`", location=SourceLocation(shown)) from None
    except json.JSONDecodeError as exc:
        raise WeightsError(
            f"lockfile is not valid JSON: {exc.msg}",
            hint="regenerate it with `gate lock MODEL_PATH --out FILE`",
            location=SourceLocation(shown, exc.lineno, exc.colno),
        ) from None
    except ValueError as exc:
        raise WeightsError(f"lockfile {exc}", hint="regenerate it with `gate lock`", location=SourceLocation(shown)) from None
    return _lockfile_from_json(data, shown)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"has a duplicate key {key!r}")
        out[key] = value
    return out


def _lockfile_from_json(data: Any, shown: str) -> Lockfile:
    where = SourceLocation(shown)
    hint = "regenerate it with `gate lock MODEL_PATH --out FILE`"

    def bad(message: str) -> WeightsError:
        return WeightsError(message, hint=hint, location=where)

    if not isinstance(data, dict):
        raise bad("lockfile must be a JSON object")
    if data.get("lockfile_version") != LOCKFILE_VERSION:
        raise bad(f"lockfile_version must be {LOCKFILE_VERSION}, got {data.get('lockfile_version')!r}")
    revision = data.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise bad("revision must be a string or null")
    files = data.get("files")
    if not isinstance(files, list):
        raise bad("files must be a list")
    entries: list[LockEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(files):
        if not isinstance(item, dict) or set(item) != {"path", "sha256", "size"}:
            raise bad(f"files[{index}] must have exactly the keys path, sha256, size")
        path, digest, size = item["path"], item["sha256"], item["size"]
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            raise bad(f"files[{index}].path must be a relative path inside the model, got {path!r}")
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= HEX:
            raise bad(f"files[{index}].sha256 must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"files[{index}].size must be a non-negative integer")
        if path in seen:
            raise bad(f"files[{index}].path {path!r} is listed twice")
        seen.add(path)
        entries.append(LockEntry(path=path, size=size, sha256=digest))
    return Lockfile(files=tuple(entries), revision=revision)


def verify_lockfile(
    model_path: Path,
    lockfile: Path,
    *,
    shown_lockfile: str | None = None,
    expected_revision: str | None = None,
    workers: int | None = None,
    observers: Mapping[Path, ChunkObserver] | None = None,
) -> LockStatus:
    """Compare a model's files with its lockfile: changed (expected vs actual sha256), missing,
    extra, not regular, and (hub models) the recorded revision. Raises ``WeightsError`` for a
    malformed lockfile. ``observers`` see each hashed file's chunks (the value check)."""
    shown = shown_lockfile or str(lockfile)
    lock = read_lockfile(lockfile, shown)
    listed = {relative_name(model_path, p): p for p in model_files(model_path, exclude=[lockfile])}
    not_regular = sorted(name for name, p in listed.items() if not is_regular(p))
    on_disk = {name: p for name, p in listed.items() if name not in not_regular}
    pinned = {e.path: e for e in lock.files}
    missing = sorted(set(pinned) - set(listed))
    extra = sorted(set(on_disk) - set(pinned))
    common = sorted(set(pinned) & set(on_disk))
    digests = hash_files([on_disk[name] for name in common], workers, observers)
    changed: list[LockChange] = []
    for name in common:
        path, entry = on_disk[name], pinned[name]
        actual = digests[path]
        size = path.stat().st_size
        if actual != entry.sha256 or size != entry.size:
            changed.append(
                LockChange(path=name, expected_sha256=entry.sha256, actual_sha256=actual, expected_size=entry.size, actual_size=size)
            )
    status = LockStatus(
        lockfile=shown,
        state=LockState.ok,
        changed=changed,
        missing=missing,
        extra=extra,
        not_regular=not_regular,
        revision=lock.revision,
        expected_revision=expected_revision,
    )
    if changed or missing or extra or not_regular or status.revision_mismatch:
        status = status.model_copy(update={"state": LockState.mismatch})
    return status


__all__ = [
    "CHUNK_BYTES",
    "LOCKFILE_VERSION",
    "LockEntry",
    "Lockfile",
    "build_lockfile",
    "hash_files",
    "model_files",
    "read_lockfile",
    "sha256_file",
    "verify_lockfile",
    "write_lockfile",
]
