"""QG101: SCALE stage 1 — the constraint is named in one sentence."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation

_SENTENCE_END = re.compile(r"[.!?]+(?:\s+(?=[A-Z])|\s*$)")


def count_sentences(text: str) -> int:
    """Sentences in ``text`` (a sentence ends at . ! or ? before a capital letter or the end; 8.5 and "e.g. a" do not end one)."""
    return len([part for part in _SENTENCE_END.split(text.strip()) if part.strip()])


class ConstraintDeclared(Rule):
    id = "QG101"
    slug = "scale.constraint-declared"
    waivable = False
    summary = "The spec names its bottleneck (memory, throughput or cost) in one sentence (SCALE stage 1)."
    why = (
        "Every later choice follows from the constraint: memory pushes toward lower bits, throughput toward\n"
        "formats with fast kernels, a quality-sensitive job toward gentle INT8. A spec that skips it cannot\n"
        "be reviewed, so it is denied whatever its tier, and no waiver can silence it."
    )
    example = "constraint:\n  kind: memory\n  statement: \"\"\n  target: {hardware: nvidia-l4}\n"
    use_instead = (
        "constraint:\n  kind: memory\n  statement: \"Must fit one 24 GB L4 with 8k context at batch 4.\"\n"
        "  target: {hardware: nvidia-l4, memory_gb: 24, context: 8192, batch: 4}\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        constraint = facts.loaded.spec.constraint
        if constraint is None:
            yield Violation(
                "constraint: missing; SCALE stage 1 (set the constraint) is skipped",
                key_path=("constraint",),
                hint="add `constraint:` with `kind` (memory | throughput | cost), a one-sentence `statement` and a `target`",
            )
            return
        sentences = count_sentences(constraint.statement)
        if sentences == 0:
            yield Violation(
                "constraint.statement: empty; name the bottleneck in one sentence",
                key_path=("constraint", "statement"),
                hint='e.g. statement: "Must fit one 24 GB L4 with 8k context at batch 4."',
            )
        elif sentences > 1:
            yield Violation(
                f"constraint.statement: {sentences} sentences; name the bottleneck in one sentence",
                key_path=("constraint", "statement"),
                hint="keep the one sentence that names the bottleneck; move background to the PR description",
            )
