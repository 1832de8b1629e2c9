"""QG207: the quantization algorithm runs in the backend the platform sanctions for it (legacy autoawq warns)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity


class BackendPin(BaseModel):
    """Which backend (``quantization.method``) must compute one algorithm on one kind of target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str
    """``awq``, ``gptq``, ``smoothquant-gptq``, ``fp8``, ``int8-rtn``, ``llama.cpp``, ... (``gate explain METHOD``
    lists each backend's)."""
    target: Literal["gpu", "cpu", "any"] = "any"
    """A pin for the target's kind wins over an ``any`` pin."""
    backend: str
    """The sanctioned ``quantization.method`` for it."""

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        from gate.quantize.registry import ALGORITHMS

        return _one_of("algorithm", value, ALGORITHMS)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from gate.quantize.registry import DESCRIPTORS

        return _one_of("backend", value, DESCRIPTORS)


def _one_of(what: str, value: str, choices: Collection[str]) -> str:
    from gate.suggest import unknown_choice_message

    if value not in choices:
        raise ValueError(unknown_choice_message(what, value, choices))
    return value


def _default_pins() -> tuple[BackendPin, ...]:
    from gate.quantize.registry import default_pins

    return tuple(BackendPin(algorithm=a, target="any", backend=b) for a, b in default_pins())


class BackendParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pins: tuple[BackendPin, ...] = Field(default_factory=_default_pins)
    """Default: every algorithm pinned to the one maintained backend that computes it, on every target
    (so AWQ runs in llm-compressor, and the legacy autoawq path warns)."""


def pin_for(pins: tuple[BackendPin, ...], algorithm: str, kind: str | None) -> BackendPin | None:
    """The pin deciding ``algorithm`` on a ``kind`` target: the target's own pin, else an ``any`` pin
    (the last one listed wins, so a policy can append an override). Unknown target: ``any`` only."""
    matching = [p for p in pins if p.algorithm == algorithm]
    own = [p for p in matching if kind is not None and p.target == kind]
    anywhere = [p for p in matching if p.target == "any"]
    chosen = own or anywhere
    return chosen[-1] if chosen else None


class SanctionedBackend(Rule):
    id = "QG207"
    slug = "precision.sanctioned-backend"
    severity = Severity.warn
    summary = "Each quantization algorithm runs in the backend policies pin for it (e.g. AWQ in llm-compressor, not autoawq)."
    why = (
        "The same algorithm computed by two libraries gives different weights, bugs and support: autoawq\n"
        "is archived (on CPU it silently corrupts models unless patched), llm-compressor is its maintained\n"
        "successor from the vLLM project. Pinning one backend per algorithm and target keeps artifacts\n"
        "comparable across teams and moves specs off a library nobody fixes. Policies pin other backends\n"
        "(`params.pins`: algorithm, target gpu/cpu/any, backend) or set this rule to deny."
    )
    example = (
        "constraint:\n  target: {hardware: nvidia-l4}\n"
        "quantization:\n  method: awq\n  bits: 4\n  group_size: 128\n  format: awq-gemm\n"
    )
    use_instead = (
        "constraint:\n  target: {hardware: nvidia-l4}\n"
        "quantization:\n  method: llmcompressor\n  bits: 4\n  group_size: 128\n  format: ct-w4a16\n"
        "  options: {algorithm: awq}\n"
    )
    params = BackendParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, BackendParams)
        from gate.quantize.registry import DESCRIPTORS, recipe_text

        spec = facts.loaded.spec
        q = spec.quantization
        descriptor = DESCRIPTORS.get(q.method) if q is not None else None
        if q is None or descriptor is None:
            return  # no quantization, or an unknown method (the spec loader refuses that)
        algorithm = descriptor.algorithm_of(q.format, q.options)
        if algorithm is None:
            return  # a format the backend does not write: the backend's own check names it
        hardware = facts.catalog.find(spec.constraint.target.hardware) if spec.constraint else None
        kind = hardware.kind if hardware is not None else None
        pin = pin_for(params.pins, algorithm, kind)
        if pin is None or pin.backend == q.method:
            return
        where = "every target" if pin.target == "any" else f"{pin.target} targets"
        legacy = " (legacy)" if descriptor.legacy else ""
        yield Violation(
            f"quantization.method: {q.method}{legacy} is not the sanctioned backend for the {algorithm} algorithm "
            f"on {where}: {pin.backend} is",
            key_path=("quantization", "method"),
            hint=f"use method: {pin.backend} with {recipe_text(pin.backend, algorithm, q.bits)}; or pin {q.method} "
                 f"for {algorithm} in a policy (QG207 params.pins)",
        )

