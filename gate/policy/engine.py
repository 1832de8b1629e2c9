"""The policy engine: org policies over the built-in rules, CEL custom rules, waivers.

``load_policy_set`` (``gate.policy.loading``) reads and checks every policy file once;
``evaluate`` then judges one spec: each enabled rule at the severity, mode and parameters its
scoped policy entries give (``gate.policy.policy_set``), the custom CEL rules, then the waivers
(``gate.policy.waivers``). Findings come back sorted by file position, then rule id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gate.policy.cel import CelError, activation_for
from gate.policy.facts import Facts
from gate.policy.loading import build_policy_set, load_policy_set
from gate.policy.policy_set import GateSettings, PlacedCustomRule, PolicySet, ResolvedRule
from gate.policy.rules import builtin_rules
from gate.policy.waivers import apply_waivers, mark_waived
from gate.result import Finding, Location, Severity
from gate.result_sections import evidence
from gate.spec.yaml_source import KeyPath, SourceMap


@dataclass(frozen=True)
class Evaluation:
    """Findings for one spec and how many checks produced them."""

    findings: list[Finding]
    checks: int


# -- evaluation -------------------------------------------------------------------------------
def evaluate(facts: Facts, policy_set: PolicySet) -> list[Finding]:
    """Every finding for one spec, waivers applied, sorted by position then rule id."""
    return run_checks(facts, policy_set).findings


def run_checks(facts: Facts, policy_set: PolicySet) -> Evaluation:
    """``evaluate`` plus the number of checks that ran (enabled rules, custom rules, waivers)."""
    loaded = facts.loaded
    meta = loaded.spec.metadata
    today = facts.today
    findings: list[Finding] = []
    checks = 0
    for rule_id, rule_cls in builtin_rules().items():
        if rule_cls.stage in MEASURED_STAGES:
            continue  # judged by run_measured_checks once gate run has measured
        resolved = policy_set.resolve(rule_id, meta)
        if resolved.conflict is not None:
            findings.append(resolved.conflict)
        if not resolved.enabled:
            continue
        checks += 1
        mode = resolved.effective_mode(today)
        for v in rule_cls().check(facts, resolved.params):
            where = (Location(path=v.path, line=v.line, col=v.col, member=v.member) if v.path
                     else Location.of(loaded.source_map.locate(v.key_path)))
            findings.append(
                Finding(
                    rule_id=rule_id,
                    slug=rule_cls.slug,
                    severity=resolved.severity,
                    message=v.message,
                    location=where,
                    hint=v.hint,
                    stage=rule_cls.stage,
                    mode=mode,
                    policy=resolved.policy,
                    detail=evidence(v.detail),
                )
            )
    customs = [c for c in policy_set.custom if c.rule.scope.matches(meta)]
    if customs:
        activation = activation_for(loaded.spec.model_dump(mode="json", exclude_none=True), today.isoformat())
        for custom in customs:
            checks += 1
            finding = _custom_finding(custom, activation, loaded.source_map, today)
            if finding is not None:
                findings.append(finding)
    checks += apply_waivers(findings, policy_set.waivers, meta.name, today)
    findings.sort(key=_order)
    return Evaluation(findings=findings, checks=checks)


MEASURED_STAGES = frozenset({"performance"})
"""Stages whose facts only ``gate run`` measures; their rules run in ``run_measured_checks``."""


def run_measured_checks(facts: Facts, policy_set: PolicySet) -> list[Finding]:
    """The rules over what ``gate run`` measured (QG702, QG703), at their policy severity and mode,
    with the waivers that cover them applied (expired or unused waivers were reported by the static pass)."""
    meta = facts.loaded.spec.metadata
    findings: list[Finding] = []
    for rule_id, rule_cls in builtin_rules().items():
        if rule_cls.stage not in MEASURED_STAGES:
            continue
        resolved = policy_set.resolve(rule_id, meta)
        if not resolved.enabled:
            continue
        for v in rule_cls().check(facts, resolved.params):
            findings.append(Finding(
                rule_id=rule_id, slug=rule_cls.slug, severity=resolved.severity, message=v.message,
                location=Location.of(facts.loaded.source_map.locate(v.key_path)), hint=v.hint, stage=rule_cls.stage,
                mode=resolved.effective_mode(facts.today), policy=resolved.policy, detail=evidence(v.detail),
            ))
    mark_waived(findings, policy_set.waivers, meta.name, facts.today)
    return findings


def _custom_finding(custom: PlacedCustomRule, activation: Any, smap: SourceMap, today: dt.date) -> Finding | None:
    rule = custom.rule
    try:
        if custom.program.holds(activation):
            return None
        message, location = rule.message, Location.of(smap.locate(_key_path(rule.key)))
        hint = rule.hint
    except CelError as exc:
        message = f"custom rule could not be evaluated on this spec ({exc}); failing closed"
        location = Location.of(custom.location)
        hint = "guard optional fields in the expression with has(), e.g. !has(spec.rollout) || ..."
    mode = rule.mode
    if rule.enforce_after is not None:
        mode = "audit" if today < rule.enforce_after else "enforce"
    return Finding(
        rule_id=rule.id,
        slug=rule.slug or f"custom.{rule.id.lower()}",
        severity=Severity(rule.severity),
        message=message,
        location=location,
        hint=hint,
        mode=mode,
        policy=custom.policy,
    )


def _key_path(key: str | None) -> KeyPath:
    if not key:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


_SEVERITY_ORDER = {Severity.deny: 0, Severity.warn: 1, Severity.info: 2}


def _order(f: Finding) -> tuple[Any, ...]:
    loc = f.location
    return (
        loc.path if loc else "",
        (loc.line or 0) if loc else 0,
        (loc.col or 0) if loc else 0,
        f.rule_id,
        _SEVERITY_ORDER[f.severity],
        f.message,
    )



__all__ = [
    "Evaluation",
    "GateSettings",
    "PolicySet",
    "ResolvedRule",
    "build_policy_set",
    "evaluate",
    "load_policy_set",
    "run_checks",
]
