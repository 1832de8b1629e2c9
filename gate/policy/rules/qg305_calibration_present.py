"""QG305: the calibration file exists in the repository."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.qg307_no_placeholders import is_placeholder


class CalibrationPresent(Rule):
    id = "QG305"
    slug = "calibration.file-present"
    stage = "calibration"
    summary = "`calibration.source` names a file that exists inside the repository."
    why = (
        "The quantizer reads the calibration file on the GPU runner. A path that does not exist (a typo,\n"
        "a file that was never committed, one ignored by git) is otherwise found only there, after the\n"
        "runner was booked and the baseline downloaded; `gate check` sees it in milliseconds."
    )
    example = "calibration:\n  source: data/calibration/suport.jsonl   # typo; the file is support.jsonl\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        cal = facts.calibration
        if cal is None or not cal.confined or is_placeholder(cal.source):
            return  # QG509 reports an escaping path, QG307 a placeholder
        if not cal.exists:
            yield Violation(
                f"calibration.source: {cal.source} does not exist",
                key_path=("calibration", "source"),
                hint="commit the calibration file, or fix the path (relative to the repository root)",
            )
        elif not cal.is_file:
            yield Violation(
                f"calibration.source: {cal.source} is not a file",
                key_path=("calibration", "source"),
                hint="point calibration.source at one JSONL or text file, not a directory",
            )
        elif cal.read_error is not None:
            yield Violation(
                f"calibration.source: {cal.source} cannot be read: {cal.read_error}",
                key_path=("calibration", "source"),
                hint="make the file readable by the gate",
            )
