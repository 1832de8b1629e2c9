"""Shared views of results for every format: overall verdict, finding levels, waivers, numbers.

Pure functions over ``GateResult``s; no format-specific markup here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gate.policy.summary import EXPIRING_DAYS
from gate.report.safe import one_line
from gate.result import Decision, Finding, GateResult, Severity

DECISION_ORDER = (Decision.error, Decision.failed, Decision.inconclusive, Decision.passed)
"""Most severe first: one error anywhere makes the overall decision an error."""

DECISION_LABEL = {
    Decision.passed: "PASS",
    Decision.failed: "FAIL",
    Decision.inconclusive: "INCONCLUSIVE",
    Decision.error: "ERROR",
}


class Level(StrEnum):
    """How a finding is shown: GitHub annotation levels, SARIF levels, terminal colours."""

    error = "error"
    """Blocks the merge."""
    warning = "warning"
    """Reported, does not block (warn severity, or a deny rule in audit mode)."""
    notice = "notice"
    """Context (info severity, or a waived deny)."""


LEVEL_RANK = {Level.error: 0, Level.warning: 1, Level.notice: 2}


def level_of(finding: Finding) -> Level:
    """A finding's effective level: blocking denies are errors; waived denies are notices."""
    if finding.blocking:
        return Level.error
    if finding.severity is Severity.deny and finding.waived:
        return Level.notice
    if finding.severity in (Severity.deny, Severity.warn):
        return Level.warning
    return Level.notice


def overall_decision(results: Iterable[GateResult]) -> Decision:
    """error > fail > inconclusive > pass; no results at all is a pass (nothing to gate)."""
    decisions = {r.verdict.decision for r in results}
    for decision in DECISION_ORDER:
        if decision in decisions:
            return decision
    return Decision.passed


@dataclass(frozen=True)
class Located:
    """A finding with the result it belongs to."""

    result: GateResult
    finding: Finding

    @property
    def level(self) -> Level:
        return level_of(self.finding)


def ranked_findings(results: Iterable[GateResult]) -> list[Located]:
    """Every finding, most severe first, then by spec, file and line (stable, deterministic)."""
    items = [Located(r, f) for r in results for f in r.findings]

    def key(item: Located) -> tuple[int, str, str, int, int, str]:
        loc = item.finding.location
        return (
            LEVEL_RANK[item.level],
            item.result.spec.path,
            loc.path if loc else "",
            (loc.line or 0) if loc else 0,
            (loc.col or 0) if loc else 0,
            item.finding.rule_id,
        )

    return sorted(items, key=key)


def verdict_needs_note(result: GateResult) -> bool:
    """Whether a blocked spec's reasons are not already carried by a blocking finding.

    True for failed/inconclusive/errored criteria and for blocks without any blocking finding; annotations
    and SARIF then add one verdict entry on the spec file so every block is visible.
    """
    if result.verdict.decision is Decision.passed:
        return False
    if any(c.outcome in (Decision.failed, Decision.inconclusive, Decision.error) for c in result.criteria):
        return True
    return not any(f.blocking for f in result.findings)


def level_counts(results: Iterable[GateResult]) -> dict[Level, int]:
    counts = dict.fromkeys(Level, 0)
    for item in ranked_findings(results):
        counts[item.level] += 1
    return counts


def decision_counts(results: Iterable[GateResult]) -> dict[Decision, int]:
    counts = dict.fromkeys(DECISION_ORDER, 0)
    for r in results:
        counts[r.verdict.decision] += 1
    return counts


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def summary_line(results: list[GateResult]) -> str:
    """``2 specs: 1 pass, 1 fail · 52 rule checks · 1 blocking finding, 2 warnings, 0 notices``.

    The rule-check count appears when the results carry it (``GateResult.checks``).
    """
    dc = decision_counts(results)
    lc = level_counts(results)
    decided = ", ".join(f"{dc[d]} {d.value}" for d in DECISION_ORDER if dc[d]) or "nothing to gate"
    known = [r.checks for r in results if r.checks is not None]
    checks = f"{plural(sum(known), 'rule check')} · " if known else ""
    waived = [(r, f) for r in results for f in r.findings if f.waived]
    expiring = sum(1 for r, f in waived if expires_soon(r, f))
    text = (
        f"{plural(len(results), 'spec')}: {decided} · {checks}"
        f"{plural(lc[Level.error], 'blocking finding')}, {plural(lc[Level.warning], 'warning')}, "
        f"{plural(lc[Level.notice] - len(waived), 'notice')}"
    )
    if waived:
        text += f", {len(waived)} waived"
        if expiring:
            text += f" ({expiring} expiring within {EXPIRING_DAYS} days)"
    return text


def expires_soon(result: GateResult, finding: Finding) -> bool:
    """Whether ``finding``'s waiver ends within ``EXPIRING_DAYS`` days of the run (its start date)."""
    if finding.waiver is None:
        return False
    try:
        expires = dt.date.fromisoformat(finding.waiver.expires)
        ran = dt.date.fromisoformat(result.started_at[:10])
    except ValueError:
        return False
    return expires <= ran + dt.timedelta(days=EXPIRING_DAYS)


def waiver_text(finding: Finding, result: GateResult) -> str | None:
    """``waived by team-platform until 2026-12-31 (expires in 6 days): reason`` (control characters removed)."""
    w = finding.waiver
    if w is None:
        return "waived" if finding.waived else None
    soon = ""
    if expires_soon(result, finding):
        days = (dt.date.fromisoformat(w.expires) - dt.date.fromisoformat(result.started_at[:10])).days
        soon = f" (expires in {plural(days, 'day')})" if days >= 0 else " (expired)"
    return f"waived by {one_line(w.owner)} until {one_line(w.expires)}{soon}: {one_line(w.reason)}"


# ---- numbers -------------------------------------------------------------------------------


def num(value: Any, digits: int = 4) -> str:
    """A compact number: ``0.7312``, ``12.35``, ``1.235e+05``; non-numbers as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 6 or magnitude <= -4:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


RELATIVE_FORMS = ("max_relative_drop", "max_relative_increase")


# ---- the spec as configured ------------------------------------------------------------------


def configuration_log(result: GateResult) -> dict[str, str]:
    """What was asked for: the spec reference's fields that are set."""
    data = result.spec.model_dump(mode="json")
    return {k: num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
            for k, v in data.items() if v is not None}
