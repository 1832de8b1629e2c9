"""QG306: the calibration file matches the sha256 the spec records."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class CalibrationHashMatches(Rule):
    id = "QG306"
    slug = "calibration.hash-matches"
    stage = "calibration"
    summary = "The calibration file's sha256 equals `calibration.sha256`."
    why = (
        "The recorded hash is what reviewers approved. A file edited or regenerated after the spec was\n"
        "reviewed calibrates a different model than the one the PR describes; `gate run` refuses it,\n"
        "but only on the GPU runner. The hash is streamed here, without torch, before any booking."
    )
    example = 'calibration:\n  source: data/calibration/support.jsonl\n  sha256: "5e29aa..."   # of last month\'s file\n'
    use_instead = 'calibration:\n  source: data/calibration/support.jsonl\n  sha256: "<the output of sha256sum data/calibration/support.jsonl>"\n'

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        cal = facts.calibration
        recorded = facts.loaded.spec.calibration.sha256 if facts.loaded.spec.calibration else None
        if cal is None or cal.sha256 is None or recorded is None or recorded.lower() == cal.sha256:
            return  # QG302 asks for a missing hash, QG305 for a missing file
        yield Violation(
            f"calibration.sha256: {cal.source} has sha256 {cal.sha256}, the spec records {recorded}",
            key_path=("calibration", "sha256"),
            hint="the calibration data changed; review the change, then update calibration.sha256",
        )
