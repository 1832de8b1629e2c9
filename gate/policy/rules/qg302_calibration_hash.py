"""QG302: the calibration set's content hash is recorded."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class CalibrationHash(Rule):
    id = "QG302"
    slug = "calibration.hash-recorded"
    summary = "The calibration set's sha256 is recorded in the spec."
    why = (
        "Calibration moves accuracy as much as the method does. Without a content hash, a silently\n"
        "edited or regenerated file changes the result and nobody can tell why; with it, the gate\n"
        "verifies the file before use and the registry can attribute a regression."
    )
    example = "calibration:\n  source: data/calibration/support.jsonl\n  samples: 256\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n  sha256: \"<sha256sum of the file>\"\n  samples: 256\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        cal = facts.loaded.spec.calibration
        if cal is not None and cal.sha256 is None:
            yield Violation(
                "calibration.sha256: missing; the calibration set's content hash must be recorded",
                key_path=("calibration",),
                hint=f"add `sha256:` (run `sha256sum {cal.source}`)",
            )
