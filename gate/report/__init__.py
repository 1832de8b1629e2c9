"""Report formats: pure functions ``render(results) -> str`` over ``GateResult``s."""

from __future__ import annotations

from enum import Enum

from gate.result import GateResult


class ReportFormat(str, Enum):
    terminal = "terminal"
    json = "json"


def render(results: list[GateResult], fmt: ReportFormat) -> str:
    match fmt:
        case ReportFormat.terminal:
            from gate.report.terminal import render as render_terminal

            return render_terminal(results)
        case ReportFormat.json:
            from gate.report.json import render as render_json

            return render_json(results)
