"""QG209: the serving runtime computes the quantized format in its stored precision, not dequantized."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity


class ServingDequantized(Rule):
    id = "QG209"
    slug = "serving.dequantized"
    severity = Severity.warn
    summary = ("The serving runtime keeps the quantized weights in their format on the target hardware "
               "instead of dequantizing them on load (e.g. transformers + AWQ on CPU).")
    why = (
        "A runtime without kernels for a format on the target dequantizes the weights on load\n"
        "(transformers: autoawq int4 on CPU to float32, GGUF, compressed-tensors, gate-rtn). Accuracy is\n"
        "still that of the quantized weights, but memory and speed are the dequantized model's: a 4-bit\n"
        "artifact peaks at fp32 memory, so the spec's memory, throughput and cost criteria would judge\n"
        "numbers no serving system has. `gate run` detects it from the loaded model and does not judge\n"
        "those criteria (it blocks the spec's own constraint kind when `serving.runtime` is declared);\n"
        "this rule says so before a run. Serve the format where its kernels run, or choose a format the\n"
        "runtime keeps quantized (int8 via torchao stays int8 in transformers)."
    )
    example = ("constraint:\n  kind: memory\n  target: {hardware: cpu-x86-avx2}\n"
               "quantization:\n  method: awq\n  bits: 4\n  format: awq-gemm\nserving: {runtime: transformers}\n")
    use_instead = ("constraint:\n  kind: memory\n  target: {hardware: cpu-x86-avx2}\n"
                   "quantization:\n  method: gguf\n  bits: 4\n  group_size: -1\n  format: gguf-q4_k_m   "
                   "# served by llama-cpp (the default for GGUF)\n")

    def check(self, facts: Facts, _params: BaseModel) -> Iterator[Violation]:
        from gate.serve import DESCRIPTORS, default_runtime, format_family

        spec = facts.loaded.spec
        if spec.quantization is None or spec.constraint is None:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware)
        if hardware is None:
            return
        fmt = spec.quantization.format
        family = format_family(fmt)
        declared = spec.serving is not None
        name = spec.serving.runtime if spec.serving else default_runtime(hardware.kind, fmt, family)
        group = DESCRIPTORS[name].dequantized(fmt, family, hardware.kind)
        if group is None:
            return
        how = "" if declared else f" (the default runtime for {fmt} on {hardware.kind})"
        kind = spec.constraint.kind.value
        outcome = (f"the {kind}-bound constraint blocks, since serving.runtime is declared" if declared
                   else "the memory, throughput and cost criteria are not judged")
        able = [d.name for d in DESCRIPTORS.values() if d.name != name and d.serving(fmt, family, hardware.kind)
                is not None and d.dequantized(fmt, family, hardware.kind) is None]
        yield Violation(
            f"serving.runtime: {name}{how} serves {fmt} on {hardware.kind} targets ({hardware.name}) only dequantized "
            f"({group.note}): memory and speed will be measured on the dequantized model, not in serving precision, "
            f"so {outcome}",
            key_path=("serving", "runtime") if declared else ("quantization", "format"),
            hint=(f"serve {fmt} on {hardware.kind} with serving.runtime: {' or '.join(able)}" if able else
                  f"no runtime keeps {fmt} quantized on {hardware.kind}: choose a format with kernels on "
                  f"{hardware.name} (its catalog kernels: {', '.join(hardware.fast_formats) or 'none'})"))
