"""QG103: SCALE stage 2 — precision and format are chosen."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class PrecisionDeclared(Rule):
    id = "QG103"
    slug = "scale.precision-declared"
    waivable = False
    summary = "The spec chooses a quantization method, bit width and serialized format (SCALE stage 2)."
    why = (
        "Precision and format are picked backward from the deployment named in stage 1; without them\n"
        "there is nothing to quantize, check kernels for or evaluate. Denied whatever the tier."
    )
    example = "constraint: {...}\ncalibration: {...}\n# no quantization section\n"
    use_instead = "quantization:\n  method: awq\n  bits: 4\n  group_size: 128\n  format: awq-gemm\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        if facts.loaded.spec.quantization is None:
            yield Violation(
                "quantization: missing; SCALE stage 2 (choose precision and format) is skipped",
                key_path=("quantization",),
                hint="add `quantization:` with `method`, `bits` and `format` (e.g. awq, 4, awq-gemm)",
            )
