"""`gate scan PATH...`: judge weight files from their bytes (pickle allowlist, safetensors, GGUF,
archives, chat templates, remote code) without loading them. Fail closed: exit 0 only when every
file is a positively identified safe type (allowlist-clean pickles included); 1 otherwise; 2 bad input."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from enum import StrEnum
from pathlib import Path

from gate.weights.interface import FileReport, FileVerdict, RemoteCode

HELP = "scan weight files or model directories for unsafe pickles, invalid safetensors/GGUF and remote code"

BLOCKING = frozenset(
    {
        FileVerdict.unsafe, FileVerdict.unparseable, FileVerdict.invalid, FileVerdict.code, FileVerdict.unknown,
        FileVerdict.container, FileVerdict.limit, FileVerdict.not_regular,
    }
)
"""Verdicts that make `gate scan` exit 1 (the same files `gate check` denies by default).
Allowlist-clean pickles exit 0 (QG505 denies them in `gate check`, where a waiver can allow a
legacy model); unknown files whose suffix is given with ``--allow-type`` exit 0 (QG512's
``allow_types``)."""


class ScanFormat(StrEnum):
    table = "table"
    json = "json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="weight files or model directories")
    parser.add_argument("--format", choices=[f.value for f in ScanFormat], default=ScanFormat.table.value)
    parser.add_argument("--values", action="store_true", help="also stream safetensors tensors for NaN/Inf values")
    parser.add_argument(
        "--allow-type", dest="allow_types", action="append", default=[], metavar="SUFFIX",
        help="accept unknown files with this inert suffix (e.g. .png), like QG512's allow_types; never a pickle-capable type",
    )


def blocked(files: list[FileReport], remote: RemoteCode, allow_types: tuple[str, ...] = ()) -> bool:
    return any(_blocks(f, allow_types) for f in files) or remote.present


def _blocks(report: FileReport, allow_types: tuple[str, ...]) -> bool:
    from gate.weights.identify import suffix_of

    if report.verdict is FileVerdict.unknown and report.member is None and suffix_of(report.path) in allow_types:
        return False
    templates = any(t.hostile or t.render_error for t in report.chat_templates)
    return report.verdict in BLOCKING or bool(report.nonfinite_tensors) or templates


def render_json(files: list[FileReport], remote: RemoteCode, code: int) -> str:
    data = {
        "files": [f.model_dump(mode="json") for f in files],
        "remote_code": remote.model_dump(mode="json"),
        "exit_code": code,
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    """Names from hostile files (zip members, templates) as inert text: rich markup escaped,
    control characters (ANSI/OSC sequences) shown as escapes, never sent to the terminal."""
    from rich.markup import escape

    return escape(_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


def render_table(files: list[FileReport], remote: RemoteCode, *, color: bool = False, allow_types: tuple[str, ...] = ()) -> str:
    from rich.console import Console
    from rich.table import Table

    styles = {
        FileVerdict.ok: "green", FileVerdict.other: "dim", FileVerdict.safe_by_allowlist: "yellow",
        FileVerdict.unsafe: "bold red", FileVerdict.unparseable: "bold red", FileVerdict.invalid: "red",
        FileVerdict.code: "bold red", FileVerdict.unknown: "red", FileVerdict.container: "red",
        FileVerdict.limit: "bold red", FileVerdict.not_regular: "bold red",
    }
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=color, no_color=not color, highlight=False)
    table = Table(show_lines=False)
    for column in ("file", "format", "verdict", "detail"):
        table.add_column(column, overflow="fold")
    for f in files:
        detail = f.reason or ""
        if f.member:
            detail = f"member {f.member}: " + detail
        if f.is_pickle and f.globals:
            detail = (detail + "; " if detail else "") + "globals: " + ", ".join(f.globals)
        if f.nonfinite_tensors:
            detail = (detail + "; " if detail else "") + "NaN/Inf in: " + ", ".join(f.nonfinite_tensors)
        for t in f.chat_templates:
            for problem in [*t.hostile, *([t.render_error] if t.render_error else [])]:
                detail = (detail + "; " if detail else "") + f"chat template {t.name}: {problem}"
        table.add_row(_plain(f.path), f.format.value, f"[{styles[f.verdict]}]{f.verdict.value}[/]", _plain(detail))
    console.print(table)
    for path in remote.auto_map_files:
        console.print(f"[bold red]remote code[/]: {_plain(path)} declares auto_map ({_plain('; '.join(remote.auto_map))})")
    counts: dict[str, int] = {}
    for f in files:
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    verdict = "[bold red]BLOCKED[/]" if blocked(files, remote, allow_types) else "[bold green]CLEAN[/]"
    console.print(f"{verdict}: {len(files)} file(s): {summary}")
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    from gate.errors import InputError
    from gate.weights import scan_paths
    from gate.weights.identify import LOADER_SUFFIXES

    allow = tuple(sorted({t.lower() for t in args.allow_types}))
    for suffix in allow:
        if not suffix.startswith(".") or suffix in LOADER_SUFFIXES:
            raise InputError(
                f"--allow-type {suffix}: only an inert file suffix can be allowed",
                hint="give a suffix like .png; pickle-capable, archive and code types (.bin, .pt, .zip, .py...) never are",
            )
    files, remote = scan_paths(list(args.paths), scan_values=args.values)
    code = 1 if blocked(files, remote, allow) else 0
    if ScanFormat(args.format) is ScanFormat.json:
        sys.stdout.write(render_json(files, remote, code))
    else:
        sys.stdout.write(render_table(files, remote, color=sys.stdout.isatty(), allow_types=allow))
    return code
