"""QG534: a task's `data_files` stay inside the repository."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.task_findings import task_violations


class TaskDataConfined(Rule):
    id = "QG534"
    slug = "task.data-confined"
    stage = "tasks"
    waivable = False
    summary = "`dataset_kwargs.data_files` of a repository task resolve inside the repository (relative, no `..`, no outside symlinks)."
    why = (
        "Like every path in a spec (QG509), a task's data files come from the pull request: an\n"
        "absolute path, a `..` escape or a committed symlink (`tasks/pw.jsonl -> /etc/passwd`) would\n"
        "make the runner read, and possibly echo into logs and reports, files that are not the\n"
        "repository's. Such paths are reported and never read; no waiver applies."
    )
    example = "task: support_qa\ndataset_kwargs:\n  data_files: {test: /etc/passwd}\n"
    use_instead = "task: support_qa\ndataset_kwargs:\n  data_files: {test: data/support_qa.jsonl}\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        yield from task_violations(facts, self.id)
