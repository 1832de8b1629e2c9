"""QG532: repository tasks carry no code: no `!function`, `class:`, `process_*`, Python files or dataset scripts."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.task_findings import task_violations


class TaskNoCode(Rule):
    id = "QG532"
    slug = "task.no-code"
    stage = "tasks"
    waivable = False
    summary = ("Repository tasks run no code: no `!function`, `class:` or `process_*` hooks, no `*.py` in `tasks/`, "
               "no dataset or metric scripts (`trust_remote_code`, `hf_evaluate`, a path as `metric`).")
    why = (
        "lm-eval imports the Python a task names (`!function utils.process_docs`, `class:`) and runs it\n"
        "while it builds the evaluation design, before any model loads, on the self-hosted GPU runner.\n"
        "A task from a pull request is as untrusted as the PR itself, so it may only be data: plain\n"
        "fields, lm-eval's registered filters and metrics, local data files. Code-bearing tasks are\n"
        "vouched for by shipping them with the gate release the base branch pins; no waiver applies."
    )
    example = "task: support_qa\nprocess_docs: !function utils.process_docs\n"
    use_instead = "task: support_qa\n# preprocess the data file instead; use built-in filters\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        yield from task_violations(facts, self.id)
