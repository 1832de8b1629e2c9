"""`gate revalidate`: re-run passing models whose recorded stack differs from this one."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from gate.commands.registry import add_registry_option, registry_from

HELP = "re-validate passing models after a runtime, kernel or hardware change (scheduled job)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="only this model")
    parser.add_argument("--dry-run", action="store_true", help="list what would be re-run, run nothing")
    parser.add_argument("--format", choices=["terminal", "json"], default="terminal")
    parser.add_argument("--cache-dir", type=Path, default=Path(".gate/cache"))
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    add_registry_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="stream library output (warnings, progress bars) to the terminal instead of the run's log")


def run(args: argparse.Namespace) -> int:
    from gate.registry.revalidate import find_candidates, revalidate

    registry = registry_from(args)
    current = _current_runtime(args.device)
    candidates = find_candidates(registry, current, args.model)
    if args.dry_run or not candidates:
        rows: list[dict[str, Any]] = [{"model": c.run.model, "run_id": c.run.id, "spec": c.run.spec_path,
                 "changes": {ch.key: [ch.before, ch.after] for ch in c.changes}} for c in candidates]
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("nothing to re-validate: every passing model was validated on this stack")
        else:
            for row in rows:
                changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in row["changes"].items())
                print(f"{row['model']} (run {row['run_id']}, {row['spec']}): {changed}")
        return 0

    from gate.library_output import finish_quiet, quiet
    from gate.pipeline import RunOptions, find_repo_root, run_gate
    from gate.result import GateResult

    # The registry records the new run itself (revalidate() below), so run_gate must not.
    repo_root = find_repo_root(Path.cwd())
    options = RunOptions(repo_root=repo_root, cache_dir=args.cache_dir, device=args.device,
                         progress=args.format != "json", registry_db=None)
    results: list[GateResult] = []
    # Like `gate run`: library output goes to a per-run log, the gate's own progress to stderr.
    with quiet(repo_root, verbose=args.verbose, command="gate revalidate") as log:
        shown = log.shown(repo_root)

        def rerun(record):  # type: ignore[no-untyped-def]
            result = run_gate(Path(record.spec_path), options)
            results.append(result if shown is None else result.model_copy(update={"log": shown}))
            return results[-1]

        outcomes = revalidate(registry, candidates, rerun)
    finish_quiet(log, repo_root, results, command="gate revalidate")
    if args.format == "json":
        print(json.dumps([{"model": o.model, "previous_run": o.previous_run_id, "new_run": o.new_run_id,
                           "decision": o.decision, "regressed": o.regressed,
                           "changes": {c.key: [c.before, c.after] for c in o.changes}} for o in outcomes], indent=2))
    else:
        for o in outcomes:
            changed = ", ".join(f"{c.key} {c.before} -> {c.after}" for c in o.changes)
            state = "REGRESSED" if o.regressed else "still passes"
            print(f"{o.model}: {state} ({o.decision}; run {o.previous_run_id} -> {o.new_run_id}) after {changed}")
            if o.regressed and o.message:
                print(f"  {o.message}")
    return 1 if any(o.regressed for o in outcomes) else 0


def _current_runtime(device: str) -> dict[str, str]:
    """This machine's stack; initialises CUDA only when a GPU run is asked for."""
    from gate.runtime import runtime_versions

    if device in ("cuda", "auto"):
        # hardware_versions reads CUDA details from an already imported torch.
        with contextlib.suppress(ImportError):
            import torch  # noqa: F401
    return runtime_versions()
