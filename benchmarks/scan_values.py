"""What the NaN/Inf value check costs when it rides on the lockfile's sha256 pass (issue #18).

One command::

    .venv/bin/python benchmarks/scan_values.py [--mib 512] [--repeats 3]

Writes one safetensors file (half F16, half F32, all finite, so every value is checked) of ``--mib`` MiB in a temporary directory, then times,
side by side in one run (page cache warm: every variant reads the same cached bytes, so the
numbers compare CPU work, which is what the value check adds):

- ``sha256 only``: the lockfile pass alone (``verify_lockfile``), as before;
- ``sha256 + values (one pass)``: the same pass with the ``NonfiniteObserver`` fed each chunk;
- ``sha256, then values (two passes)``: the lockfile pass followed by the separate streamed
  scan (``nonfinite_tensors``), what ``gate check`` did before.

Best of ``--repeats`` rounds, the variants interleaved in each; prints seconds and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(directory: Path, mib: int) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    per = (mib << 20) // 2
    tensors: dict[str, np.ndarray] = {
        "f16": rng.standard_normal(per // 2, dtype=np.float32).astype(np.float16),
        "f32": rng.standard_normal(per // 4, dtype=np.float32),
    }
    path = directory / "model.safetensors"
    save_file(tensors, str(path))
    return path


def evict(path: Path) -> None:
    """Drop this one file's pages from the page cache (nothing else's): a cold read."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, cold: Path | None = None) -> dict[str, float]:
    """Best time of each variant, run in rounds (A, B, C, A, B, C, ...) so load on a shared
    machine hits every variant alike; with ``cold``, that file is evicted before each run."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if cold is not None:
                evict(cold)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> int:
    from gate.weights import safetensors_check, write_lockfile
    from gate.weights.lockfile import verify_lockfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scan-values-") as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        path = build(model, args.mib)
        lock = Path(tmp) / "model.lock.json"
        write_lockfile(model, lock)
        header = safetensors_check.check_file(path)
        size = path.stat().st_size

        def hash_only() -> object:
            return verify_lockfile(model, lock)

        def one_pass() -> object:
            observer = safetensors_check.NonfiniteObserver(header)
            verify_lockfile(model, lock, observers={path: observer})
            return observer.found

        def two_passes() -> object:
            verify_lockfile(model, lock)
            return safetensors_check.nonfinite_tensors(path, header)

        variants = {"sha256 only": hash_only, "sha256 + values (one pass)": one_pass, "sha256, then values (two passes)": two_passes}
        print(f"{size / (1 << 20):.0f} MiB safetensors; {platform.machine()}, {os.cpu_count()} CPUs; best of {args.repeats} interleaved rounds")
        for label, cold in (("warm page cache", None), ("cold (file evicted before each run)", path)):
            hash_only()
            results = interleaved(variants, args.repeats, cold)
            base = results["sha256 only"]
            print(f"-- {label}")
            for name, seconds in results.items():
                print(f"{name:<34}{seconds:>8.3f} s  {seconds / base:>5.2f}x  {size / seconds / (1 << 20):>7.0f} MiB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
