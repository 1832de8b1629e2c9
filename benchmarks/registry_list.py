"""Benchmark: `gate registry list` and `gate stats` on a registry of 100,000 runs, on SQLite and on
PostgreSQL, side by side in one run.

    .venv/bin/python benchmarks/registry_list.py [--runs 100000] [--engines sqlite,postgresql]

Fills a fresh registry per engine (bulk import, one transaction; PostgreSQL is a private cluster
on a temp dir and a loopback port, as the tests start it), then times the queries the CLI makes
(newest 50; filtered by model; by verdict; since a date), the adoption statistics, and the whole
`gate registry list` and `gate stats` commands in a subprocess (interpreter start included).
Target: < 1 s for each whole command.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate.registry import Registry
from gate.registry.stats import compute_stats
from gate.registry.store import run_row
from gate.result import Decision
from tests.registry import pg
from tests.registry.factory import make_result


def fill(registry: Registry, runs: int) -> float:
    decisions = [Decision.passed, Decision.failed, Decision.inconclusive]
    templates = [run_row(make_result(f"model-{m}", decisions[m % 3])) for m in range(50)]
    rows = []
    for i in range(runs):
        row = dict(templates[i % 50])
        row["run_uid"] = f"uid-{i}"
        row["recorded_at"] = f"2026-{1 + (i * 12) // runs:02d}-{1 + i % 28:02d}T00:00:{i % 60:02d}.{i:06d}Z"
        rows.append(row)
    start = time.perf_counter()
    registry.import_rows(rows)
    return time.perf_counter() - start


def timed(label: str, func, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:52s} {best * 1000:8.1f} ms", flush=True)
    return best


def bench(location: str, runs: int, cwd: Path) -> None:
    registry = Registry(location)
    print(f"  filled {runs} runs in {fill(registry, runs):.1f} s", flush=True)
    timed("list (newest 50)", lambda: registry.list_runs())
    timed("list --model model-7", lambda: registry.list_runs(model="model-7"))
    timed("list --verdict fail", lambda: registry.list_runs(verdict="fail"))
    timed("list --since 2026-12-01", lambda: registry.list_runs(since="2026-12-01"))
    timed("list --model model-7 --verdict pass --since ...",
          lambda: registry.list_runs(model="model-7", verdict="pass", since="2026-06-01"))
    timed("stats (compute, in process)", lambda: compute_stats(registry), repeat=3)
    gate = [sys.executable, "-c", "from gate.cli import entry; entry()"]
    for args in (["registry", "list"], ["stats"]):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = timed(f"`gate {' '.join(args)}` (subprocess, whole command)",
                     lambda args=args: subprocess.run([*gate, *args, "--registry", location], check=True,
                                                      capture_output=True, cwd=cwd), repeat=3)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / 3
        print(f"  {'  its CPU time (user + sys, mean of 3)':52s} {cpu * 1000:8.1f} ms  (wall best {best * 1000:.0f} ms)",
              flush=True)
    registry.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)  # no models/ here: gate stats ranks by the recorded shares
        if "sqlite" in engines:
            db = cwd / "registry.db"
            print("sqlite", flush=True)
            bench(str(db), args.runs, cwd)
            print(f"  size {db.stat().st_size / 1e6:.0f} MB")
        if "postgresql" in engines:
            bin_dir = pg.server_bin()
            if bin_dir is None:
                sys.exit("PostgreSQL server binaries not found (apt-get install postgresql)")
            cluster = pg.start(bin_dir)
            try:
                print(f"postgresql ({bin_dir.parent.name}, loopback TCP)", flush=True)
                bench(cluster.create_database("bench"), args.runs, cwd)
                size = cluster.psql("SELECT pg_database_size('bench')", "bench").strip()
                print(f"  size {int(size) / 1e6:.0f} MB")
            finally:
                pg.remove(cluster)


if __name__ == "__main__":
    main()
