"""`gate registry list` as a table that fits the terminal without cutting a value.

Ids, timestamps, bits and verdicts never wrap; the metrics column lists one metric a line. The
width is the real terminal's, ``COLUMNS`` when set, and ``NON_TTY_WIDTH`` in CI logs and pipes;
when even the unwrappable columns do not fit, the table is drawn wider rather than truncated
(the terminal then wraps the lines; no value is lost).
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

from gate.registry.store import RunRecord

NON_TTY_WIDTH = 160
"""CI logs: wide enough for a row on one line, as log viewers do not wrap tables well."""
METRICS_DETAIL_LIMIT = 200
"""Above this many rows the metrics column is left out (each row would parse its result JSON)."""


def output_width(stream: TextIO | None = None) -> int:
    """``COLUMNS`` when set, else the terminal's width, else ``NON_TTY_WIDTH``."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    out = stream if stream is not None else sys.stdout
    try:
        if out.isatty():
            return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    return NON_TTY_WIDTH


def _metrics(record: RunRecord) -> str:
    return "\n".join(f"{c.name} {c.change:+.3g}" for c in record.metric_criteria if c.change is not None)


def render_runs(records: list[RunRecord], width: int | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    detail = len(records) <= METRICS_DETAIL_LIMIT
    rows = [(str(r.id), r.recorded_at[:19].replace("T", " "), r.model, r.method or "", str(r.bits or ""), r.verdict,
             _metrics(r) if detail else "") for r in records]
    header = ("id", "recorded (UTC)", "model", "method", "bits", "verdict", "metrics")
    table = Table(title=f"{len(records)} runs" + ("" if detail else " (metrics: `gate registry show ID`)"))
    fixed = {i: max([len(header[i]), *(len(row[i]) for row in rows)]) for i in (0, 1, 3, 4, 5)}
    for i, name in enumerate(header):
        if i in fixed:  # never wrapped, so never cut: ids, timestamps, numbers, verdicts
            table.add_column(name, no_wrap=True, min_width=fixed[i], justify="right" if name in ("id", "bits") else "left")
        else:  # names and metric lists wrap at word boundaries (an over-long word folds, whole)
            table.add_column(name, overflow="fold", ratio=1 if name == "metrics" else None, min_width=10)
    for row in rows:
        table.add_row(*row)
    needed = sum(w + 3 for w in fixed.values()) + 2 * (10 + 3) + 1
    buffer = io.StringIO()
    Console(file=buffer, width=max(width or output_width(), needed), force_terminal=False, color_system=None,
            highlight=False, soft_wrap=False).print(table)
    return buffer.getvalue()
