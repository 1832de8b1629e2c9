"""Report formats: pure functions ``render(results) -> str`` over ``GateResult``s.

``render(results, fmt)`` dispatches on ``ReportFormat`` (an exhaustive match). Every format renders
from the result contract alone, so ``gate report result.json --format X`` works offline later.
"""

from __future__ import annotations

from gate.report.interface import DeletedSpec, ReportContext, ReportFormat
from gate.result import GateResult

__all__ = ["DeletedSpec", "ReportContext", "ReportFormat", "render"]


def render(results: list[GateResult], fmt: ReportFormat, context: ReportContext | None = None) -> str:
    """Render ``results`` in ``fmt``; ``context`` adds links, deleted specs and colour."""
    ctx = context or ReportContext()
    match fmt:
        case ReportFormat.terminal:
            from gate.report import terminal

            return terminal.render(results, ctx)
        case ReportFormat.json:
            from gate.report import json

            return json.render(results, ctx)
        case ReportFormat.markdown:
            from gate.report import markdown

            return markdown.render(results, ctx)
        case ReportFormat.sarif:
            from gate.report import sarif

            return sarif.render(results, ctx)
        case ReportFormat.junit:
            from gate.report import junit

            return junit.render(results, ctx)
        case ReportFormat.github:
            from gate.report import github

            return github.render(results, ctx)
