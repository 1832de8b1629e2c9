"""Policy engine (minimal: built-in rules at default severity). Issue #3 replaces this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.plan.catalog import HardwareCatalog
from gate.policy.facts import Facts
from gate.policy.rules import builtin_rules
from gate.result import Finding, Location


@dataclass(frozen=True)
class PolicySet:
    def extend_catalog(self, catalog: HardwareCatalog) -> HardwareCatalog:
        return catalog


def load_policy_set(options: Any) -> PolicySet:
    return PolicySet()


def evaluate(facts: Facts, policy_set: PolicySet) -> list[Finding]:
    findings: list[Finding] = []
    for rule_cls in builtin_rules().values():
        rule = rule_cls()
        params = rule_cls.params()
        for v in rule.check(facts, params):
            where = Location(path=v.path) if v.path else Location.of(facts.loaded.source_map.locate(v.key_path))
            findings.append(
                Finding(rule_id=rule_cls.id, slug=rule_cls.slug, severity=rule_cls.severity, message=v.message,
                        location=where, hint=v.hint, stage=rule_cls.stage, detail=dict(v.detail or {}))
            )
    return findings
