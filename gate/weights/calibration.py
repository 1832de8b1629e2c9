"""The calibration file as static facts: present, inside the repository, and its sha256.

Checked by ``gate check`` (no torch) so a missing or edited calibration file is found before a
GPU runner is booked, not by ``gate run``. The path is confined first (QG509 reports an escape and
the file is never opened); the hash is streamed in fixed-size chunks like the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gate.spec.loader import LoadedSpec
from gate.weights.confinement import check_path
from gate.weights.lockfile import sha256_file


@dataclass(frozen=True)
class CalibrationFile:
    """What ``gate check`` found at ``calibration.source``."""

    source: str
    """The path as the spec gives it (relative to the repository root)."""
    confined: bool = True
    """False when the path escapes the repository (QG509 reports it; nothing was read)."""
    exists: bool = False
    is_file: bool = False
    """A regular file (not a directory or device)."""
    size_bytes: int | None = None
    sha256: str | None = None
    """The file's streamed sha256 (None when it was not read)."""
    read_error: str | None = None
    """Why the file could not be read (permissions, I/O), when it exists."""


def inspect_calibration(loaded: LoadedSpec, repo_root: Path) -> CalibrationFile | None:
    """Facts for the QG30x rules; None when the spec declares no calibration set."""
    cal = loaded.spec.calibration
    if cal is None:
        return None
    root = repo_root.resolve()
    if check_path("calibration.source", cal.source, root) is not None:
        return CalibrationFile(source=cal.source, confined=False)
    path = root / cal.source
    if not path.exists():
        return CalibrationFile(source=cal.source)
    if not path.is_file():
        return CalibrationFile(source=cal.source, exists=True)
    try:
        return CalibrationFile(source=cal.source, exists=True, is_file=True, size_bytes=path.stat().st_size,
                               sha256=sha256_file(path))
    except OSError as exc:
        return CalibrationFile(source=cal.source, exists=True, is_file=True, read_error=exc.strerror or str(exc))
