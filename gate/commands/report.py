"""`gate report`: render saved results in any format; `--merge` combines per-spec results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "render saved JSON results (terminal, json, markdown, sarif, junit, github); --merge combines them"

MISSING_REASON = (
    "no result was uploaded for this spec: its `gate run` job failed, was cancelled or did not run; "
    "see the workflow run"
)


def configure(parser: argparse.ArgumentParser) -> None:
    from gate.report import ReportFormat

    parser.add_argument("results", nargs="*", type=Path, metavar="RESULT",
                        help="result JSON files (or directories of them) from `gate check/run --format json`")
    parser.add_argument("--format", choices=[f.value for f in ReportFormat], default="terminal")
    parser.add_argument("--merge", action="store_true",
                        help="one result per spec (a run supersedes a check), exit with the overall verdict; "
                             "unreadable files are reported instead of stopping the report")
    parser.add_argument("--plan", type=Path, default=None, metavar="PLAN_JSON",
                        help="the `gate plan` document: report deleted specs and specs with no result")
    parser.add_argument("--missing-reason", dest="missing_reason", default=MISSING_REASON,
                        help="the reason given for planned specs without a result")
    parser.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    parser.add_argument("--step-summary", dest="step_summary", type=Path, default=None, metavar="FILE",
                        help="github format: append the Markdown summary here (default: $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--exit-zero", dest="exit_zero", action="store_true",
                        help="exit 0 whatever the verdict (render only)")


def run(args: argparse.Namespace) -> int:
    from gate.errors import InputError
    from gate.pipeline import now_iso, worst_exit_code
    from gate.report import DeletedSpec, ReportContext, ReportFormat, render
    from gate.report.load import expand_result_paths, load_result_file, merge_results, missing_result

    if not args.results and args.plan is None:
        raise InputError("no result files given",
                         hint="pass the JSON files written by `gate check/run --format json`, or a directory")
    fmt = ReportFormat(args.format)
    notes: list[str] = []
    results = []
    for path in expand_result_paths(args.results):
        try:
            results.extend(load_result_file(path))
        except InputError as exc:
            if not args.merge:
                raise
            notes.append("Left out " + str(exc).replace("\n  Hint: ", " Hint: "))
    if args.merge:
        results = merge_results(results)

    deleted: tuple[DeletedSpec, ...] = ()
    planned: int | None = None
    if args.plan is not None:
        from gate.ci.matrix import load_fan_out

        fan_out = load_fan_out(args.plan)
        planned = fan_out.count + len(fan_out.skipped)
        deleted = tuple(DeletedSpec(path=d.path, renamed_to=d.renamed_to) for d in fan_out.deleted)
        have = {Path(r.spec.path).as_posix() for r in results}
        now = now_iso()
        expected = [e.spec for e in fan_out.entries] + [s.spec for s in fan_out.skipped]
        results += [missing_result(spec, args.missing_reason, at=now) for spec in expected if spec not in have]
        results.sort(key=lambda r: r.spec.path)

    env = os.environ
    github = env.get("GITHUB_ACTIONS") == "true"
    base = ReportContext.from_github_env(env) if github else ReportContext()
    stream_tty = args.output is None and sys.stdout.isatty()
    context = ReportContext(
        repo_url=base.repo_url, commit=base.commit, details_url=base.details_url, deleted=deleted,
        planned=planned, color=fmt is ReportFormat.terminal and stream_tty and "NO_COLOR" not in env,
        extra_notes=tuple(notes),
    )
    text = render(results, fmt, context)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if fmt is ReportFormat.github:
        target = args.step_summary or (Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None)
        if target is not None:
            from gate.report.github import step_summary

            with target.open("a", encoding="utf-8") as out:
                out.write(step_summary(results, context))
    if args.exit_zero or not args.merge:
        return 0 if args.exit_zero or not notes else 2
    code = worst_exit_code(r.exit_code for r in results)
    if notes and code in (0, 1):
        code = 2
    return code
