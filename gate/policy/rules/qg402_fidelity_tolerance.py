"""QG402: every measured signal has a declared tolerance (fidelity included)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class FidelityTolerance(Rule):
    id = "QG402"
    slug = "quality.tolerance-declared"
    summary = "Every evaluated signal has a tolerance: a `quality.fidelity` section names max_kl and/or max_flip_rate."
    why = (
        "A measurement without a tolerance decided in advance invites judging by gut feel after the fact.\n"
        "Fidelity (KL divergence, top-1 flips) catches answers that flip while accuracy holds, but only\n"
        "if the spec says how much is acceptable."
    )
    example = "quality:\n  fidelity: {tokens: 4096}\n"
    use_instead = "quality:\n  fidelity: {tokens: 4096, max_kl: 0.05, max_flip_rate: 0.10}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        quality = facts.loaded.spec.quality
        if quality is None or quality.fidelity is None:
            return
        fidelity = quality.fidelity
        if fidelity.max_kl is None and fidelity.max_flip_rate is None:
            yield Violation(
                "quality.fidelity: measured without a tolerance; set `max_kl` and/or `max_flip_rate`",
                key_path=("quality", "fidelity"),
                hint="add e.g. `max_kl: 0.05, max_flip_rate: 0.10`, or remove the fidelity section",
            )
