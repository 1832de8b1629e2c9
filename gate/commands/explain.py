"""`gate explain RULE`: a rule's docs (summary, why, example, use instead)."""

from __future__ import annotations

import argparse

from gate.errors import InputError
from gate.suggest import unknown_choice_message

HELP = "explain a rule: what it requires, why, and how to fix a violation"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rule", help="rule id (QG101) or slug (scale.constraint-declared)")


def run(args: argparse.Namespace) -> int:
    from gate.policy.rules import builtin_rules

    rules = builtin_rules()
    by_slug = {r.slug: r for r in rules.values()}
    wanted = args.rule.strip()
    rule = rules.get(wanted.upper()) or by_slug.get(wanted)
    if rule is None:
        raise InputError(unknown_choice_message("rule", wanted, list(rules)), hint="`gate policy rules` lists every rule")
    print(rule.explain(), end="")
    return 0
