"""QG205: a throughput-bound spec picks a format with fast kernels on its target."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity
from gate.spec.models import ConstraintKind


class ThroughputKernels(Rule):
    id = "QG205"
    slug = "constraint.throughput-fast-kernels"
    severity = Severity.warn
    summary = "A throughput-bound spec should choose a format with fast kernels on its target."
    why = (
        "When the bottleneck is requests per GPU, the format is chosen for its kernels (often INT8 or FP8\n"
        "rather than aggressive 4-bit). A format that is dequantized on the fly can be slower than FP16,\n"
        "which defeats the constraint the spec names."
    )
    example = (
        "constraint:\n  kind: throughput\n  target: {hardware: nvidia-l4, tokens_per_s: 2000}\n"
        "quantization: {method: rtn, bits: 4, format: rtn}\n"
    )
    use_instead = (
        "constraint:\n  kind: throughput\n  target: {hardware: nvidia-l4, tokens_per_s: 2000}\n"
        "quantization: {method: int8, bits: 8, format: int8-weight-only}\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        spec = facts.loaded.spec
        if spec.quantization is None or spec.constraint is None or spec.constraint.kind is not ConstraintKind.throughput:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware)
        fmt = spec.quantization.format
        if hardware is None or hardware.has_fast_kernels(fmt):
            return
        yield Violation(
            f"quantization.format: the spec is throughput-bound but {fmt} has no fast kernels on {hardware.name}; "
            f"fast there: {', '.join(hardware.fast_formats) or 'none'}",
            key_path=("quantization", "format"),
            hint="choose a format with fast kernels on the target (INT8 or FP8 often beats 4-bit on throughput)",
        )
