"""The summary line: ``12 checks, 9 passed, 1 warning, 1 failure, 1 waived (1 expiring within 14 days)``.

A check is one rule (built-in or custom) or waiver judged on one spec. It failed when any of its
findings blocks, warned when its findings are all non-blocking (warn severity or audit mode) and
at least one is not waived, was waived when every finding is waived, and passed otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from gate.result import Finding

EXPIRING_DAYS = 14


@dataclass(frozen=True)
class SummaryCounts:
    checks: int
    passed: int
    warnings: int
    failures: int
    waived: int
    expiring: int
    """Waived checks whose waiver expires within ``EXPIRING_DAYS`` days."""

    def line(self) -> str:
        text = (
            f"{_n(self.checks, 'check')}, {self.passed} passed, {_n(self.warnings, 'warning')}, "
            f"{_n(self.failures, 'failure')}, {self.waived} waived"
        )
        if self.expiring:
            text += f" ({self.expiring} expiring within {EXPIRING_DAYS} days)"
        return text


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _check_key(f: Finding, spec: str) -> tuple[str, ...]:
    """Findings of one check share a key: spec, rule id, and for waiver checks the waiver itself."""
    extra = str(f.detail.get("waived_rule", "")) if f.rule_id.startswith("QG00") else ""
    where = f"{f.location.path}:{f.location.line}" if f.rule_id.startswith("QG00") and f.location else ""
    return (spec, f.rule_id, extra, where)


def count(per_spec: Iterable[tuple[str, list[Finding], int]], today: dt.date | None = None) -> SummaryCounts:
    """Counts over specs, each given as ``(spec id, findings, checks run)``."""
    today = today or dt.date.today()
    checks = failures = warnings = waived = expiring = 0
    for spec, findings, ran in per_spec:
        groups: dict[tuple[str, ...], list[Finding]] = {}
        for f in findings:
            groups.setdefault(_check_key(f, spec), []).append(f)
        checks += max(ran, len(groups))
        for group in groups.values():
            if any(f.blocking for f in group):
                failures += 1
            elif all(f.waived for f in group):
                waived += 1
                soon = today + dt.timedelta(days=EXPIRING_DAYS)
                if any(f.waiver and dt.date.fromisoformat(f.waiver.expires) <= soon for f in group):
                    expiring += 1
            else:
                warnings += 1
    passed = max(checks - failures - warnings - waived, 0)
    return SummaryCounts(checks, passed, warnings, failures, waived, expiring)


def summary_line(findings: list[Finding], checks: int, today: dt.date | None = None) -> str:
    """The summary line for one spec's findings and the number of checks that ran."""
    return count([("", findings, checks)], today).line()
