"""Benchmark: `gate registry list` on a registry of 100,000 runs.

    .venv/bin/python benchmarks/registry_list.py [--runs 100000]

Fills a fresh registry in a temp dir (bulk import, one transaction), then times the queries the
CLI makes (newest 50; filtered by model; by verdict; since a date) in-process, and the whole
`gate registry list` command in a subprocess (interpreter start included). Target: < 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate.registry import Registry
from gate.registry.store import run_row
from gate.result import Decision
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
    print(f"{label:48s} {best * 1000:8.1f} ms")
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "registry.db"
        registry = Registry(db)
        print(f"filled {args.runs} runs in {fill(registry, args.runs):.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
        timed("list (newest 50)", lambda: registry.list_runs())
        timed("list --model model-7", lambda: registry.list_runs(model="model-7"))
        timed("list --verdict fail", lambda: registry.list_runs(verdict="fail"))
        timed("list --since 2026-12-01", lambda: registry.list_runs(since="2026-12-01"))
        timed("list --model model-7 --verdict pass --since ...",
              lambda: registry.list_runs(model="model-7", verdict="pass", since="2026-06-01"))
        cli = [sys.executable, "-c", "from gate.cli import entry; entry()", "registry", "list", "--registry", str(db)]
        timed("`gate registry list` (subprocess, whole command)",
              lambda: subprocess.run(cli, check=True, capture_output=True), repeat=3)


if __name__ == "__main__":
    main()
