"""QG401: a quality budget (metrics with tolerances) is declared before measuring."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation


class QualityBudget(Rule):
    id = "QG401"
    slug = "quality.budget-declared"
    summary = "The spec declares at least one evaluated metric with its tolerance, against the full-precision baseline."
    why = (
        "No quantized model ships without passing an evaluation against its baseline; it is the most\n"
        "important standard. Tolerances are decided in advance, by the owner, not under deadline after\n"
        "seeing the numbers."
    )
    example = "quality:\n  confidence: 0.95\n  metrics: []\n"
    use_instead = (
        "quality:\n  confidence: 0.95\n  metrics:\n    - {task: support_qa, metric: acc, max_drop: 1.0}\n"
        "    - {task: local_wikitext, metric: word_perplexity, max_relative_increase: 0.05}\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        quality = facts.loaded.spec.quality
        if quality is None:
            yield Violation(
                "quality: missing; no quality budget is declared, so nothing is evaluated against the baseline",
                key_path=("quality",),
                hint="add `quality.metrics` with a tolerance per metric (e.g. {task: ..., metric: acc, max_drop: 1.0})",
            )
        elif not quality.metrics:
            yield Violation(
                "quality.metrics: empty; declare at least one metric with its tolerance",
                key_path=("quality", "metrics"),
                hint="add e.g. `- {task: ..., metric: acc, max_drop: 1.0}`",
            )
