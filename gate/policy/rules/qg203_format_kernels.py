"""QG203: the format has kernels on the deployment target."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class PortableParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    portable_formats: tuple[str, ...] = ("gguf", "rtn")
    """Formats that run anywhere (llama.cpp, dequantize + matmul), if not always fast; a family
    name (``gguf``) covers each of its formats (``gguf-q4_k_m``)."""


def portable(fmt: str, formats: tuple[str, ...]) -> bool:
    """Is ``fmt``, or its kernel family, one of the portable ``formats``?"""
    from gate.plan.kernels import kernel_names

    return any(name in formats for name in kernel_names(fmt))


class FormatKernels(Rule):
    id = "QG203"
    slug = "format.kernels-on-target"
    summary = "The quantized format has kernels on the target hardware (e.g. AWQ on a CPU target is denied)."
    why = (
        "A format without kernels on the target either does not run or is dequantized on the fly and\n"
        "runs slower than FP16. AWQ and GPTQ kernels exist for NVIDIA GPUs only; FP8 needs Ada/Hopper.\n"
        "The format x hardware table is the hardware catalog (`fast_formats`), which policies extend."
    )
    example = "constraint:\n  target: {hardware: cpu-x86-avx2}\nquantization:\n  method: awq\n  bits: 4\n  format: awq-gemm\n"
    use_instead = "constraint:\n  target: {hardware: cpu-x86-avx2}\nquantization:\n  method: int8\n  bits: 8\n  format: int8-weight-only\n"
    params = PortableParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, PortableParams)
        spec = facts.loaded.spec
        if spec.quantization is None or spec.constraint is None:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware)
        fmt = spec.quantization.format
        if hardware is None or hardware.has_fast_kernels(fmt) or portable(fmt, params.portable_formats):
            return
        yield Violation(
            f"quantization.format: {fmt} has no kernels on {hardware.name} ({hardware.kind}); "
            f"formats with kernels there: {', '.join(hardware.fast_formats) or 'none'}",
            key_path=("quantization", "format"),
            hint="pick a format with kernels on the target, or change the target hardware",
        )
