"""QG511: baseline tensors hold no NaN/Inf (only when the value scan is enabled)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class FiniteValues(Rule):
    id = "QG511"
    slug = "weights.finite-values"
    stage = "weights"
    summary = "When values are scanned, no float tensor of the baseline holds NaN or Inf."
    why = (
        "safetensors validates layout, not values. A NaN or Inf in the baseline poisons calibration\n"
        "statistics and every comparison against the baseline. The scan streams each tensor in chunks\n"
        "(no torch, constant memory); it costs one extra read of the weights, so policies enable it."
    )
    example = "# weights/support-assistant/model.safetensors: model.layers.3.mlp.up_proj.weight holds NaN\n"
    use_instead = "# re-export the weights from a healthy checkpoint and re-run `gate lock`\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None or not scan.values_scanned:
            return
        for report in scan.files:
            if report.nonfinite_tensors:
                names = ", ".join(report.nonfinite_tensors[:5]) + (", ..." if len(report.nonfinite_tensors) > 5 else "")
                yield Violation(
                    f"{report.path}: {len(report.nonfinite_tensors)} tensor(s) hold NaN/Inf values: {names}",
                    path=report.path,
                    hint="re-export the weights from a healthy checkpoint",
                    detail={"tensors": report.nonfinite_tensors},
                )
