"""Policy evaluation cost vs YAML load cost on N specs with the shipped policies (CEL rules included).

    .venv/bin/python benchmarks/policy_speed.py [--specs 1000] [--repeat 3]

Writes N spec files (variants of the example specs under models/, some violating rules) to a temp
dir, then times, in one process: loading them (``load_spec``: read + YAML + validation), loading
the policies once (``load_policy_set``: parse + CEL compile), and evaluating every rule, custom
CEL rule and waiver on every spec (``run_checks``). The budget is evaluation <= 2x load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gate.options import StaticOptions  # noqa: E402
from gate.plan.catalog import load_catalog  # noqa: E402
from gate.policy.engine import load_policy_set, run_checks  # noqa: E402
from gate.policy.facts import Facts  # noqa: E402
from gate.spec.loader import load_spec  # noqa: E402

EXAMPLES = ["support-assistant", "search-ranker", "nightly-summarizer"]


def write_specs(directory: Path, count: int) -> list[Path]:
    texts = [(REPO / "models" / f"{name}.yaml").read_text(encoding="utf-8") for name in EXAMPLES]
    paths = []
    for i in range(count):
        text = texts[i % len(texts)]
        for name in EXAMPLES:
            text = text.replace(f"name: {name}\n", f"name: {name}-{i}\n")
        if i % 7 == 0:  # some specs fail rules, so messages and locations are built too
            text = text.replace("samples: 256", "samples: 16")
        if i % 11 == 0:
            text = text.replace("owner: team-", "owner: person-")
        path = directory / f"spec-{i:04d}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    options = StaticOptions(repo_root=REPO, today=dt.date(2026, 11, 23))
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_specs(Path(tmp), args.specs)
        t0 = time.perf_counter()
        policy_set = load_policy_set(options)
        policy_load = time.perf_counter() - t0
        catalog = policy_set.extend_catalog(load_catalog())
        loads, evals, findings = [], [], 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            loaded = [load_spec(p) for p in paths]
            loads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            findings = 0
            for spec in loaded:
                facts = Facts(loaded=spec, catalog=catalog, today=options.today, repo_root=REPO)
                findings += len(run_checks(facts, policy_set).findings)
            evals.append(time.perf_counter() - t0)
    load, ev = statistics.median(loads), statistics.median(evals)
    print(f"machine: {platform.machine()}, {platform.python_version()}, median of {args.repeat}")
    print(f"specs: {args.specs}; policy files: {len(policy_set.files)}; custom CEL rules: {len(policy_set.custom)}; "
          f"findings: {findings}")
    print(f"policy load (parse + CEL compile, once): {policy_load * 1000:.1f} ms")
    print(f"YAML load + validation: {load:.3f} s ({load / args.specs * 1000:.2f} ms/spec)")
    print(f"policy evaluation:      {ev:.3f} s ({ev / args.specs * 1000:.2f} ms/spec)")
    print(f"evaluation / load = {ev / load:.2f}x (budget <= 2x)")
    return 0 if ev <= 2 * load else 1


if __name__ == "__main__":
    raise SystemExit(main())
