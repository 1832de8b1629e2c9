"""QG204: a portable CPU format (GGUF, RTN) on a GPU serving target warns."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.qg203_format_kernels import PortableParams, portable
from gate.result import Severity


class PortableOnGpu(Rule):
    id = "QG204"
    slug = "format.portable-on-gpu"
    severity = Severity.warn
    summary = "GGUF or RTN on a GPU serving target without fast kernels for them is a warning."
    why = (
        "GGUF is built for CPU and consumer runtimes (llama.cpp), RTN is a correctness reference; on a\n"
        "datacenter GPU both leave the fast AWQ/GPTQ/INT8 kernels unused, so the model is served slower\n"
        "than it could be."
    )
    example = "constraint:\n  target: {hardware: nvidia-l4}\nquantization:\n  method: rtn\n  bits: 4\n  format: gguf\n"
    use_instead = "constraint:\n  target: {hardware: nvidia-l4}\nquantization:\n  method: awq\n  bits: 4\n  format: awq-gemm\n"
    params = PortableParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, PortableParams)
        spec = facts.loaded.spec
        if spec.quantization is None or spec.constraint is None:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware)
        fmt = spec.quantization.format
        if hardware is None or hardware.kind != "gpu" or not portable(fmt, params.portable_formats):
            return
        if hardware.has_fast_kernels(fmt):
            return
        yield Violation(
            f"quantization.format: {fmt} on GPU serving target {hardware.name} runs without fast kernels; "
            f"formats with kernels there: {', '.join(hardware.fast_formats)}",
            key_path=("quantization", "format"),
            hint="serve with a GPU format (awq-gemm, gptq, int8-weight-only), or target CPU hardware",
        )
