"""`gate report` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from gate.errors import InputError

HELP = "(not built yet)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise InputError("gate report is not built yet")
