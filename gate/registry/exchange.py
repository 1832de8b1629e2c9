"""Export and import of registry runs (JSONL keeps everything; CSV is for spreadsheets)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from gate.errors import InputError, SourceLocation
from gate.registry.store import RUN_COLUMNS, RunRecord

EXPORT_FORMAT_VERSION = 1


def export_jsonl(records: list[RunRecord]) -> str:
    """One JSON object per line: every column plus ``export_version``; import round-trips it."""
    lines = []
    for record in records:
        row = {c: getattr(record, c) for c in RUN_COLUMNS}
        lines.append(json.dumps({"export_version": EXPORT_FORMAT_VERSION, **row}, sort_keys=True))
    return "".join(line + "\n" for line in lines)


def export_csv(records: list[RunRecord]) -> str:
    """The configuration-log columns (not the full result JSON), one row per run."""
    columns = [c for c in RUN_COLUMNS if c not in ("result_json",)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *columns])
    for record in records:
        writer.writerow([record.id, *[getattr(record, c) for c in columns]])
    return buffer.getvalue()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse an export; any malformed line is an error at its line (nothing is imported)."""
    if not path.is_file():
        raise InputError("file not found", hint="pass a file written by `gate registry export --format jsonl`",
                         location=SourceLocation(str(path)))
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = SourceLocation(str(path), number)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", hint="export again; the file was not imported", location=where) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object per line", location=where)
        version = row.get("export_version")
        if version != EXPORT_FORMAT_VERSION:
            raise InputError(
                f"export_version {version!r} is not supported (expected {EXPORT_FORMAT_VERSION})",
                hint="export with the same quant-gate version", location=where,
            )
        missing = [c for c in ("run_uid", "model", "verdict", "runtime_json", "result_json") if not row.get(c)]
        if missing:
            raise InputError(f"missing field(s): {', '.join(missing)}", location=where)
        rows.append(row)
    return rows
