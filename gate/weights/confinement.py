"""Path confinement: every path a spec names must resolve inside the repository root.

Checked before anything is read, so on a self-hosted runner ``calibration.source: /etc/passwd``
(or ``../../secrets``, or a symlink pointing outside) is reported, never opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from gate.spec.models import ModelSpec
from gate.weights.interface import ConfinementViolation

_TASK_PATH = re.compile(r"[/\\]|\.ya?ml$")


def spec_paths(spec: ModelSpec) -> Iterator[tuple[str, str]]:
    """(dotted key, path) of every path-valued field of a spec."""
    model = spec.model
    for key in ("path", "gguf", "lockfile"):
        value = getattr(model, key)
        if value is not None:
            yield f"model.{key}", value
    if spec.calibration is not None:
        yield "calibration.source", spec.calibration.source
    quality = spec.quality
    if quality is not None:
        if quality.fidelity is not None and quality.fidelity.texts is not None:
            yield "quality.fidelity.texts", quality.fidelity.texts
        for index, metric in enumerate(quality.metrics):
            if _TASK_PATH.search(metric.task):  # a task given as a file, not a registered name
                yield f"quality.metrics[{index}].task", metric.task


def check_path(key: str, value: str, repo_root: Path) -> ConfinementViolation | None:
    """Why ``value`` escapes ``repo_root`` (None when it stays inside)."""

    def violation(reason: str) -> ConfinementViolation:
        return ConfinementViolation(key=key, path=value, reason=reason)

    if "\x00" in value:
        return violation("contains a NUL byte")
    if value.startswith("~"):
        return violation("is a home-directory path; give a path relative to the repository root")
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or PureWindowsPath(value).drive:
        return violation("is an absolute path; give a path relative to the repository root")
    root = repo_root.resolve()
    lexical = Path(os.path.normpath(root / value))
    if not _inside(lexical, root):
        return violation("escapes the repository root through '..'")
    resolved = Path(os.path.realpath(root / value))  # a symlink loop stays unresolved (no RuntimeError)
    if not _inside(resolved, root):
        return violation(f"resolves through a symlink to {resolved}, outside the repository root")
    return None


def check_tree(key: str, directory: Path, repo_root: Path, shown_root: str) -> list[ConfinementViolation]:
    """Symlinks inside a model directory that point outside the repository root."""
    root = repo_root.resolve()
    found: list[ConfinementViolation] = []
    for current, dirs, files in os.walk(directory):
        for name in sorted([*dirs, *files]):
            path = Path(current) / name
            target = Path(os.path.realpath(path))
            if path.is_symlink() and not _inside(target, root):
                shown = f"{shown_root}/{path.relative_to(directory).as_posix()}"
                found.append(
                    ConfinementViolation(key=key, path=shown, reason=f"is a symlink to {target}, outside the repository root")
                )
        dirs[:] = [d for d in dirs if not (Path(current) / d).is_symlink()]
    return found


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
