"""How much does `gate check` cost over just parsing the YAML? (target: at most 2x)

    .venv/bin/python benchmarks/check_speed.py [--specs 1000] [--repeats 3]
    .venv/bin/python benchmarks/check_speed.py --process [--runs 9] [--importtime]

Generates N varied, valid specs in a temporary repository (with a copy of this repository's
``policies/``), then times, on the same files:

* baseline: ``ruamel.yaml`` round-trip load (``YAML(typ="rt")``, one reused instance) of each
  file's bytes - the parser the gate needs for line/column positions;
* the gate's loader alone (``gate.spec.loader.load_spec``: parse, positions, validation);
* ``gate check`` in-process: one ``load_policy_set``, then ``run_static`` + ``static_result`` per
  file (spec, weights, plan and every policy rule), plus rendering the JSON report;
* for context: PyYAML's C ``CSafeLoader`` (libyaml; no positions, not what the gate can use).

``--process`` instead times what a pre-commit hook pays: ``gate check`` on ONE spec as a whole
new process (interpreter start, imports, checks, report), ``--runs`` times interleaved with a bare
``python -c pass`` and ``python -c "import ruamel.yaml, pydantic"``, each child's CPU (user + sys,
from ``wait4``) and wall; medians are reported against the 0.2 s CPU target, for a repeated check
and for the first check of a spec (its power numbers computed, not read from
``.gate/cache/check-power``). Children run with the
bytecode cache on (in a temporary PYTHONPYCACHEPREFIX, after one warm-up run), as an installed gate
has it, even where PYTHONDONTWRITEBYTECODE is set. It then prints where one process's CPU goes, and
with ``--importtime`` the biggest imports (``python -X importtime``).

Times are CPU seconds of this process (``time.process_time``, robust to other load on a shared
machine) and wall seconds, best of ``--repeats``. The ratio is gate check / baseline, measured in
the same run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TARGET_RATIO = 2.0
PROCESS_TARGET_CPU_S = 0.2
"""One-spec `gate check` as a whole process (pre-commit hook), CPU user + sys."""
FIRST_CHECK = "  same, first check of the spec (power computed)"
"""The spec's power numbers are not in ``.gate/cache/check-power`` yet (cleared before each run)."""

SPEC = """# yaml-language-server: $schema=../schema/modelspec.schema.json
apiVersion: quant-gate/v1
kind: ModelSpec
metadata:
  name: {name}
  owner: team-{team}
  tier: {tier}
  traffic_share: {share}
  labels: {{domain: {domain}}}
model:
  hub: example-org/{name}
  revision: {revision}
constraint:
  kind: {constraint}
  statement: "{statement}"
  target: {{hardware: {hardware}, memory_gb: {memory}, context: {context}, batch: {batch}{target_extra}}}
quantization:
  method: {method}
  bits: {bits}
  group_size: {group}
  format: {format}
  keep_full_precision: [lm_head]
  justification: "Generated benchmark spec {index}; follows the sanctioned default for its target."
calibration:
  source: data/calibration/{domain}.jsonl
  sha256: {sha}
  samples: {samples}
  max_seq_len: 512
  collected: 2026-10-{day:02d}
quality:
  confidence: 0.95
  metrics:
{metrics}
  stress: [reasoning, instructions, long_context]
  fidelity: {{max_kl: 0.05, max_flip_rate: 0.10}}
performance: {{min_speedup: 1.0, max_memory_gb: {max_memory}}}
rollout: {{flag: quant-{name}, traffic_slice: 0.05, rollback: baseline}}
"""

VARIANTS = [
    # constraint, hardware, memory, method, bits, group, format
    ("memory", "nvidia-l4", 24, "awq", 4, 128, "awq-gemm"),
    ("throughput", "nvidia-h100", 80, "int8", 8, -1, "int8-weight-only"),
    ("cost", "nvidia-a10g", 24, "awq", 4, 128, "awq-gemm"),
    ("memory", "cpu-x86-avx2", 16, "rtn", 8, -1, "rtn"),
]
TARGET_EXTRA = {"memory": "", "throughput": ", tokens_per_s: 900", "cost": ", hourly_cost: 1.2"}
"""What each constraint kind must state besides the hardware (QG206)."""
METRICS = [
    "    - {task: support_qa, metric: acc, max_drop: 1.0}",
    "    - {task: local_wikitext, metric: word_perplexity, max_relative_increase: 0.05}",
    "    - {task: arc_easy, metric: acc_norm, max_drop: 1.0, limit: 500}",
    "    - {task: gsm8k, metric: exact_match, max_relative_drop: 0.02}",
]


