"""Bad policy input: exact messages at file:line:col, exit 2 from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import MultiSpecError, SpecError
from tests.policy.helpers import HEADER, policy_set, write_policies


def _error(tmp_path: Path, body: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        policy_set(tmp_path, org=body)
    return err.value


def _where(tmp_path: Path, line: int, col: int) -> str:
    return f"{tmp_path / 'org.yaml'}:{line}:{col}"


def test_unknown_rule_id_with_did_you_mean(tmp_path: Path) -> None:
    err = _error(tmp_path, "rules:\n  - {rule: QG2O3, severity: warn}\n")
    assert str(err) == (
        f"{_where(tmp_path, 5, 6)}: rules[0].rule: unknown rule 'QG2O3'; did you mean 'QG203'?\n"
        "  Hint: `gate policy rules` lists every rule id"
    )


def test_unknown_rule_in_a_waiver(tmp_path: Path) -> None:
    err = _error(tmp_path, "waivers:\n  - {rule: QG9999, models: [x], reason: r, owner: o, expires: 2027-01-01}\n")
    assert err.message == "waivers[0].rule: unknown rule 'QG9999'"
    assert str(err.location) == _where(tmp_path, 5, 6)


def test_unknown_parameter(tmp_path: Path) -> None:
    err = _error(tmp_path, "rules:\n  - rule: QG301\n    params: {min_sample: 100}\n")
    assert err.message == "rules[0].params.min_sample: unknown parameter of QG301; did you mean 'min_samples'?"
    assert err.hint == "parameters of QG301: min_samples, max_samples"
    assert str(err.location) == _where(tmp_path, 6, 14)


def test_bad_parameter_value(tmp_path: Path) -> None:
    err = _error(tmp_path, "rules:\n  - rule: QG301\n    params: {min_samples: 600}\n")
    assert err.message == "rules[0].params: min_samples (600) is above max_samples (512)"


def test_mandatory_rule_cannot_be_disabled(tmp_path: Path) -> None:
    err = _error(tmp_path, "rules:\n  - {rule: QG101, enabled: false}\n")
    assert str(err) == (
        f"{_where(tmp_path, 5, 19)}: rules[0].enabled: QG101 (scale.constraint-declared) is mandatory; it cannot be "
        "disabled, downgraded to warn or put in audit mode\n  Hint: remove this setting; only its parameters can be tuned"
    )


@pytest.mark.parametrize(
    ("value", "message", "col"),
    [
        ("2026-13-45", "'2026-13-45' is not a valid date", 62),
        ("next-week", "waivers[0].expires: expected a date (YYYY-MM-DD), got a string 'next-week'", 53),
    ],
)
def test_malformed_dates(tmp_path: Path, value: str, message: str, col: int) -> None:
    err = _error(tmp_path, f"waivers:\n  - {{rule: QG203, models: [x], reason: r, owner: o, expires: {value}}}\n")
    assert err.message == message
    assert str(err.location) == _where(tmp_path, 5, col)


@pytest.mark.parametrize("missing", ["reason", "owner", "expires"])
def test_waiver_needs_reason_owner_expiry(tmp_path: Path, missing: str) -> None:
    fields = {"rule": "QG203", "models": "[x]", "reason": "r", "owner": "o", "expires": "2027-01-01"}
    del fields[missing]
    body = "waivers:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in fields.items()) + "\n"
    err = _error(tmp_path, body)
    assert str(err).startswith(
        f"{_where(tmp_path, 5, 5)}: waivers[0].{missing}: required key is missing\n"
        f"  Hint: add `{missing}` under `waivers[0]`"
    )


def test_empty_reason(tmp_path: Path) -> None:
    err = _error(tmp_path, "waivers:\n  - {rule: QG203, models: [x], reason: '', owner: o, expires: 2027-01-01}\n")
    assert err.message == "waivers[0].reason: must not be empty: a waiver states why, and who answers for it"


def test_several_problems_reported_together(tmp_path: Path) -> None:
    with pytest.raises(MultiSpecError) as err:
        policy_set(tmp_path, org="rules:\n  - {rule: QG203, severity: block, mode: strict}\n")
    assert [e.message for e in err.value.errors] == [
        "rules[0].severity: 'block' is not allowed",
        "rules[0].mode: 'strict' is not allowed",
    ]


def test_custom_rule_ids(tmp_path: Path) -> None:
    err = _error(tmp_path, "custom_rules:\n  - {id: QG900, expression: 'true', message: m}\n")
    assert err.message == (
        "custom_rules[0].id: 'QG900': ids starting with QG are reserved for built-in rules; use e.g. ORG001"
    )
    dup = _error(tmp_path / "dup", "custom_rules:\n  - {id: ORG1, expression: 'true', message: m}\n"
                 "  - {id: ORG1, expression: 'true', message: m}\n")
    assert dup.message == f"custom_rules[1].id: ORG1 is already defined at {tmp_path / 'dup' / 'org.yaml'}:5:6"


def test_bad_hardware_entry(tmp_path: Path) -> None:
    err = _error(tmp_path, "hardware:\n  acme-npu: {kind: tpu, vendor: acme, memory_gb: 32}\n")
    assert err.message == "hardware entry 'acme-npu': kind: Input should be 'gpu' or 'cpu'"
    assert str(err.location) == _where(tmp_path, 5, 3)


def test_wrong_document_kind(tmp_path: Path) -> None:
    err = _error(tmp_path, "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata: {name: x}\n")
    assert err.message == "kind: 'ModelSpec' is not allowed"


def test_cli_exits_2_with_the_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policies(tmp_path / "policies", org="rules:\n  - {rule: QG2O3}\n")
    spec = Path(__file__).parent / "base_spec.yaml"
    code = main(["check", str(spec), "--policies", str(tmp_path / "policies"), "--repo-root", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'policies' / 'org.yaml'}:5:6: rules[0].rule: unknown rule 'QG2O3'; did you mean 'QG203'?" in err
    assert HEADER.startswith("apiVersion")
