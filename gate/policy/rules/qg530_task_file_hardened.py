"""QG530: task files are read like specs: small, plain YAML, regular files inside tasks/."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.policy.rules.task_findings import task_violations


class TaskFileHardened(Rule):
    id = "QG530"
    slug = "task.file-hardened"
    stage = "tasks"
    waivable = False
    summary = ("Every file in the repository's `tasks/` is a small, plain YAML regular file inside it, and no task "
               "takes a shipped suite's name.")
    why = (
        "Task YAMLs come from the pull request and are read on every PR's plan job and on the GPU\n"
        "runner. A task file symlinked to `/dev/zero` or a FIFO, an alias bomb or hostile nesting would\n"
        "exhaust memory or hang the job; a symlink to a file outside the repository would be read.\n"
        "The gate reads task files through the same hardened loader as specs (size, node, depth,\n"
        "anchor, alias and tag limits; regular files only) and refuses what it refuses. A repository\n"
        "task named like a shipped suite (`qg_reasoning`) would silently replace a stress suite."
    )
    example = "# tasks/zzz.yaml -> /dev/zero (a committed symlink)\n# tasks/easy.yaml:\ntask: qg_reasoning\n"
    use_instead = "# tasks/support_qa.yaml, a regular file:\ntask: support_qa\ndataset_path: json\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        yield from task_violations(facts, self.id)
