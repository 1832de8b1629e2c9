"""`gate policy test | rules | show`: unit-test org policies, list rules, show what is in force."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from gate.commands import add_repo_root, repo_root_of
from gate.errors import ExitCode, InputError

HELP = "work with org policies: run policy tests, list rules, show the policies in force"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    test = sub.add_parser("test", help="run the policy tests under policies/tests/ (spec fragment -> expected findings)")
    test.add_argument("paths", nargs="*", type=Path, help="test files or directories (default: <policies>/tests)")
    _policy_source(test)
    rules = sub.add_parser("rules", help="list every built-in rule with its default severity and parameters")
    rules.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    show = sub.add_parser("show", help="show the policies in force (for one spec with --spec)")
    show.add_argument("--spec", type=Path, default=None, help="resolve rules and settings for this spec")
    _policy_source(show)


def _policy_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", type=Path, default=None, help="policy directory (default: <repo>/policies)")
    parser.add_argument("--policies-from", dest="policies_from", default=None, metavar="GIT_REF",
                        help="read policies/ at this git ref")
    add_repo_root(parser)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "policy_command", None)
    if command == "rules":
        return _rules(args.format)
    if command == "test":
        return _test(args)
    if command == "show":
        return _show(args)
    raise InputError("missing subcommand", hint="use `gate policy test`, `gate policy rules` or `gate policy show`")


def _options(args: argparse.Namespace) -> Any:
    from gate.options import StaticOptions

    repo_root = repo_root_of(args)
    return StaticOptions(repo_root=repo_root, policies_dir=args.policies, policies_ref=args.policies_from,
                         today=args.today or dt.date.today())


def _rules(fmt: str) -> int:
    from gate.policy.docs import rules_json, rules_markdown, rules_text

    render = {"text": rules_text, "json": rules_json, "markdown": rules_markdown}[fmt]
    sys.stdout.write(render())
    return 0


def _test(args: argparse.Namespace) -> int:
    from gate.policy.engine import load_policy_set
    from gate.policy.testing import render_outcomes, run_test_file, test_files

    options = _options(args)
    policy_set = load_policy_set(options)
    if args.paths:
        files: list[Path] = []
        for path in args.paths:
            files.extend(test_files(path) if path.is_dir() else [path])
    else:
        directory = (args.policies or options.repo_root / "policies") / "tests"
        files = test_files(directory)
        if not files:
            raise InputError(f"no policy tests in {directory}", hint="add test files (kind: PolicyTest) there")
    outcomes = []
    for path in files:
        outcomes.extend(run_test_file(path, policy_set, options.repo_root, options.today))
    sys.stdout.write(render_outcomes(outcomes))
    return int(ExitCode.BLOCKED) if any(not o.passed for o in outcomes) else 0


def _show(args: argparse.Namespace) -> int:
    from gate.policy.engine import load_policy_set
    from gate.policy.rules import builtin_rules

    options = _options(args)
    ps = load_policy_set(options)
    today = options.today
    out = [f"policies: {ps.source}", *(f"  {f}" for f in ps.files)]
    if args.spec is not None:
        from gate.spec.loader import load_spec

        loaded = load_spec(args.spec)
        meta = loaded.spec.metadata
        out.append(f"\nrules for {meta.name} (tier {meta.tier.value}, owner {meta.owner}):")
        for rule_id, rule_cls in builtin_rules().items():
            r = ps.resolve(rule_id, meta)
            state = "off" if not r.enabled else f"{r.severity.value}, {r.effective_mode(today)}"
            if r.enforce_after is not None:
                state += f" (enforced from {r.enforce_after.isoformat()})"
            params = r.params.model_dump(mode="json")
            out.append(f"  {rule_id} {rule_cls.slug}: {state}" + (f"  {json.dumps(params)}" if params else ""))
            if r.conflict is not None:
                out.append(f"    note: {r.conflict.message}")
        for c in ps.custom:
            if c.rule.scope.matches(meta):
                out.append(f"  {c.rule.id} (custom, {c.location}): {c.rule.severity}, {c.rule.mode}")
        out.append(f"settings: {json.dumps(ps.settings_for(loaded).model_dump(mode='json'))}")
    else:
        out.append("\nconfigured rules:")
        for rule_id, entries in sorted(ps.entries.items()):
            for e in entries:
                s = e.setting
                parts = [f"{k}={v}" for k, v in (("enabled", s.enabled), ("severity", s.severity), ("mode", s.mode),
                                                  ("enforce_after", s.enforce_after)) if v is not None]
                if s.params:
                    parts.append(f"params={json.dumps(s.params, default=str)}")
                out.append(f"  {rule_id} [{s.scope.describe()}] {' '.join(parts)}  ({e.location})")
        out.append("custom rules:")
        out += [f"  {c.rule.id} {c.rule.severity} [{c.rule.scope.describe()}] {c.rule.expression}  ({c.location})"
                for c in ps.custom] or ["  none"]
        out.append("hardware added:")
        out += [f"  {name} ({h.kind}, {h.memory_gb:g} GB)" for name, h in sorted(ps.hardware.items())] or ["  none"]
    out.append("waivers:")
    for w in ps.waivers:
        days = (w.waiver.expires - today).days
        status = "EXPIRED" if days < 0 else f"expires in {days} days"
        out.append(f"  {w.waiver.rule} for {', '.join(w.waiver.models)}: {status} ({w.waiver.expires.isoformat()}), "
                   f"owner {w.waiver.owner}  ({w.location})")
        out.append(f"    reason: {w.waiver.reason}")
    if not ps.waivers:
        out.append("  none")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
