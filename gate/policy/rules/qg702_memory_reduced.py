"""QG702: a memory-bound spec's quantized model does not use more memory than its baseline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity

GB = 1e9


def measured_on_target(facts: Facts) -> bool:
    """Whether ``gate run`` measured on the target's kind of device (ratios off-target say little)."""
    perf, constraint = facts.performance, facts.loaded.spec.constraint
    if perf is None or constraint is None:
        return False
    if perf.quantized.fallback is not None:
        return False  # dequantized figures are not the serving numbers (the criteria say so)
    hardware = facts.catalog.find(constraint.target.hardware)
    device_kind = "gpu" if perf.quantized.device.startswith("cuda") else "cpu"
    return hardware is None or hardware.kind == device_kind


class MemoryNoise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_ratio: float = Field(default=1.02, ge=1.0)
    """Quantized / baseline peak memory above which it "went up" (2%: CPU RSS sampling noise)."""


class MemoryReduced(Rule):
    id = "QG702"
    slug = "constraint.memory-reduced"
    severity = Severity.warn
    stage = "performance"
    params = MemoryNoise
    summary = "A memory-bound spec's quantized model peaks at no more memory than its baseline (measured by `gate run`)."
    why = (
        "A memory-bound spec quantizes to save memory. When the measured peak goes up (on CPU,\n"
        "weight-only kernels can dequantize into full-precision buffers; a kept full-precision head\n"
        "can outweigh what 8 bits saved), the quantization defeats its own constraint even though\n"
        "it fits the target's budget today. The gate warns with both numbers; a policy can set\n"
        "`severity: deny`. Judged only when measured on the target's kind of device; a rise within\n"
        "`max_ratio` (default 2%, the noise of sampled RSS) is not counted."
    )
    example = ("constraint: {kind: memory, target: {hardware: cpu-x86-avx2, memory_gb: 4}}\n"
               "# gate run: peak memory 1.29 GB (baseline) -> 1.51 GB (quantized)\n")
    use_instead = ("# a format whose kernels keep the weights compressed on the target, or constraint.kind: throughput\n"
                   "# if speed is the goal; gate run: peak memory 1.29 GB -> 0.74 GB\n")

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        perf = facts.performance
        if perf is None or perf.constraint != "memory" or not measured_on_target(facts):
            return
        base, quant = perf.baseline.peak_memory_bytes, perf.quantized.peak_memory_bytes
        assert isinstance(params, MemoryNoise)
        if not base or quant <= base * params.max_ratio:
            return
        yield Violation(
            f"constraint.kind: memory-bound, but the quantized model's peak memory went up: {base / GB:.2f} GB -> "
            f"{quant / GB:.2f} GB ({quant / base:.2f}x, {perf.quantized.memory_kind} on {perf.quantized.device})",
            key_path=("constraint", "kind"),
            hint="this quantization does not save memory here: choose a format with kernels that keep the weights "
                 "compressed on the target, or state the real constraint",
            detail={"baseline_gb": round(base / GB, 4), "quantized_gb": round(quant / GB, 4),
                    "ratio": round(quant / base, 4)},
        )
