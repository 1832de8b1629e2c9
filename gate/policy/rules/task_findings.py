"""Shared by QG530-QG534: the task scan's issues of one rule as violations at the task file's line."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from gate.policy.facts import Facts
from gate.policy.rule import Violation


def task_violations(facts: Facts, rule_id: str, vouched: Collection[tuple[str, str]] = ()) -> Iterator[Violation]:
    """Violations of ``rule_id`` from ``facts.tasks``; (path, sha256) pairs in ``vouched`` are skipped."""
    scan = facts.tasks
    if scan is None:
        return
    for issue in scan.issues:
        if issue.rule != rule_id or (issue.path, issue.sha256) in vouched:
            continue
        yield Violation(f"task {issue.task!r}: {issue.message}", hint=issue.hint, path=issue.path,
                        line=issue.line, col=issue.col)
