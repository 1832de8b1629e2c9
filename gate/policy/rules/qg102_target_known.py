"""QG102: the constraint's target hardware is in the catalog (so kernels and memory can be checked)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.suggest import did_you_mean


class TargetKnown(Rule):
    id = "QG102"
    slug = "scale.target-known"
    summary = "The constraint's target hardware is a known catalog entry (built-in or added by policy)."
    why = (
        "The target decides which formats have kernels and how much memory there is. An unknown name\n"
        "(a typo, or hardware nobody described) means neither can be checked, so the constraint has no\n"
        "usable target."
    )
    example = "constraint:\n  target: {hardware: nvidia-l5}\n"
    use_instead = (
        "constraint:\n  target: {hardware: nvidia-l4}\n"
        "# or describe new hardware in a policy:\n"
        "hardware:\n  acme-npu: {kind: gpu, vendor: acme, memory_gb: 32, fast_formats: [int8-weight-only]}\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        constraint = facts.loaded.spec.constraint
        if constraint is None:
            return
        name = constraint.target.hardware
        if facts.catalog.find(name) is not None:
            return
        guess = did_you_mean(name, facts.catalog.names())
        text = f"constraint.target.hardware: {name!r} is not in the hardware catalog"
        if guess:
            text += f"; did you mean {guess!r}?"
        yield Violation(
            text,
            key_path=("constraint", "target", "hardware"),
            hint="use a catalog name (`gate policy show` lists them), or add the hardware under `hardware:` in a policy",
        )
