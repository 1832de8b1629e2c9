"""`gate explain RULE`: a rule's docs (summary, why, example, use instead), a quantization backend,
or `backends` (which backend is sanctioned for which target and algorithm)."""

from __future__ import annotations

import argparse

from gate.errors import InputError
from gate.suggest import unknown_choice_message

HELP = "explain a rule (what it requires, why, how to fix a violation) or a quantization method (formats, targets)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rule", help="rule id (QG101), slug (scale.constraint-declared), quantization method (gguf), "
                        "or `backends` (the sanctioned backend per target and algorithm)")


def explain_text(wanted: str) -> str:
    """The docs of a built-in rule or engine check, by id (any case) or slug."""
    from gate.engine_checks import ENGINE_CHECKS
    from gate.policy.rules import builtin_rules

    rules = builtin_rules()
    wanted = wanted.strip()
    rule = rules.get(wanted.upper()) or next((r for r in rules.values() if r.slug == wanted), None)
    if rule is not None:
        return rule.explain()
    check = ENGINE_CHECKS.get(wanted.upper()) or next((c for c in ENGINE_CHECKS.values() if c.slug == wanted), None)
    if check is not None:
        return check.explain()
    from gate.quantize.registry import DESCRIPTORS, explain_backend, explain_backends

    if wanted.lower() in DESCRIPTORS:
        return explain_backend(wanted.lower())
    if wanted.lower() == "backends":
        return explain_backends()
    raise InputError(
        unknown_choice_message("rule", wanted.upper() if wanted[:2].lower() == "qg" else wanted, [*rules, *ENGINE_CHECKS]),
        hint="`gate policy rules` lists every rule; custom rules are explained by `gate policy show`",
    )


def run(args: argparse.Namespace) -> int:
    print(explain_text(args.rule), end="")
    return 0
