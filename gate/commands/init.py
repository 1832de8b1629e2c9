"""`gate init MODEL_DIR`: write a first spec that follows SCALE, explained line by line."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of
from gate.errors import InputError

HELP = "write a SCALE-guided spec for a model: detected architecture, lockfile, precision for the constraint"


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL_DIR",
                        help="Hugging Face model directory (config.json + *.safetensors) or a .gguf file, inside the repo")
    parser.add_argument("--name", help="model name (lowercase letters, digits, . _ -)")
    parser.add_argument("--constraint", help="the bottleneck: memory | throughput | cost")
    parser.add_argument("--target", metavar="HARDWARE", help="hardware catalog name, e.g. nvidia-l4, cpu-x86-avx2")
    parser.add_argument("--tier", help="critical | standard | internal (default: standard)")
    parser.add_argument("--owner", help="owning team (default: a TODO marker)")
    parser.add_argument("--memory-gb", type=float, help="memory available to the model (default: the catalog's)")
    parser.add_argument("--context", type=int, help="serving context in tokens (default: min(4096, model maximum))")
    parser.add_argument("--batch", type=int, help="concurrent sequences at serving time (default: 1)")
    parser.add_argument("--tokens-per-s", type=float, help="throughput target (throughput-bound specs)")
    parser.add_argument("--cost-per-million-tokens", type=float, help="cost ceiling in USD (cost-bound specs)")
    parser.add_argument("--hourly-cost", type=float, help="price of the target per hour in USD (cost-bound specs)")
    parser.add_argument("--quality-sensitive", action="store_true", help="prefer gentle INT8 when it fits")
    parser.add_argument("--calibration", metavar="JSONL", help="calibration file inside the repo (default: a TODO)")
    parser.add_argument("--collected", type=_date, metavar="YYYY-MM-DD", help="when the calibration data was collected")
    parser.add_argument("--out", type=Path, help="spec path (default: <repo>/models/NAME.yaml)")
    parser.add_argument("--lockfile", type=Path, help="lockfile path (default: <repo>/models/locks/NAME.lock.json)")
    add_repo_root(parser)
    parser.add_argument("--force", action="store_true", help="overwrite an existing spec")
    parser.add_argument("--no-input", action="store_true", help="never prompt, even on a terminal")


def _terminal_ask(question: str, choices: Sequence[str] | None, default: str | None) -> str:
    from rich.prompt import Prompt

    return Prompt.ask(question, choices=list(choices) if choices else None, default=default)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from gate.onboard.init_spec import InitRequest, init_spec

    for flag in ("memory_gb", "context", "batch", "tokens_per_s", "cost_per_million_tokens", "hourly_cost"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise InputError(f"--{flag.replace('_', '-')}: {value:g} must be positive")
    repo_root = repo_root_of(args)
    interactive = not args.no_input and sys.stdin.isatty() and sys.stdout.isatty()
    request = InitRequest(
        model=args.model, repo_root=repo_root, name=args.name, constraint=args.constraint, target=args.target,
        tier=args.tier, owner=args.owner, memory_gb=args.memory_gb, context=args.context, batch=args.batch,
        tokens_per_s=args.tokens_per_s, cost_per_million_tokens=args.cost_per_million_tokens,
        hourly_cost=args.hourly_cost, quality_sensitive=args.quality_sensitive, calibration=args.calibration,
        collected=args.collected, out=args.out, lockfile=args.lockfile, force=args.force,
    )
    outcome = init_spec(request, ask=_terminal_ask if interactive else None)
    plan, opt = outcome.plan, outcome.recommendation.option
    out = sys.stdout
    out.write(f"wrote {outcome.spec_path.relative_to(repo_root)} and {outcome.lockfile_path.relative_to(repo_root)}\n")
    out.write(f"  model: {plan.architecture}, {plan.parameters:,} parameters, max context {plan.max_context or 'unknown'}\n")
    out.write(f"  recommendation: method {opt.method}, {opt.label}, format {opt.format}\n")
    for reason in outcome.recommendation.reasons:
        out.write(f"    - {reason}\n")
    for line in plan.summary():
        out.write(f"  {line}\n")
    if outcome.todos:
        out.write(f"  {outcome.todos} TODO(owner) markers need a human decision; then run `gate check "
                  f"{outcome.spec_path.relative_to(repo_root)}`\n")
    return 0
