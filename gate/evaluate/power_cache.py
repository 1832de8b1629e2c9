"""``gate check``'s power numbers, remembered between runs of the same spec.

Computing them (``gate.evaluate.design.check_power``) designs each criterion's sequential looks:
the alpha-spending boundaries are a numerical integration on a 601-point grid per look, on
numpy. That was ~0.2 s of CPU (on a 1,201-point grid with bisected boundaries; ~0.02 s since)
plus ~0.06 s to import numpy, most of a pre-commit hook's budget, for numbers that only change
when the spec, its tasks or the gate change. So the result is kept in
``<repo>/.gate/cache/check-power/<key>.json``, keyed by

- the spec file's sha256 (its quality section, stress suites and tolerances),
- the path, size and modification time of every file under ``<repo>/tasks/`` (item counts),
- the same for every file of the installed ``gate`` package (the statistics, the shipped suites),

and read back without importing numpy or the verdict modules. A cache that cannot be read or
written (read-only checkout, corrupt file) is ignored: the numbers are computed as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from gate.result import SpecPower

CACHE_DIR = Path(".gate/cache/check-power")
FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent.parent


def _files(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime ns) of every file below ``root``, sorted; [] when it does not exist."""
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            out.append((os.path.relpath(path, root), st.st_size, st.st_mtime_ns))
    return sorted(out)


@functools.cache
def _package_files() -> tuple[tuple[str, int, int], ...]:
    """The gate package's files, once per process (the code running does not change under it)."""
    return tuple(_files(_PACKAGE))


def power_key(spec_sha256: str, repo_root: Path) -> str:
    """What the power numbers depend on, hashed."""
    parts = {"format": FORMAT, "spec": spec_sha256, "tasks": _files(repo_root / "tasks"), "gate": _package_files()}
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def cached_power(spec_sha256: str, repo_root: Path, compute: Callable[[], SpecPower | None]) -> SpecPower | None:
    """``compute()``'s result for this spec, from the cache when nothing it depends on changed."""
    path = repo_root / CACHE_DIR / f"{power_key(spec_sha256, repo_root)}.json"
    try:
        return SpecPower.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        pass
    power = compute()
    if power is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(power.model_dump_json(), encoding="utf-8")
            os.replace(partial, path)
        except OSError:
            pass
    return power
