"""Error rendering: `path:line:col: message` plus an indented `Hint:` line."""

from __future__ import annotations

import pytest

from gate.errors import ExitCode, GateError, MultiSpecError, SourceLocation, SpecError
from gate.suggest import did_you_mean, unknown_choice_message


def test_source_location_renders_what_it_knows() -> None:
    assert str(SourceLocation("a.yaml")) == "a.yaml"
    assert str(SourceLocation("a.yaml", 3)) == "a.yaml:3"
    assert str(SourceLocation("a.yaml", 3, 7)) == "a.yaml:3:7"


def test_error_text_and_exit_codes() -> None:
    error = SpecError("bits: 3 is below 4", hint="add qat_plan", location=SourceLocation("m.yaml", 14, 5))
    assert str(error) == "m.yaml:14:5: bits: 3 is below 4\n  Hint: add qat_plan"
    assert str(GateError("plain")) == "plain"
    assert error.exit_code is ExitCode.BAD_INPUT
    assert GateError("x").exit_code is ExitCode.UNEXPECTED


def test_multi_spec_error_lists_every_error() -> None:
    first = SpecError("one", hint="h1", location=SourceLocation("m.yaml", 1, 1))
    second = SpecError("two", location=SourceLocation("m.yaml", 2, 3))
    multi = MultiSpecError([first, second])
    assert str(multi) == "m.yaml:1:1: one\n  Hint: h1\nm.yaml:2:3: two"
    assert (multi.message, multi.location) == ("one", first.location)
    with pytest.raises(ValueError, match="at least one error"):
        MultiSpecError([])


def test_did_you_mean() -> None:
    assert did_you_mean("awk", ["awq", "int8", "rtn"]) == "awq"
    assert did_you_mean("zzzz", ["awq", "int8", "rtn"]) is None
    assert unknown_choice_message("method", "awk", ["rtn", "awq", "int8"]) == (
        "Unknown method 'awk'. Did you mean 'awq'? Available: awq, int8, rtn"
    )
    assert unknown_choice_message("method", "zz", ["rtn"]) == "Unknown method 'zz'. Available: rtn"
