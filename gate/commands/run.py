"""`gate run SPEC...`: static checks, quantize, evaluate against the baseline, decide, report."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of
from gate.commands.registry import add_mlflow_options, mlflow_uri_from
from gate.report.interface import ReportFormat

HELP = "quantize and evaluate a spec against its full-precision baseline; exit 0 pass, 1 fail/inconclusive"

DEFAULT_CACHE_DIR = Path(".gate/cache")
DEFAULT_REGISTRY = Path(".gate/registry.db")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="spec files or directories of specs")
    parser.add_argument(
        "--format", choices=[f.value for f in ReportFormat], default=ReportFormat.terminal.value, help="report format"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result to this file")
    parser.add_argument("--cache-dir", dest="cache_dir", type=Path, default=None,
                        help="artifact and baseline cache (default: <repo>/.gate/cache)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--policies", type=Path, default=None, help="policy directory (default: <repo>/policies)")
    parser.add_argument(
        "--policies-from", dest="policies_from", default=None, metavar="GIT_REF",
        help="read policies/ at this git ref (use the PR's base branch)",
    )
    add_repo_root(parser)
    parser.add_argument("--registry", default=None, metavar="PATH|URL",
                        help="registry to record the run in and share baseline results through: a SQLite path or "
                             "postgresql://USER:PASSWORD@HOST:5432/DB (default: $GATE_REGISTRY_URL, else "
                             "<repo>/.gate/registry.db)")
    parser.add_argument("--no-registry", dest="no_registry", action="store_true", help="do not record the run")
    add_mlflow_options(parser)
    parser.add_argument("--no-mlflow", dest="no_mlflow", action="store_true",
                        help="do not log to MLflow even when MLFLOW_TRACKING_URI is set")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=8, help="lm-eval batch size")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="stream library output (warnings, progress bars) to the terminal instead of the run's log")


def _git_commit(repo_root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from gate.errors import InputError
    from gate.pipeline import RunOptions, StaticOptions, run_gate, worst_exit_code
    from gate.policy.engine import load_policy_set
    from gate.report import ReportContext, render
    from gate.result import StageStatus
    from gate.spec.loader import expand_spec_paths

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} is not a batch size", hint="use a positive integer, e.g. 8")
    repo_root = repo_root_of(args)
    fmt = ReportFormat(args.format)
    if fmt is not ReportFormat.terminal:
        os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's progress bars; stdout stays the report
    from gate.registry.engine import URL_ENV
    from gate.registry.queue import queue_path

    registry = None if args.no_registry else (args.registry or os.environ.get(URL_ENV) or repo_root / DEFAULT_REGISTRY)
    options = RunOptions(
        repo_root=repo_root,
        cache_dir=(args.cache_dir or repo_root / DEFAULT_CACHE_DIR).resolve(),
        device=args.device,
        policies_dir=args.policies,
        policies_ref=args.policies_from,
        progress=fmt is ReportFormat.terminal,
        registry_db=registry,
        registry_queue=queue_path(None, repo_root),
        mlflow_uri=None if args.no_mlflow else mlflow_uri_from(args),
        mlflow_experiment=args.mlflow_experiment,
        git_commit=_git_commit(repo_root) if registry is not None else None,
        batch_size=args.batch_size,
    )
    paths = expand_spec_paths(list(args.paths))
    policy_set = load_policy_set(StaticOptions(repo_root=repo_root, policies_dir=args.policies,
                                               policies_ref=args.policies_from))
    from gate.library_output import quiet_run

    results = quiet_run(repo_root, lambda: [run_gate(p, options, policy_set) for p in paths], verbose=args.verbose)
    if args.out is not None:
        payload = [r.model_dump(mode="json") for r in results]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n", encoding="utf-8")
    for result in results:  # bookkeeping outages never change the verdict, but must be seen
        for stage in result.stages:
            if stage.stage in ("registry", "mlflow") and stage.status is StageStatus.failed:
                print(f"gate: warning: {stage.stage}: {stage.message}", file=sys.stderr)
    color = fmt is ReportFormat.terminal and sys.stdout.isatty()
    sys.stdout.write(render(results, fmt, ReportContext(color=color)))
    return worst_exit_code([r.exit_code for r in results])
