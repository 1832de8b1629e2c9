"""QG104: SCALE stage 3 — calibration data is assembled."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class CalibrationDeclared(Rule):
    id = "QG104"
    slug = "scale.calibration-declared"
    waivable = False
    summary = "The spec names its calibration set: source, sample count and sequence length (SCALE stage 3)."
    why = (
        "Calibration quality often moves accuracy more than the choice of method, and it is the stage\n"
        "most often skipped. Even methods that do not calibrate (RTN, INT8) record the set used to\n"
        "check them, so a re-run is reproducible. Denied whatever the tier."
    )
    example = "quantization: {method: awq, bits: 4, format: awq-gemm}\n# no calibration section\n"
    use_instead = (
        "calibration:\n  source: data/calibration/support.jsonl\n  sha256: \"<64 hex>\"\n"
        "  samples: 256\n  max_seq_len: 512\n  collected: 2026-10-01\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        if facts.loaded.spec.calibration is None:
            yield Violation(
                "calibration: missing; SCALE stage 3 (assemble calibration) is skipped",
                key_path=("calibration",),
                hint="add `calibration:` with `source`, `sha256`, `samples` (128-512) and `max_seq_len`",
            )
