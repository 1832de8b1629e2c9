"""`gate check PATH...`: the static stages (spec, weights, plan, policy); no torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.errors import ExitCode

HELP = "validate specs and run the static checks (spec, policy, weights, plan) without a GPU"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="spec files or directories of specs")
    parser.add_argument("--format", choices=["terminal", "json"], default="terminal")
    parser.add_argument("--policies", type=Path, default=None, help="policy directory (default: <repo>/policies)")
    parser.add_argument(
        "--policies-from", dest="policies_from", default=None, metavar="GIT_REF",
        help="read policies/ at this git ref (use the PR's base branch)",
    )
    parser.add_argument("--repo-root", type=Path, default=None, help="repository root (default: enclosing git work tree)")


def run(args: argparse.Namespace) -> int:
    from gate.pipeline import StaticOptions, find_repo_root, run_static, static_result
    from gate.report import ReportFormat, render
    from gate.spec.loader import expand_spec_paths

    repo_root = (args.repo_root or find_repo_root(Path.cwd())).resolve()
    options = StaticOptions(repo_root=repo_root, policies_dir=args.policies, policies_ref=args.policies_from)
    paths = expand_spec_paths(list(args.paths))
    from gate.policy.engine import load_policy_set

    policy_set = load_policy_set(options)
    results = [static_result(run_static(p, options, policy_set)) for p in paths]
    sys.stdout.write(render(results, ReportFormat(args.format)))
    codes = [r.exit_code for r in results]
    for code in (ExitCode.UNEXPECTED, ExitCode.BAD_INPUT, ExitCode.BLOCKED):
        if code in codes:
            return int(code)
    return 0
