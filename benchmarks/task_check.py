"""What checking a pull request's task YAMLs costs, and that hostile task files end fast (issue #20).

    .venv/bin/python benchmarks/task_check.py [--repeats 5]

Builds a temporary repository with one spec evaluating the repository task ``mine`` and times,
in this process (CPU seconds, best of ``--repeats``), ``gate.evaluate.suites.scan_spec_tasks``
(the ``gate check`` facts for QG530-QG534) and the whole static check (``run_static``) for:

* ``plain``: a 12-line task with its data file;
* ``include``: the same split over an include chain of 8 files (the depth limit);
* ``dev-zero``: plus ``tasks/zzz.yaml`` symlinked to ``/dev/zero`` (was: 2.7 GB in 10 s, then killed);
* ``alias-bomb``: the task with a billion-laughs alias bomb (was: still running after 30 s at 1.3 GB);
* ``fifo``: plus a FIFO ``tasks/fifo.yaml`` (opening it would block forever);
* ``max-size``: a task file just under the 256 KiB limit (about 10,000 values, the node limit).

Peak RSS of the whole run is printed last.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.plan.test_changes import TASK, make_repo, spec_text, write  # noqa: E402


def best(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


def scenario(name: str, repo: Path) -> None:
    tasks = repo / "tasks"
    for leftover in ("zzz.yaml", "fifo.yaml"):
        if (tasks / leftover).exists() or (tasks / leftover).is_symlink():
            (tasks / leftover).unlink()
    for old in tasks.glob("inc*.yml"):
        old.unlink()
    write(repo, "tasks/mine.yaml", TASK.format(name="mine"))
    if name == "include":
        body = TASK.format(name="mine").splitlines()
        write(repo, "tasks/mine.yaml", "include: inc1.yml\n" + body[0] + "\n")
        for level in range(1, 8):
            write(repo, f"tasks/inc{level}.yml", f"include: inc{level + 1}.yml\n")
        write(repo, "tasks/inc8.yml", "\n".join(body[1:]) + "\n")
    elif name == "dev-zero":
        (tasks / "zzz.yaml").symlink_to("/dev/zero")
    elif name == "alias-bomb":
        bomb = "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, "
                       f"*l{i - 1}, *l{i - 1}]\n" for i in range(1, 10))
        write(repo, "tasks/mine.yaml", TASK.format(name="mine") + "l0: &l0 [lol]\n" + bomb)
    elif name == "fifo":
        os.mkfifo(tasks / "fifo.yaml")
    elif name == "max-size":
        rows = "".join(f"  k{i:05d}: value-{i:05d}-padding-to-fill-the-file\n" for i in range(5000))
        write(repo, "tasks/mine.yaml", TASK.format(name="mine") + "metadata:\n" + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from gate.evaluate.suites import scan_spec_tasks
    from gate.pipeline import StaticOptions, run_static
    from gate.spec.loader import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="qg-task-bench-"))
    try:
        repo = make_repo(tmp)
        write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha", task="mine"))
        write(repo, "tasks/data/mine.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n')
        subprocess.run([str(Path(sys.executable).parent / "gate"), "lock", "models/alpha.yaml"], cwd=repo,
                       check=True, capture_output=True)
        spec = repo / "models" / "alpha.yaml"
        options = StaticOptions(repo_root=repo)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'scenario':<12} {'task scan (ms CPU)':>19} {'gate check, static (ms CPU)':>28}  findings")
        for name in ("plain", "include", "dev-zero", "alias-bomb", "fifo", "max-size"):
            scenario(name, repo)
            loaded = load_spec(spec)
            scan_s = best(lambda loaded=loaded: scan_spec_tasks(loaded, repo), args.repeats)
            check_s = best(lambda: run_static(spec, options), args.repeats)
            outcome = run_static(spec, options)
            rules = sorted({f.rule_id for f in outcome.findings if f.rule_id.startswith("QG53")})
            print(f"{name:<12} {scan_s * 1000:>19.1f} {check_s * 1000:>28.1f}  {', '.join(rules) or 'none'}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the whole run: {peak:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
