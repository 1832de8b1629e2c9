"""The PR comment rendered as GitHub-flavoured Markdown in headless Chromium: layout seen, not guessed.

Skips with its reason when chromium is missing locally; in CI (``CI=true``) chromium is required
(``.ci/run`` installs Debian's ``chromium``), so the check cannot silently stop running.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gate.report import ReportFormat, render
from gate.report.preview import COLUMN_PX, Layout, example_markdown, find_chromium, layout, screenshot
from tests.needs import unavailable
from tests.report.samples import error_check, failed_run, inconclusive_run, passed_check
from tests.report.test_golden import CONTEXT
from tests.report.test_reviewer import hostile_result

if find_chromium() is None:
    unavailable("chromium is not installed (apt-get install -y chromium); the comment render tests need it",
                module=True)
if "Liberation Sans" not in subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True,
                                           check=False).stdout:
    # Arial's metrics, in GitHub's font stack; the fallback (DejaVu Sans) is ~20% wider, and the
    # widths measured below would be the machine's fonts, not the comment.
    unavailable("the Liberation Sans font is not installed (apt-get install -y fonts-liberation); the layout "
                "measurements need it", module=True)


@pytest.fixture(scope="module")
def golden() -> Layout:
    return layout(render([failed_run(), inconclusive_run(), passed_check(), error_check()], ReportFormat.markdown,
                         CONTEXT))


def test_the_first_thing_a_reviewer_reads_is_the_decision_and_its_reason(golden: Layout) -> None:
    assert golden.headings[0] == ("💥 quant-gate: ERROR — models/broken.yaml:3:1: quantization.bits: required key "
                                  "is missing (and 2 more specs not passing)")
    assert golden.headings[1:] == ["❌ support-assistant: FAIL", "⚠️ smollm2-int8: INCONCLUSIVE", "✅ tiny: PASS",
                                   "💥 models/broken.yaml: ERROR"]


def test_every_table_renders_as_a_table_with_whole_rows(golden: Layout) -> None:
    criteria = [t for t in golden.tables if t["header"] and t["header"][0] == "Criterion"]
    assert len(criteria) == 2
    assert criteria[0]["header"] == ["Criterion", "Baseline", "Candidate", "Change", "Limit", "Outcome",
                                     "Interval vs limit"]
    for table in golden.tables:  # a stray pipe would add or drop a cell
        assert set(table["rows"]) == {len(table["header"])}  # type: ignore[arg-type]
        assert table["scroll"] <= table["width"] + 1  # type: ignore[operator]  # nothing scrolls sideways


def test_gauges_line_up_and_details_start_closed(golden: Layout) -> None:
    widths = {round(w) for t in golden.tables for w in t["gauges"]}  # type: ignore[attr-defined]
    assert len(widths) == 1  # monospace, one width: the intervals are comparable at a glance
    assert golden.details and not any(d["open"] for d in golden.details)
    assert [d["summary"] for d in golden.details if str(d["summary"]).startswith("Findings")] == [
        "Findings (1 blocking, 1 warning, 1 notice, 1 waived)", "Findings (1 warning, 1 waived)", "Findings (1 blocking)"]
    assert all(not t["inDetails"] for t in golden.tables if t["header"] and t["header"][0] == "Criterion")


def test_no_markdown_or_html_residue_is_visible(golden: Layout) -> None:
    text = golden.visible_text
    for residue in ("**", "<br>", "&#", "&lt;", "\\|", "```", "<details", "True", "False"):
        assert residue not in text
    assert golden.body_width <= COLUMN_PX


def test_hostile_strings_render_inert() -> None:
    seen = layout(render([hostile_result()], ReportFormat.markdown))  # type: ignore[list-item]
    assert seen.images == 0
    assert all(link.startswith("https://github.com/") for link in seen.links) or seen.links == []
    assert "evil.example" not in " ".join(seen.links)
    assert "@octocat" not in seen.visible_text  # the mention is broken by a zero-width space
    assert "@\u200boctocat" in seen.visible_text


def test_example_screenshot(tmp_path: Path) -> None:
    png = screenshot(example_markdown(), tmp_path / "comment.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    assert width == COLUMN_PX + 32
