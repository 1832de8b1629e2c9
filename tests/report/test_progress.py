"""Progress display for `gate run`: bars on terminals, one plain line per stage in CI logs."""

from __future__ import annotations

import io
import re

from gate.report.progress import stage_progress


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with stage_progress(["quantize", "evaluate"], stream=out) as progress:
        progress.start("quantize")
        progress.finish("quantize")
        progress.start("evaluate", total=3)
        progress.advance("evaluate")
        progress.finish("evaluate", status="blocked")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"gate: quantize: ok in \d+\.\d s", lines[0])
    assert re.fullmatch(r"gate: evaluate: blocked in \d+\.\d s", lines[1])


def test_bars_when_live() -> None:
    out = io.StringIO()
    with stage_progress(["quantize", "evaluate"], stream=out, live=True) as progress:
        progress.start("evaluate", total=4)
        for _ in range(4):
            progress.advance("evaluate")
        progress.finish("evaluate")
        progress.start("report")
        progress.finish("report")
    text = out.getvalue()
    assert "evaluate (ok)" in text and "4/4" in text
    assert "report (ok)" in text
    assert "gate: evaluate" not in text
