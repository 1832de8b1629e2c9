"""Exact output of the Markdown, annotation, JUnit and terminal reports on hand-built results.

The goldens live in tests/report/data/golden/. After an intended change, regenerate them with
``QG_UPDATE_GOLDEN=1 .venv/bin/pytest tests/report/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.report import DeletedSpec, ReportContext, ReportFormat, render
from tests.report.samples import error_check, failed_run, inconclusive_run, passed_check

GOLDEN = Path(__file__).parent / "data" / "golden"

CONTEXT = ReportContext(
    repo_url="https://github.com/acme/models",
    commit="0123abc",
    details_url="https://github.com/acme/models/actions/runs/42",
    deleted=(DeletedSpec("models/retired.yaml"), DeletedSpec("models/old.yaml", renamed_to="archive/old.yaml")),
    planned=4,
    width=100,
)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        (ReportFormat.markdown, "report.md"),
        (ReportFormat.github, "annotations.txt"),
        (ReportFormat.junit, "junit.xml"),
        (ReportFormat.terminal, "terminal.txt"),
    ],
)
def test_report_matches_golden(fmt: ReportFormat, name: str) -> None:
    text = render([failed_run(), inconclusive_run(), passed_check(), error_check()], fmt, CONTEXT)
    path = GOLDEN / name
    if os.environ.get("QG_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
