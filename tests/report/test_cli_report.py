"""`gate report` end to end through the CLI: formats, merge, plan, bad files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.report import ReportFormat, render
from tests.report.samples import error_check, failed_run, passed_check


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    (d / "support.json").write_text(render([failed_run()], ReportFormat.json), encoding="utf-8")
    (d / "tiny.json").write_text(render([passed_check()], ReportFormat.json), encoding="utf-8")
    return d


def plan_file(tmp_path: Path, specs: list[str], deleted: list[str] = ()) -> Path:  # type: ignore[assignment]
    doc = {"plan_version": "1", "ref": "origin/main", "count": len(specs),
           "include": [{"spec": s, "name": Path(s).stem, "hardware": "nvidia-l4",
                        "runs_on": ["self-hosted", "gpu", "nvidia-l4"], "artifact": "result-x", "reasons": []}
                       for s in specs],
           "deleted": [{"path": p, "renamed_to": None} for p in deleted], "skipped": [], "unreadable": []}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_every_format_renders_offline(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ReportFormat:
        assert main(["report", str(results_dir / "support.json"), "--format", fmt.value]) == 0
        out = capsys.readouterr().out
        assert out == render([failed_run()], fmt)


def test_merge_exits_with_the_overall_verdict(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--merge", str(results_dir), "--format", "json"]) == 1
    assert [r["spec"]["path"] for r in json.loads(capsys.readouterr().out)] == ["models/support.yaml",
                                                                                "models/tiny.yaml"]
    assert main(["report", "--merge", str(results_dir / "tiny.json")]) == 0
    assert main(["report", "--merge", str(results_dir), "--exit-zero"]) == 0


def test_merge_reports_a_truncated_file_and_still_renders(results_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (results_dir / "cut.json").write_text(render([error_check()], ReportFormat.json)[:50], encoding="utf-8")
    out_file = tmp_path / "comment.md"
    code = main(["report", "--merge", str(results_dir), "--format", "markdown", "--output", str(out_file)])
    assert code == 2
    text = out_file.read_text(encoding="utf-8")
    assert text.startswith("<!-- quant-gate:report -->\n## ❌ quant-gate: FAIL — support-assistant: support_qa acc dropped 2.4 pts")
    assert f"> Left out {results_dir}/cut.json:3:19: not valid JSON: Unterminated string starting at " \
           "(the file ends early: it looks truncated) Hint: re-download the artifact" in text


def test_without_merge_a_bad_file_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = passed_check().model_dump(mode="json") | {"schema_version": "3.0"}
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", str(tmp_path / "old.json")]) == 2
    assert capsys.readouterr().err == (
        f"gate: error: {tmp_path}/old.json: result schema 3.0 is not supported (this is quant-gate 0.1.0, "
        "which reads schema 1.x and 2.x)\n  Hint: render it with quant-gate 0.1.0, which wrote it, or re-run the gate "
        "with this version\n"
    )


def test_plan_adds_missing_and_deleted_specs(results_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_file(tmp_path, ["models/support.yaml", "models/gone-missing.yaml"], deleted=["models/old.yaml"])
    code = main(["report", "--merge", str(results_dir), "--plan", str(plan), "--format", "markdown",
                 "--missing-reason", "not run: fork"])
    out = capsys.readouterr().out
    assert code == 3
    assert "## 💥 quant-gate: ERROR — `models/gone-missing.yaml`: not run: fork" in out
    assert "| [`models/gone-missing.yaml`] " not in out
    assert "| `models/gone-missing.yaml` | 💥 ERROR |" in out
    assert "**Decided by:** not run: fork" in out
    assert "- `models/old.yaml`" in out


def test_zero_specs_planned_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    plan = plan_file(tmp_path, [], deleted=["models/old.yaml"])
    assert main(["report", "--merge", str(empty), "--plan", str(plan), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "No spec changed in this pull request: nothing to gate." in out
    assert "- `models/old.yaml`" in out


def test_github_format_writes_annotations_and_step_summary(results_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    code = main(["report", "--merge", str(results_dir), "--format", "github", "--step-summary", str(summary)])
    assert code == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("::error file=models/support.yaml,title=quant-gate FAIL::")
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n<!-- quant-gate:report -->\n## ❌ quant-gate: FAIL — support-assistant: ")


def test_no_results_and_no_plan_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 2
    assert capsys.readouterr().err == (
        "gate: error: no result files given\n"
        "  Hint: pass the JSON files written by `gate check/run --format json`, or a directory\n"
    )


def test_bad_plan_file(results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"plan_version": "7"}', encoding="utf-8")
    assert main(["report", "--merge", str(results_dir), "--plan", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"gate: error: {bad}: plan_version '7' is not supported (expected '1')\n"
        "  Hint: write the plan and the report with the same quant-gate version\n"
    )