def generate(repo: Path, count: int) -> list[Path]:
    """``count`` valid, varied specs under ``repo/models``, plus the repository's policies."""
    models = repo / "models"
    models.mkdir(parents=True)
    (repo / ".git").mkdir()  # marks the repository root for the gate
    if (REPO_ROOT / "policies").is_dir():
        shutil.copytree(REPO_ROOT / "policies", repo / "policies")
    calibration = repo / "data" / "calibration"
    calibration.mkdir(parents=True)
    shas = {}
    for domain in ("support", "search", "code"):  # real files: gate check verifies each one's sha256 (QG305/306)
        data = "".join(f'{{"text": "A {domain} calibration sample, number {n}."}}\n' for n in range(64))
        (calibration / f"{domain}.jsonl").write_text(data, encoding="utf-8")
        shas[domain] = hashlib.sha256(data.encode()).hexdigest()
    paths = []
    for i in range(count):
        constraint, hardware, memory, method, bits, group, fmt = VARIANTS[i % len(VARIANTS)]
        name = f"model-{i:04d}"
        text = SPEC.format(
            name=name, team=("support", "search", "ads", "platform")[i % 4],
            tier=("critical", "standard", "internal")[i % 3], share=round((i % 50) / 1000, 3),
            domain=(domain := ("support", "search", "code")[i % 3]), revision=hashlib.sha1(name.encode()).hexdigest(),
            constraint=constraint, statement=f"Must serve model {i} within the {constraint} budget",
            hardware=hardware, memory=memory, context=(2048, 4096, 8192)[i % 3], batch=1 + i % 4,
            method=method, bits=bits, group=group, format=fmt, index=i, sha=shas[domain],
            samples=(128, 256, 512)[i % 3], day=1 + i % 28,
            metrics="\n".join(METRICS[: 1 + i % len(METRICS)]), max_memory=memory - 2,
            target_extra=TARGET_EXTRA[constraint],
        )
        path = models / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def timed(func: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best (CPU seconds, wall seconds) over ``repeats`` runs."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        func()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall


PHASES = """
import contextlib, io, sys, time
marks = [("interpreter start", time.process_time())]
def mark(label): marks.append((label, time.process_time()))
import ruamel.yaml, pydantic; mark("import ruamel.yaml, pydantic")
class _First(pydantic.BaseModel):
    x: int
mark("pydantic's first model (lazy internals)")
import rich.console, rich.table; mark("import rich (terminal report)")
import gate.result; mark("gate.result (the result contract)")
import gate.spec.loader; mark("gate.spec (models, loader)")
import gate.weights.scan; mark("gate.weights")
import gate.plan.memory; mark("gate.plan")
import gate.policy.engine
from gate.policy.rules import builtin_rules
builtin_rules(); mark("gate.policy + every built-in rule")
from gate.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["check", sys.argv[1]])
mark("first check (other imports, policies parsed, report)")
with contextlib.redirect_stdout(io.StringIO()):
    main(["check", sys.argv[1]])
mark("a second check in the same process")
previous = 0.0
for label, at in marks:
    print(f"  {label:55} {1000 * (at - previous):6.0f} ms")
    previous = at
"""


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment of the children: bytecode cached (as an installed gate has), in ``cache``, not the tree."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def child_cost(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(CPU user + sys seconds, wall seconds, exit code) of one child process."""
    import os
    import subprocess

    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall, proc.returncode


def process_benchmark(runs: int, importtime: bool) -> int:
    """One spec, whole process: gate check vs a bare interpreter vs importing its parsers."""
    import os
    import statistics
    import subprocess

    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        repo = Path(tmp)
        (spec,) = generate(repo, 1)
        gate = [sys.executable, "-c", "from gate.cli import entry; entry()", "check", str(spec)]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import ruamel.yaml, pydantic'": [sys.executable, "-c", "import ruamel.yaml, pydantic"],
            "gate check ONE_SPEC (whole process)": gate,
            FIRST_CHECK: gate,
        }
        power_cache = repo / ".gate" / "cache" / "check-power"
        env = bytecode_env(repo / "pycache")
        for argv in commands.values():
            child_cost(argv, repo, env)  # warm-up: writes the bytecode cache
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
        for _ in range(runs):  # interleaved, so load on a shared machine hits every command alike
            for label, argv in commands.items():
                if label == FIRST_CHECK:  # the spec's power numbers not remembered yet: computed, with numpy
                    shutil.rmtree(power_cache, ignore_errors=True)
                cpu, wall, code = child_cost(argv, repo, env)
                if code not in (0, 1):
                    print(f"{label}: exit {code}", file=sys.stderr)
                    return 1
                samples[label].append((cpu, wall))
        print(f"quant-gate one-spec check, whole process: median of {runs} interleaved runs")
        print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}")
        print(f"{'':44} {'CPU s':>7} {'wall s':>7}")
        medians = {}
        for label, values in samples.items():
            cpu = statistics.median(v[0] for v in values)
            wall = statistics.median(v[1] for v in values)
            medians[label] = cpu
            print(f"{label:44} {cpu:7.3f} {wall:7.3f}")
        gate_cpu = medians["gate check ONE_SPEC (whole process)"]
        parsers = medians["python -c 'import ruamel.yaml, pydantic'"]
        verdict = "OK" if gate_cpu <= PROCESS_TARGET_CPU_S else "OVER TARGET"
        print(f"gate check CPU {gate_cpu:.3f} s (target <= {PROCESS_TARGET_CPU_S} s) {verdict}; "
              f"{gate_cpu / parsers:.2f}x the bare parser imports; first check of the spec {medians[FIRST_CHECK]:.3f} s")
        print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        phases = subprocess.run([sys.executable, "-c", PHASES, str(spec)], cwd=repo, capture_output=True, text=True,
                                check=False, env=env)
        print("where one process's CPU goes (process_time deltas, one run):")
        print(phases.stdout.rstrip() or phases.stderr)
        if importtime:
            proc = subprocess.run([sys.executable, "-X", "importtime", *gate[1:]], cwd=repo, capture_output=True,
                                  text=True, check=False, env=env)
            print_imports(proc.stderr)
    return 0


