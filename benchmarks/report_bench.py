"""Benchmark of the report formats, result merging and change detection (CPU only, seconds).

Run: .venv/bin/python benchmarks/report_bench.py [--specs 200]

Measures, on hand-built results like those of a large organisation's PR (N specs, each with
findings, two metrics and performance): render time per format and output size, loading and
merging N result files, and `select_specs` on a temporary git repository with N specs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.ci.changes import select_specs  # noqa: E402
from gate.report import ReportFormat, render  # noqa: E402
from gate.report.load import load_results, merge_results  # noqa: E402
from gate.result import GateResult  # noqa: E402
from tests.ci.test_changes import make_repo, spec_text, write  # noqa: E402
from tests.report.samples import failed_run  # noqa: E402


def timed(func: Callable[[], object], repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def results(n: int) -> list[GateResult]:
    base = failed_run()
    return [base.model_copy(update={"spec": base.spec.model_copy(update={"path": f"models/m{i:04}.yaml",
                                                                         "name": f"m{i:04}"})}) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=200)
    args = parser.parse_args()
    n = args.specs
    rs = results(n)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print(f"\n## Rendering {n} spec results (4 findings, 2 metrics, performance each)\n")
    print("| Format | Median time | Output size |")
    print("|---|---:|---:|")
    for fmt in ReportFormat:
        out = render(rs, fmt)
        seconds = timed(lambda fmt=fmt: render(rs, fmt), repeats=3)  # type: ignore[misc]
        print(f"| {fmt.value} | {seconds * 1000:.0f} ms | {len(out.encode()) / 1000:.0f} kB |")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "results"
        d.mkdir()
        for r in rs:
            (d / f"{r.spec.name}.json").write_text(render([r], ReportFormat.json), encoding="utf-8")
        seconds = timed(lambda: merge_results(load_results([d])), repeats=3)
        print(f"\nLoad + merge {n} result files: {seconds * 1000:.0f} ms")
        # The same results as schema 1 wrote them (a v1 run saved before the typed contract, renamed
        # per spec), side by side with the v2 files above: what upgrading on reading costs.
        v1 = json.loads((ROOT / "tests" / "report" / "data" / "v1" / "run-rtn2-fail.json").read_text(encoding="utf-8"))
        d1 = Path(tmp) / "results-v1"
        d1.mkdir()
        for i in range(n):
            one = {**v1, "spec": {**v1["spec"], "path": f"models/m{i:04}.yaml", "name": f"m{i:04}"}}
            (d1 / f"m{i:04}.json").write_text(json.dumps(one), encoding="utf-8")
        (v2_one,) = load_results([d1 / "m0000.json"])
        d2 = Path(tmp) / "results-v2"
        d2.mkdir()
        for i in range(n):
            spec = v2_one.spec.model_copy(update={"path": f"models/m{i:04}.yaml", "name": f"m{i:04}"})
            (d2 / f"m{i:04}.json").write_text(render([v2_one.model_copy(update={"spec": spec})], ReportFormat.json),
                                              encoding="utf-8")
        v1_s = timed(lambda: load_results([d1]), repeats=3)
        v2_s = timed(lambda: load_results([d2]), repeats=3)
        print(f"Load {n} real run results (weights, plan, 6 criteria): schema 1 (upgraded) {v1_s * 1000:.0f} ms, "
              f"schema 2 {v2_s * 1000:.0f} ms, ratio {v1_s / v2_s:.2f}")

        repo = make_repo(Path(tmp))
        for i in range(n):
            write(repo, f"models/m{i:04}.yaml", spec_text(f"m{i:04}", calib=f"c{i % 10}"))
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", "many"], check=True)
        subprocess.run(["git", "-C", str(repo), "branch", "-f", "base"], check=True)
        write(repo, "data/c3.jsonl", '{"text": "changed"}\n')
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", "calib"], check=True)
        changes = select_specs(repo, "base")
        seconds = timed(lambda: select_specs(repo, "base"), repeats=3)
        print(f"Change detection over {n + 2} specs (one calibration file changed, "
              f"{len(changes.selected)} specs selected): {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
