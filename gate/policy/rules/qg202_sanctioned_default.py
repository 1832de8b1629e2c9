"""QG202: deviations from the sanctioned defaults are declared and justified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class SanctionedChoice(BaseModel):
    """One sanctioned (method, bits) pair and where it applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    bits: int = Field(ge=1, le=16)
    target: Literal["gpu", "cpu", "any"] = "any"
    """Kind of deployment target the default is sanctioned for."""


class SanctionedParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sanctioned: tuple[SanctionedChoice, ...] = (
        SanctionedChoice(method="int8", bits=8, target="any"),
        SanctionedChoice(method="awq", bits=4, target="gpu"),
        SanctionedChoice(method="llmcompressor", bits=4, target="gpu"),  # AWQ/GPTQ W4A16: QG207's AWQ backend
        SanctionedChoice(method="llmcompressor", bits=8, target="any"),  # SmoothQuant+GPTQ W8A8, W8A16
    )


class SanctionedDefault(Rule):
    id = "QG202"
    slug = "precision.sanctioned-default"
    summary = "A method/bit width outside the sanctioned defaults needs a written `justification`."
    why = (
        "Platform teams sanction a few well-understood choices (INT8 for general use, AWQ or GPTQ at 4 bits\n"
        "for GPU serving) so results are comparable and kernels are known. Deviations are allowed, but a\n"
        "reviewer must be able to read why."
    )
    example = "constraint:\n  target: {hardware: nvidia-l4}\nquantization:\n  method: rtn\n  bits: 4\n  format: rtn\n"
    use_instead = (
        "quantization:\n  method: rtn\n  bits: 4\n  format: rtn\n"
        "  justification: \"Reference RTN build to bound AWQ's gain; not for serving.\"\n"
    )
    params = SanctionedParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, SanctionedParams)
        spec = facts.loaded.spec
        q = spec.quantization
        if q is None or q.justification:
            return
        hardware = facts.catalog.find(spec.constraint.target.hardware) if spec.constraint else None
        if hardware is None:
            return  # no usable target (QG101/QG102 deny that): which defaults apply is unknown
        kind = hardware.kind
        for choice in params.sanctioned:
            if choice.method == q.method and choice.bits == q.bits and choice.target in ("any", kind):
                return
        listed = ", ".join(
            f"{c.method} {c.bits}-bit" + ("" if c.target == "any" else f" ({c.target})") for c in params.sanctioned
        )
        yield Violation(
            f"quantization: {q.method} at {q.bits} bits on a {kind} target deviates from the sanctioned defaults "
            f"({listed}) and no `justification` is given",
            key_path=("quantization", "method"),
            hint="add `quantization.justification` explaining the deviation, or use a sanctioned default",
        )
