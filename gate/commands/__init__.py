"""One module per ``gate`` subcommand: ``HELP``, ``configure(parser)``, ``run(args) -> int``.

Options several commands share are declared here once (stdlib only: every command imports this).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_repo_root(parser: argparse.ArgumentParser) -> None:
    """``--repo-root DIR``: the repository the spec paths, policies and caches are relative to."""
    parser.add_argument("--repo-root", dest="repo_root", type=Path, default=None, metavar="DIR",
                        help="repository root (default: the enclosing git work tree)")


def repo_root_of(args: argparse.Namespace, start: Path | None = None) -> Path:
    """``--repo-root``, else the git work tree enclosing ``start`` (default: the current directory)."""
    from gate.options import find_repo_root

    root: Path | None = args.repo_root
    return (root or find_repo_root(start or Path.cwd())).resolve()
