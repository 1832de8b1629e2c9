"""The orchestrator's shared parts: the one stage recorder, the one exit-code function, and
``gate check`` as the static stages plus their result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gate.errors import BackendError, ExitCode, GateError, InputError
from gate.pipeline import StageRecorder, StaticOptions, check_gate, exit_code, worst_exit_code
from gate.result import Decision, StageRecord, StageStatus, Verdict

INVALID = Path(__file__).resolve().parent / "spec" / "invalid"


def test_recorder_records_ok_cached_skipped_and_failed_stages() -> None:
    said: list[str] = []
    stages = StageRecorder(say=said.append)
    assert stages.run("quantize", lambda: 7, cache_hit=lambda v: v == 7, message=lambda v: f"value {v}") == 7
    assert stages.run("plan", lambda: None, skipped=lambda v: "weights not available locally" if v is None else None) is None

    def broken() -> int:
        raise BackendError("quantizer crashed", hint="read the log")

    with pytest.raises(BackendError):
        stages.run("evaluate-quantized", broken)
    stages.skip(("verdict",), "a stage failed")

    records = [r.model_copy(update={"seconds": 0.0}) for r in stages.records]
    assert records == [
        StageRecord(stage="quantize", status=StageStatus.ok, cache_hit=True, message="value 7"),
        StageRecord(stage="plan", status=StageStatus.skipped, message="weights not available locally"),
        StageRecord(stage="evaluate-quantized", status=StageStatus.failed, message="quantizer crashed"),
        StageRecord(stage="verdict", status=StageStatus.skipped, message="a stage failed"),
    ]
    assert said[0].startswith("quantize: done in ") and said[0].endswith(" s (cached)")
    assert len(said) == 1  # a skipped or failed stage is not "done"
    assert all(r.seconds >= 0 for r in stages.records)


@pytest.mark.parametrize(("decision", "inconclusive", "error", "code"), [
    (Decision.passed, "block", None, ExitCode.OK),
    (Decision.failed, "allow", None, ExitCode.BLOCKED),
    (Decision.inconclusive, "block", None, ExitCode.BLOCKED),
    (Decision.inconclusive, "allow", None, ExitCode.OK),
    (Decision.error, "allow", InputError("bad flag"), ExitCode.BAD_INPUT),
    (Decision.error, "block", BackendError("quantizer crashed"), ExitCode.BLOCKED),
    (Decision.error, "block", GateError("a bug"), ExitCode.UNEXPECTED),
    (Decision.error, "block", None, ExitCode.UNEXPECTED),  # a metric whose evaluation failed
])
def test_one_exit_code_for_every_verdict(decision: Decision, inconclusive: str, error: GateError | None,
                                         code: ExitCode) -> None:
    assert exit_code(Verdict(decision=decision), inconclusive, error=error) is code  # type: ignore[arg-type]


def test_worst_exit_code_of_several_specs() -> None:
    assert worst_exit_code([]) == 0
    assert worst_exit_code([0, 1, 2]) == 2
    assert worst_exit_code(iter([1, 3, 0])) == 3
    assert worst_exit_code([0, 130]) == 130


def test_check_gate_of_a_spec_that_does_not_load(tmp_path: Path) -> None:
    spec = tmp_path / "bad_api_version.yaml"
    shutil.copy(INVALID / "bad_api_version.yaml", spec)
    result = check_gate(spec, StaticOptions(repo_root=tmp_path))
    assert result.verdict.decision is Decision.error
    assert result.exit_code == ExitCode.BAD_INPUT
    assert [(s.stage, s.status) for s in result.stages] == [("spec", StageStatus.failed)]
    assert result.stages[0].message == "apiVersion: 'quant-gate/v2' is not supported"
    assert [(f.rule_id, str(f.location)) for f in result.findings] == [("QG000", f"{spec}:1:1")]
    assert result.model_dump(mode="json")["stages"][0]["status"] == "failed"  # the JSON value is unchanged
