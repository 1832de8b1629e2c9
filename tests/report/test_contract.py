"""The committed JSON Schema of the result contract matches ``GateResult`` and validates results."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from gate.report import ReportFormat, render
from gate.report.contract import render_schema
from tests.report.samples import error_check, failed_run, passed_check

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "result.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(), (
        "schema/result.schema.json is stale: run `python -m gate.report.contract > schema/result.schema.json`"
    )


def test_json_reports_validate_and_schema_rejects_unknown_fields() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert list(validator.iter_errors(json.loads(render([failed_run()], ReportFormat.json)))) == []
    both = json.loads(render([passed_check(), error_check()], ReportFormat.json))
    assert list(validator.iter_errors(both)) == []
    bad = json.loads(render([passed_check()], ReportFormat.json)) | {"surprise": 1}
    assert not validator.is_valid(bad)
