"""QG303: the calibration sequence length is set."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class CalibrationSeqLen(Rule):
    id = "QG303"
    slug = "calibration.max-seq-len"
    summary = "The calibration set records its maximum sequence length in tokens."
    why = (
        "Activation statistics depend on sequence length; a quantizer's silent default (often 512 or\n"
        "2048) makes two runs on the same file incomparable and may not match production lengths."
    )
    example = "calibration:\n  source: data/calibration/support.jsonl\n  samples: 256\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n  samples: 256\n  max_seq_len: 512\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        cal = facts.loaded.spec.calibration
        if cal is not None and cal.max_seq_len is None:
            yield Violation(
                "calibration.max_seq_len: missing; record the calibration sequence length",
                key_path=("calibration",),
                hint="add `max_seq_len:` (tokens), matching production input lengths",
            )
