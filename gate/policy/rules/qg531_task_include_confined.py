"""QG531: a task's `include:` stays inside the repository's task directory."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.task_findings import task_violations


class TaskIncludeConfined(Rule):
    id = "QG531"
    slug = "task.include-confined"
    stage = "tasks"
    waivable = False
    summary = "`include:` in a task names a file inside the repository's `tasks/`, without cycles, at most 8 levels deep."
    why = (
        "lm-eval follows `include:` to any path and loads the included file with its own loader, which\n"
        "honours `!function`: a task that looks clean can pull code in through a `.yml` file the gate\n"
        "never read, or through a file outside the repository. The gate resolves includes itself,\n"
        "checks every included file like the task, and hands lm-eval the merged task."
    )
    example = "task: evil\ninclude: /work/repo/tasks/evil_inc.yml\n"
    use_instead = "task: support_qa\ninclude: _common.yaml   # tasks/_common.yaml\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        yield from task_violations(facts, self.id)
