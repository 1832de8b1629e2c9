"""`gate plan`: the specs a change touches, as a GitHub Actions matrix on matching runners."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of

HELP = "list the specs a change touches (--changed-since REF) as a GitHub Actions matrix"

FORMATS = ("json", "text", "paths", "matrix")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--changed-since", dest="changed_since", metavar="GIT_REF", default=None,
                        help="select specs touched since the merge base with this commit or ref (default: every "
                             "spec); in CI pass the base commit's SHA; a name several refs answer to is refused")
    parser.add_argument("--specs-dir", dest="specs_dir", default="models",
                        help="directory of spec files, relative to the repository root (default: models)")
    add_repo_root(parser)
    parser.add_argument("--check-results", dest="check_results", type=Path, nargs="+", default=[],
                        metavar="RESULT_JSON", help="leave out specs whose `gate check` result did not pass")
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json: the plan document; matrix: only the strategy.matrix value; "
                             "paths: one spec per line; text: for people")
    parser.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    parser.add_argument("--github-output", dest="github_output", type=Path, default=None, metavar="FILE",
                        help="append matrix=, count=, specs=, deleted= to this file (pass \"$GITHUB_OUTPUT\")")


def run(args: argparse.Namespace) -> int:
    import json

    from gate.ci.changes import SelectedSpec, select_specs, spec_paths
    from gate.ci.matrix import build_fan_out
    from gate.errors import GateError
    from gate.options import StaticOptions
    from gate.plan.catalog import load_catalog
    from gate.report.load import load_results

    repo_root = repo_root_of(args)
    if args.changed_since:
        changes = select_specs(repo_root, args.changed_since, specs_dir=args.specs_dir)
        selected = list(changes.selected)
    else:
        changes = None
        selected = [SelectedSpec(path=p, reasons=("every spec",)) for p in spec_paths(repo_root, args.specs_dir)]
    catalog = load_catalog()
    try:
        from gate.policy.engine import load_policy_set

        catalog = load_policy_set(StaticOptions(repo_root=repo_root)).extend_catalog(catalog)
    except GateError:
        pass  # `gate check` reports broken policies; the built-in catalog still places runners
    checks = load_results(args.check_results) if args.check_results else []
    fan_out = build_fan_out(changes, selected, repo_root, catalog, checks)

    match args.format:
        case "json":
            text = fan_out.render()
        case "matrix":
            text = json.dumps(fan_out.matrix()) + "\n"
        case "paths":
            text = "".join(f"{e.spec}\n" for e in fan_out.entries)
        case _:
            text = fan_out.text()
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.github_output:
        with args.github_output.open("a", encoding="utf-8") as out:
            out.write(fan_out.github_outputs())
    if fan_out.count == 0 and args.format != "text":
        since = f" since {args.changed_since}" if args.changed_since else ""
        print(f"gate plan: no spec to run{since}", file=sys.stderr)
    return 0
