"""`gate stats`: adoption metrics (coverage by volume, time to quantize, incidents)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.commands.registry import add_registry_option, registry_from

HELP = "adoption metrics: coverage of inference volume, time to quantize, regression incidents"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--specs", type=Path, nargs="*", default=None,
                        help="spec files/directories whose metadata.traffic_share rank the models (default: models/ if present)")
    parser.add_argument("--format", choices=["terminal", "markdown"], default="terminal")
    add_registry_option(parser)


def traffic_from_specs(paths: list[Path]) -> dict[str, float]:
    from gate.errors import SpecError
    from gate.spec.loader import expand_spec_paths, load_spec

    shares: dict[str, float] = {}
    for path in expand_spec_paths(paths):
        try:
            spec = load_spec(path).spec
        except SpecError as exc:
            print(f"gate: warning: skipping {exc.location or path}: {exc.message}", file=sys.stderr)
            continue
        if spec.metadata.traffic_share is not None:
            shares[spec.metadata.name] = spec.metadata.traffic_share
    return shares


def run(args: argparse.Namespace) -> int:
    from gate.registry.stats import compute_stats, render_markdown, render_terminal

    spec_paths = args.specs if args.specs else ([Path("models")] if Path("models").is_dir() else [])
    traffic = traffic_from_specs(spec_paths) if spec_paths else {}
    stats = compute_stats(registry_from(args), traffic)
    sys.stdout.write(render_markdown(stats) if args.format == "markdown" else render_terminal(stats))
    return 0
