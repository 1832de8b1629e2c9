"""QG201: below 4 bits only with a quality budget and a quantization-aware training plan."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class Below4Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_bits_without_qat: int = Field(default=4, ge=1, le=16, description="Lowest bit width allowed without a QAT plan.")


class BelowFourBits(Rule):
    id = "QG201"
    slug = "precision.below-4-bits"
    summary = "A bit width below 4 needs an explicit quality budget and a quantization-aware training plan."
    why = (
        "Post-training quantization below 4 bits loses quality fast and unevenly across tasks; it is only\n"
        "defensible with a budget agreed in advance and a plan to recover quality with QAT."
    )
    example = "quantization:\n  method: rtn\n  bits: 3\n  format: rtn\n"
    use_instead = (
        "quantization:\n  method: rtn\n  bits: 3\n  format: rtn\n"
        "  qat_plan: \"QAT run qat-2026-12 on the support mix, 2k steps; see docs/qat.md\"\n"
        "quality:\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 2.0}\n"
    )
    params = Below4Params

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, Below4Params)
        q = facts.loaded.spec.quantization
        if q is None or q.bits >= params.min_bits_without_qat:
            return
        if not q.qat_plan:
            yield Violation(
                f"quantization.bits: {q.bits} is below {params.min_bits_without_qat} bits and no `qat_plan` is given",
                key_path=("quantization", "bits"),
                hint=f"add `quantization.qat_plan`, or use bits: {params.min_bits_without_qat} (the sanctioned default)",
            )
        quality = facts.loaded.spec.quality
        if quality is None or not quality.metrics:
            yield Violation(
                f"quantization.bits: {q.bits} is below {params.min_bits_without_qat} bits and no quality budget "
                "(`quality.metrics` with tolerances) is declared",
                key_path=("quantization", "bits"),
                hint="declare the maximum acceptable drop per metric under `quality.metrics` before measuring",
            )
