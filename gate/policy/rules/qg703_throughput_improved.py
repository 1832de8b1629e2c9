"""QG703: a throughput- or cost-bound spec's quantized model is not slower than its baseline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.qg702_memory_reduced import measured_on_target
from gate.result import Severity


class SpeedNoise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_ratio: float = Field(default=0.97, gt=0.0, le=1.0)
    """Quantized / baseline tokens/s below which it is "slower" (3%: timing noise on a shared machine)."""


class ThroughputImproved(Rule):
    id = "QG703"
    slug = "constraint.throughput-improved"
    severity = Severity.warn
    stage = "performance"
    params = SpeedNoise
    summary = ("A throughput- or cost-bound spec's quantized model generates at least as many tokens/s as its "
               "baseline (measured by `gate run`).")
    why = (
        "A throughput-bound spec quantizes to serve more tokens per second per device; a cost-bound\n"
        "one to serve them cheaper, which is the same thing per device-hour. A quantized model that\n"
        "is slower than its baseline (no fast kernel for the format on this hardware, dequantize on\n"
        "every step) defeats the constraint even when every quality metric passes. The gate warns\n"
        "with both numbers; a policy can set `severity: deny`. Judged only when measured on the\n"
        "target's kind of device; a slowdown within `min_ratio` (default 3%, timing noise) is not counted."
    )
    example = ("constraint: {kind: throughput, target: {hardware: cpu-x86-avx2, batch: 1}}\n"
               "# gate run: 41.0 -> 16.8 tokens/s at batch 1 (0.41x)\n")
    use_instead = ("# a format with fast kernels on the target (e.g. int8 on GPUs with int8 tensor cores)\n"
                   "# gate run: 41.0 -> 63.5 tokens/s at batch 1 (1.55x)\n")

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        perf = facts.performance
        if perf is None or perf.constraint not in ("throughput", "cost") or not measured_on_target(facts):
            return
        constraint = facts.loaded.spec.constraint
        batch = str(constraint.target.batch) if constraint is not None else "1"
        if batch not in perf.speedup:
            batch = next(iter(perf.speedup), batch)
        speedup = perf.speedup.get(batch)
        assert isinstance(params, SpeedNoise)
        if speedup is None or speedup >= params.min_ratio:
            return
        base, quant = perf.baseline.tokens_per_s[batch], perf.quantized.tokens_per_s[batch]
        yield Violation(
            f"constraint.kind: {perf.constraint}-bound, but the quantized model is slower: {base:.1f} -> {quant:.1f} "
            f"tokens/s at batch {batch} ({speedup:.2f}x on {perf.quantized.device})",
            key_path=("constraint", "kind"),
            hint="this format has no fast kernel here: choose one with kernels on the target (`gate explain QG205`), "
                 "or state the real constraint",
            detail={"batch": int(batch), "baseline_tokens_per_s": round(base, 3), "quantized_tokens_per_s": round(quant, 3),
                    "speedup": round(speedup, 4)},
        )
