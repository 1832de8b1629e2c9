"""Waivers: reviewed, expiring exceptions kept in git (the ``waivers:`` section of a policy).

A waived finding keeps its severity and appears in every report, marked waived with the reason;
it no longer blocks. A waiver past its expiry date is itself a deny finding (QG004) and waives
nothing; a waiver of a rule that can never be waived is a deny finding (QG003); a waiver that
covers a model but matches none of its findings is a warning (QG005).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from gate.engine_checks import NOT_WAIVABLE, WAIVER_EXPIRED, WAIVER_UNUSED
from gate.errors import SourceLocation
from gate.policy.models import Waiver
from gate.policy.rules import builtin_rules
from gate.result import Finding, Location, WaiverNote


@dataclass(frozen=True)
class PlacedWaiver:
    """A waiver and where it is declared."""

    waiver: Waiver
    policy: str
    location: SourceLocation

    def note(self) -> WaiverNote:
        w = self.waiver
        return WaiverNote(reason=w.reason, owner=w.owner, expires=w.expires.isoformat(), source=Location.of(self.location))


def apply_waivers(findings: list[Finding], waivers: Iterable[PlacedWaiver], name: str, today: dt.date) -> int:
    """Mark the findings of model ``name`` that waivers cover (in place); return the waivers checked."""
    checks = 0
    rules = builtin_rules()
    for item in waivers:
        waiver = item.waiver
        if not waiver.covers(name):
            continue
        checks += 1
        detail = {"model": name, "waived_rule": waiver.rule}
        if today > waiver.expires:
            findings.append(WAIVER_EXPIRED.finding(
                f"waiver of {waiver.rule} for {name} expired on {waiver.expires.isoformat()} (owner {waiver.owner})",
                item.location, item.policy,
                hint="renew it with a new review and expiry date, or fix the finding and delete the waiver",
                detail=detail,
            ))
            continue
        rule_cls = rules.get(waiver.rule)
        if rule_cls is not None and not rule_cls.waivable:
            findings.append(NOT_WAIVABLE.finding(
                f"{waiver.rule} ({rule_cls.slug}) can never be waived; the waiver for {name} is ignored",
                item.location, item.policy,
                hint="delete the waiver and fix the spec",
                detail=detail,
            ))
            continue
        hits = [i for i, f in enumerate(findings) if f.rule_id == waiver.rule and not f.waived]
        if not hits and rule_cls is not None and rule_cls.stage == "performance":
            continue  # measured by gate run only: mark_waived applies it there
        if not hits:
            findings.append(WAIVER_UNUSED.finding(
                f"waiver of {waiver.rule} for {name} matches no finding",
                item.location, item.policy,
                hint="the problem is fixed or the waiver names the wrong rule; delete or correct it",
                detail=detail,
            ))
            continue
        note = item.note()
        for i in hits:
            findings[i] = findings[i].model_copy(update={"waived": True, "waiver": note})
    return checks


def mark_waived(findings: list[Finding], waivers: Iterable[PlacedWaiver], name: str, today: dt.date) -> None:
    """Mark the findings that current, applicable waivers cover (in place); report nothing about the waivers."""
    rules = builtin_rules()
    for item in waivers:
        waiver = item.waiver
        rule_cls = rules.get(waiver.rule)
        if not waiver.covers(name) or today > waiver.expires or (rule_cls is not None and not rule_cls.waivable):
            continue
        for i, finding in enumerate(findings):
            if finding.rule_id == waiver.rule and not finding.waived:
                findings[i] = finding.model_copy(update={"waived": True, "waiver": item.note()})
