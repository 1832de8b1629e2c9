"""QG517: a pull request that changes a chat template shows the change (warn by default)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.result import Severity


class ChatTemplateChanged(Rule):
    id = "QG517"
    slug = "weights.chat-template-changed"
    stage = "weights"
    severity = Severity.warn
    summary = "A chat template that differs from the base branch's version is reported with its diff."
    why = (
        "The chat template decides what the model sees on every request: a changed template changes\n"
        "behaviour without touching a weight, and is a place to hide a prompt injection or a sandbox\n"
        "escape. The base version comes from the PR's base commit (`gate check --policies-from`), never\n"
        "from the lockfile, which the same PR rewrites. Warn by default; policies can make it deny."
    )
    example = "# tokenizer_config.json's chat_template differs from the base branch's\n"
    use_instead = "# the same change, reviewed: the finding's diff is in the report (waive or accept the warning)\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report, template in scan.chat_templates():
            if not template.changed:
                continue
            yield Violation(
                f"{report.path}: chat template `{template.name}` ({template.source}) changed against the base branch",
                path=report.path,
                hint="review the diff in this finding's detail; the template runs on every request",
                detail={"source": template.source, "name": template.name, "sha256": template.sha256, "diff": template.diff},
            )
