"""`gate check PATH...`: the static stages (spec, policy, weights, plan); no torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of
from gate.errors import InputError
from gate.report.interface import ReportFormat

HELP = "validate specs and run the static checks (spec, policy, weights, plan) without a GPU"

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="spec files, or directories (searched for *.yaml/*.yml)")
    parser.add_argument(
        "--format", choices=[f.value for f in ReportFormat], default=ReportFormat.terminal.value, help="report format"
    )
    parser.add_argument("--output", type=Path, default=None, metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--policies", type=Path, default=None, help="policy directory (default: <repo>/policies)")
    parser.add_argument(
        "--policies-from", dest="policies_from", default=None, metavar="GIT_REF",
        help="read policies/ at this git ref (use the PR's base branch)",
    )
    add_repo_root(parser)


def run(args: argparse.Namespace) -> int:
    from gate.pipeline import StaticOptions, check_gate, worst_exit_code
    from gate.policy.engine import load_policy_set
    from gate.report import ReportContext, render
    from gate.spec.loader import expand_spec_paths

    repo_root = repo_root_of(args)
    options = StaticOptions(repo_root=repo_root, policies_dir=args.policies, policies_ref=args.policies_from)
    paths = expand_spec_paths(list(args.paths))
    policy_set = load_policy_set(options)
    results = [check_gate(path, options, policy_set) for path in paths]
    fmt = ReportFormat(args.format)
    color = fmt is ReportFormat.terminal and args.output is None and sys.stdout.isatty()
    text = render(results, fmt, ReportContext(color=color))
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write the report: {exc.strerror or exc}") from None
    return worst_exit_code([r.exit_code for r in results])
