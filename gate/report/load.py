"""Read result files back (``gate report``), check their schema version, merge per-spec results.

A result file is the JSON report: one ``GateResult`` object, or a list of them. Schema 1 files
(written before the typed contract) are upgraded on reading (``gate.result_v1``); files written by
another major schema version, truncated files and files that are not results at all are refused
with an ``InputError`` naming the file (and line:col for broken JSON) and how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gate import __version__
from gate.errors import ExitCode, InputError, SourceLocation
from gate.result import RESULT_SCHEMA_VERSION, Decision, GateResult, SpecRef, Verdict
from gate.spec.yaml_source import display_path

MAX_RESULT_BYTES = 64 << 20
"""A result is kilobytes; anything over 64 MiB is not one."""


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


SUPPORTED = _major_minor(RESULT_SCHEMA_VERSION)
LATEST_MINOR = {1: 0, **({SUPPORTED[0]: SUPPORTED[1]} if SUPPORTED else {})}
"""The newest minor version of each major this gate reads (1.0 is the last schema 1)."""


def parse_results(text: str, shown: str) -> list[GateResult]:
    """Parse the text of one result file (``shown`` names it in messages)."""
    if not text.strip():
        raise InputError(
            "result file is empty",
            hint="the job that wrote it probably failed before finishing; re-run it, or leave the file out",
            location=SourceLocation(shown),
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = not text.rstrip().endswith(("}", "]"))  # every complete result file ends so
        raise InputError(
            f"not valid JSON: {exc.msg}" + (" (the file ends early: it looks truncated)" if truncated else ""),
            hint=(
                "re-download the artifact or re-run the job that wrote it; a complete file comes from "
                "`gate run SPEC --format json > FILE`"
            ),
            location=SourceLocation(shown, exc.lineno, exc.colno),
        ) from None
    items = data if isinstance(data, list) else [data]
    return [_parse_one(item, shown, f"[{i}]" if isinstance(data, list) else "") for i, item in enumerate(items)]


def _parse_one(item: Any, shown: str, where: str) -> GateResult:
    prefix = f"{where}: " if where else ""
    if not isinstance(item, dict) or "verdict" not in item or "spec" not in item:
        raise InputError(
            f"{prefix}not a quant-gate result (expected an object with `schema_version`, `spec` and `verdict`)",
            hint="pass files written by `gate check --format json` or `gate run --format json`",
            location=SourceLocation(shown),
        )
    version = item.get("schema_version")
    parsed = _major_minor(version) if isinstance(version, str) else None
    if parsed is None or SUPPORTED is None:
        raise InputError(
            f"{prefix}schema_version {version!r} is not a result schema version",
            hint=f"this gate reads result schema {RESULT_SCHEMA_VERSION}; re-run the gate to produce the file again",
            location=SourceLocation(shown),
        )
    writer = item.get("gate_version", "unknown")
    if parsed[0] not in (1, SUPPORTED[0]):
        raise InputError(
            f"{prefix}result schema {version} is not supported (this is quant-gate {__version__}, "
            f"which reads schema 1.x and {SUPPORTED[0]}.x)",
            hint=f"render it with quant-gate {writer}, which wrote it, or re-run the gate with this version",
            location=SourceLocation(shown),
        )
    try:
        if parsed[0] == 1:
            from gate.result_v1 import upgrade

            item = upgrade(item)
        return GateResult.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        newer = parsed[1] > LATEST_MINOR.get(parsed[0], 0)
        hint = (
            f"it was written by quant-gate {writer} with the newer schema {version}; upgrade quant-gate to read it"
            if newer
            else "the file was edited or written by a broken gate; re-run the gate to produce it again"
        )
        raise InputError(
            f"{prefix}{field}: {first['msg']}{more}",
            hint=hint,
            location=SourceLocation(shown),
        ) from None


def load_result_file(path: Path) -> list[GateResult]:
    """The results in one file."""
    shown = display_path(path)
    if not path.is_file():
        raise InputError(
            "no such result file" if not path.exists() else "not a file",
            hint="pass the JSON files written by `gate check/run --format json` (or a directory of them)",
            location=SourceLocation(shown),
        )
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise InputError(
            f"result file is larger than {MAX_RESULT_BYTES >> 20} MiB; it is not a quant-gate result",
            location=SourceLocation(shown),
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("result file is not UTF-8 text", location=SourceLocation(shown)) from None
    return parse_results(text, shown)


def expand_result_paths(paths: Iterable[Path]) -> list[Path]:
    """Files stay as given; directories expand to their ``*.json`` files (recursively, sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        else:
            out.append(path)
    return out


def load_results(paths: Iterable[Path]) -> list[GateResult]:
    """Every result in ``paths`` (files or directories), in file order."""
    results: list[GateResult] = []
    for path in expand_result_paths(paths):
        results.extend(load_result_file(path))
    return results


COMMAND_RANK = {"run": 1, "check": 0}


def merge_results(results: Iterable[GateResult]) -> list[GateResult]:
    """One result per spec path: a ``run`` supersedes a ``check``; the later one wins a tie.

    The PR workflow uploads the static check of every changed spec and the run of each spec that
    passed it; the merged list is what the comment and the required check report.
    """
    best: dict[str, GateResult] = {}
    for r in results:
        current = best.get(r.spec.path)
        if current is None or _rank(r) >= _rank(current):
            best[r.spec.path] = r
    return [best[p] for p in sorted(best)]


def _rank(r: GateResult) -> tuple[int, str]:
    return COMMAND_RANK.get(r.command, 0), r.finished_at


def missing_result(spec_path: str, reason: str, *, at: str) -> GateResult:
    """An error result for a spec the plan selected but no job reported on (blocks the check)."""
    return GateResult(
        gate_version=__version__,
        command="report",
        spec=SpecRef(path=spec_path),
        started_at=at,
        finished_at=at,
        verdict=Verdict(decision=Decision.error, reasons=[reason]),
        exit_code=int(ExitCode.UNEXPECTED),
        error=reason,
    )