def print_imports(log: str, top: int = 25) -> None:
    """The biggest imports in a ``-X importtime`` log: top-level packages by self time, gate modules cumulative."""
    packages: dict[str, int] = {}
    gate_modules: list[tuple[int, int, str]] = []
    for line in log.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        root = name.split(".")[0]
        packages[root] = packages.get(root, 0) + int(self_us)
        if root == "gate":
            gate_modules.append((int(cumulative), int(self_us), name))
    print(f"imports, self time by top-level package (ms; total {sum(packages.values()) / 1000:.0f} ms):")
    for name, us in sorted(packages.items(), key=lambda kv: -kv[1])[:top // 2]:
        print(f"  {name:40} {us / 1000:7.1f}")
    print("gate modules (cumulative / self ms):")
    for cum_us, own_us, module in sorted(gate_modules, reverse=True)[:top]:
        print(f"  {module:40} {cum_us / 1000:7.1f} {own_us / 1000:7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--process", action="store_true", help="one spec, whole process (the pre-commit hook cost)")
    parser.add_argument("--runs", type=int, default=9, help="--process: interleaved runs per command (median)")
    parser.add_argument("--importtime", action="store_true", help="--process: also list the biggest imports")
    args = parser.parse_args(argv)
    if args.process:
        return process_benchmark(args.runs, args.importtime)

    from ruamel.yaml import YAML

    from gate.pipeline import StaticOptions, run_static, static_result
    from gate.policy.engine import load_policy_set
    from gate.report import ReportFormat, render
    from gate.spec.loader import load_spec

    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        repo = Path(tmp)
        paths = generate(repo, args.specs)
        options = StaticOptions(repo_root=repo)
        policy_set = load_policy_set(options)
        rt = YAML(typ="rt")

        def baseline() -> None:
            for path in paths:
                rt.load(path.read_bytes())

        def loader_only() -> None:
            for path in paths:
                load_spec(path)

        def gate_check() -> None:
            results = [static_result(run_static(path, options, policy_set)) for path in paths]
            render(results, ReportFormat.json)

        def csafe() -> None:
            import yaml

            for path in paths:
                yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)

        # Sanity: every generated spec passes the static stages (the benchmark measures real work).
        outcomes = [run_static(path, options, policy_set) for path in paths[:8]]
        errors = [str(o.error) for o in outcomes if o.error is not None]
        if errors:
            print("generated specs fail to load:\n" + "\n".join(errors), file=sys.stderr)
            return 1
        findings = sum(len(o.findings) for o in outcomes)

        rows = [("ruamel.yaml round-trip load (baseline)", timed(baseline, args.repeats))]
        rows.append(("gate loader only (load_spec)", timed(loader_only, args.repeats)))
        rows.append(("gate check (all static stages + policies + JSON report)", timed(gate_check, args.repeats)))
        try:
            import yaml

            if getattr(yaml, "__with_libyaml__", False):
                rows.append(("PyYAML CSafeLoader (libyaml, context only)", timed(csafe, args.repeats)))
        except ImportError:
            pass

    base_cpu, base_wall = rows[0][1]
    print(f"quant-gate check speed: {args.specs} specs, best of {args.repeats}")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}; "
          f"{len(policy_set.files) if hasattr(policy_set, 'files') else '?'} policy files; "
          f"{findings} findings on the first 8 specs")
    print(f"{'':58} {'CPU s':>8} {'wall s':>8} {'ms/spec':>8} {'x base':>7}")
    for label, (cpu, wall) in rows:
        print(f"{label:58} {cpu:8.3f} {wall:8.3f} {1000 * cpu / args.specs:8.2f} {cpu / base_cpu:7.2f}")
    ratio = rows[2][1][0] / base_cpu
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio gate check / ruamel round-trip (CPU): {ratio:.2f} (target <= {TARGET_RATIO}) {verdict}")
    print(f"ratio gate loader / ruamel round-trip (CPU): {rows[1][1][0] / base_cpu:.2f}")
    print(f"wall-clock ratio gate check / baseline: {rows[2][1][1] / base_wall:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
