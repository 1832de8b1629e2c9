"""Lockfile verification throughput vs `sha256sum`, on the same files in the same run.

    .venv/bin/python benchmarks/hash_speed.py [--total-mb 1024] [--files 4] [--dir /tmp/qg-hash-bench]

Writes the files (page-cache warm), then times, in one run:
  * `sha256sum FILES` (coreutils, one process, one core),
  * `verify_lockfile` (what `gate check` runs) with 1 worker and with one worker per core,
and reports wall-clock throughput, CPU-time throughput (bytes per CPU-second = per core used, robust
on a shared machine), and peak RSS of verification at two total sizes (streaming => equal).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gate.weights.lockfile import default_workers, verify_lockfile, write_lockfile  # noqa: E402

MIB = 1 << 20


def make_files(directory: Path, total_mb: int, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(16 * MIB)
    per_file = total_mb * MIB // count
    paths = []
    for index in range(count):
        path = directory / f"model-{index + 1:05d}-of-{count:05d}.safetensors"
        if not path.exists() or path.stat().st_size != per_file:
            with path.open("wb") as handle:
                written = 0
                while written < per_file:
                    chunk = block[: min(len(block), per_file - written)]
                    handle.write(chunk)
                    written += len(chunk)
        paths.append(path)
    return paths


def warm(paths: list[Path]) -> None:
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(8 * MIB):
                pass


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_sha256sum(paths: list[Path]) -> tuple[float, float]:
    before_cpu, start = cpu_children(), time.perf_counter()
    subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)
    return time.perf_counter() - start, cpu_children() - before_cpu


def time_verify(directory: Path, lockfile: Path, workers: int) -> tuple[float, float]:
    before_cpu, start = cpu_self(), time.perf_counter()
    status = verify_lockfile(directory, lockfile, workers=workers)
    wall, cpu = time.perf_counter() - start, cpu_self() - before_cpu
    assert status.state.value == "ok", status
    return wall, cpu


def peak_rss_kib(directory: Path, lockfile: Path) -> int:
    code = (
        "import resource, sys; from pathlib import Path; sys.path.insert(0, sys.argv[3])\n"
        "from gate.weights.lockfile import verify_lockfile\n"
        "verify_lockfile(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(directory), str(lockfile), str(ROOT)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qg-hash-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each timing")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    big = args.dir / "big"
    small = args.dir / "small"
    paths = make_files(big, args.total_mb, args.files)
    small_paths = make_files(small, max(args.total_mb // 8, 8), args.files)
    warm(paths)
    total = sum(p.stat().st_size for p in paths)
    lockfile = args.dir / "big.lock.json"
    small_lock = args.dir / "small.lock.json"
    write_lockfile(big, lockfile)
    write_lockfile(small, small_lock)
    workers = default_workers()

    runs: dict[str, list[tuple[float, float]]] = {"sha256sum": [], "gate-1-worker": [], f"gate-{workers}-workers": []}
    for _ in range(args.repeat):  # interleaved, so load from other processes hits all three alike
        runs["sha256sum"].append(time_sha256sum(paths))
        runs["gate-1-worker"].append(time_verify(big, lockfile, 1))
        runs[f"gate-{workers}-workers"].append(time_verify(big, lockfile, workers))

    result: dict[str, object] = {
        "bytes": total,
        "files": len(paths),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    rows = {}
    for name, samples in runs.items():
        wall = min(w for w, _ in samples)
        cpu = min(c for _, c in samples)
        rows[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                      "MB_per_s_wall": round(total / wall / 1e6, 1), "MB_per_cpu_s": round(total / cpu / 1e6, 1)}
    result["runs"] = rows
    base = rows["sha256sum"]
    result["ratio_per_core_vs_sha256sum_1_worker"] = round(rows["gate-1-worker"]["MB_per_cpu_s"] / base["MB_per_cpu_s"], 3)
    result[f"ratio_per_core_vs_sha256sum_{workers}_workers"] = round(
        rows[f"gate-{workers}-workers"]["MB_per_cpu_s"] / base["MB_per_cpu_s"], 3
    )
    result["ratio_wall_vs_sha256sum_1_worker"] = round(base["wall_s"] / rows["gate-1-worker"]["wall_s"], 3)
    result[f"ratio_wall_vs_sha256sum_{workers}_workers"] = round(base["wall_s"] / rows[f"gate-{workers}-workers"]["wall_s"], 3)
    small_total = sum(p.stat().st_size for p in small_paths)
    result["peak_rss_kib"] = {f"{small_total // MIB} MiB": peak_rss_kib(small, small_lock), f"{total // MIB} MiB": peak_rss_kib(big, lockfile)}
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
