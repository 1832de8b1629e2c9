"""Reading result files back: round trip, schema versions, broken files, merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.report import ReportFormat, render
from gate.report.load import load_result_file, load_results, merge_results, missing_result
from gate.result import Decision
from tests.report.samples import error_check, failed_run, passed_check


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip_one_and_many(tmp_path: Path) -> None:
    one = write(tmp_path / "one.json", render([failed_run()], ReportFormat.json))
    many = write(tmp_path / "many.json", render([passed_check(), error_check()], ReportFormat.json))
    assert load_result_file(one) == [failed_run()]
    assert load_result_file(many) == [passed_check(), error_check()]
    assert load_results([tmp_path]) == [passed_check(), error_check(), failed_run()]


def test_truncated_json_names_file_line_and_col(tmp_path: Path) -> None:
    text = render([failed_run()], ReportFormat.json)
    path = write(tmp_path / "cut.json", text[:120])
    with pytest.raises(InputError) as err:
        load_result_file(path)
    assert err.value.location is not None
    assert err.value.exit_code == 2
    assert str(err.value) == (
        f"{path}:6:13: not valid JSON: Unterminated string starting at "
        "(the file ends early: it looks truncated)\n"
        "  Hint: re-download the artifact or re-run the job that wrote it; a complete file comes from "
        "`gate run SPEC --format json > FILE`"
    )


def test_broken_but_complete_json_is_not_called_truncated(tmp_path: Path) -> None:
    path = write(tmp_path / "edited.json", '{"spec": {}, "verdict": {},}')
    with pytest.raises(InputError) as err:
        load_result_file(path)
    assert err.value.message == "not valid JSON: Expecting property name enclosed in double quotes"
    assert str(err.value.location) == f"{path}:1:28"


def test_other_major_schema_version_is_refused(tmp_path: Path) -> None:
    data = failed_run().model_dump(mode="json") | {"schema_version": "3.0", "gate_version": "9.1.0"}
    path = write(tmp_path / "v3.json", json.dumps(data))
    with pytest.raises(InputError) as err:
        load_result_file(path)
    assert str(err.value) == (
        f"{path}: result schema 3.0 is not supported (this is quant-gate 0.1.0, which reads schema 1.x and 2.x)\n"
        "  Hint: render it with quant-gate 9.1.0, which wrote it, or re-run the gate with this version"
    )


def test_newer_minor_with_unknown_field_asks_for_upgrade(tmp_path: Path) -> None:
    data = passed_check().model_dump(mode="json") | {"schema_version": "1.7", "carbon": {"kg": 1}}
    path = write(tmp_path / "v17.json", json.dumps([data]))
    with pytest.raises(InputError) as err:
        load_result_file(path)
    assert str(err.value) == (
        f"{path}: [0]: carbon: Extra inputs are not permitted\n"
        "  Hint: it was written by quant-gate 0.1.0 with the newer schema 1.7; upgrade quant-gate to read it"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "result file is empty"),
        ('{"plan_version": "1"}', "not a quant-gate result (expected an object with `schema_version`, `spec` and `verdict`)"),
        ('[{"spec": {}, "verdict": {}}]', "[0]: schema_version None is not a result schema version"),
        ('{"spec": {}, "verdict": {}, "schema_version": "one"}', "schema_version 'one' is not a result schema version"),
    ],
)
def test_files_that_are_not_results(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(InputError) as err:
        load_result_file(path)
    assert err.value.message == message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_result_file(tmp_path / "nope.json")
    assert err.value.message == "no such result file"
    assert err.value.exit_code == 2


def test_merge_prefers_run_over_check_and_later_over_earlier() -> None:
    run = failed_run()
    check = passed_check().model_copy(update={"spec": run.spec})
    later_check = passed_check().model_copy(update={"finished_at": "2026-11-23T11:00:00Z"})
    merged = merge_results([run, check, passed_check(), later_check])
    assert merged == [run, later_check]


def test_missing_result_blocks() -> None:
    r = missing_result("models/a.yaml", "no result", at="2026-11-23T12:00:00Z")
    assert r.verdict.decision is Decision.error
    assert r.exit_code == 3
    assert r.verdict.reasons == ["no result"]
