"""SARIF 2.1.0 for GitHub code scanning: one run, one rule per rule id, one result per finding.

Blocked specs without a blocking finding (a tolerance exceeded, an inconclusive comparison, an
error) get one ``quant-gate/verdict`` result on the spec file, so code scanning shows every block;
its ``properties.criteria`` names each criterion that did not pass, as the comment words it.
Waived findings carry an external suppression with the waiver's owner, expiry and reason. Text
from the pull request is stripped of control characters (``safe``).
"""

from __future__ import annotations

import json
from typing import Any

from gate import __version__
from gate.report.criteria import criteria
from gate.report.interface import ReportContext
from gate.report.safe import one_line, plain
from gate.report.summary import DECISION_LABEL, Level, ranked_findings, verdict_needs_note, waiver_text
from gate.result import Decision, Finding, GateResult, Location

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/quant-gate/quant-gate"
VERDICT_RULE = "quant-gate/verdict"
SARIF_LEVEL = {Level.error: "error", Level.warning: "warning", Level.notice: "note"}


def physical_location(loc: Location) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": one_line(loc.path), "uriBaseId": "%SRCROOT%"}}
    if loc.line is not None:
        region: dict[str, int] = {"startLine": loc.line}
        if loc.col is not None:
            region["startColumn"] = loc.col
        physical["region"] = region
    return {"physicalLocation": physical}


def rule_descriptor(finding: Finding) -> dict[str, Any]:
    """The rule's entry; built-in rules add their documentation (what ``gate explain`` prints)."""
    descriptor: dict[str, Any] = {
        "id": finding.rule_id,
        "name": one_line(finding.slug),
        "shortDescription": {"text": one_line(finding.slug)},
        "properties": {"stage": finding.stage},
    }
    docs = builtin_rule_docs(finding.rule_id)
    if docs is not None:
        summary, explain = docs
        descriptor["fullDescription"] = {"text": summary}
        descriptor["help"] = {"text": explain}
    return descriptor


def builtin_rule_docs(rule_id: str) -> tuple[str, str] | None:
    """(summary, explain text) of a built-in rule; None for custom (CEL) rules and unknown ids."""
    from gate.policy.rules import builtin_rules

    rule = builtin_rules().get(rule_id)
    if rule is None:
        return None
    return rule.summary, rule.explain()


def finding_result(result: GateResult, finding: Finding, rule_index: int, level: Level) -> dict[str, Any]:
    loc = finding.location or Location(path=result.spec.path)
    text = plain(finding.message) + (f"\nHint: {one_line(finding.hint)}" if finding.hint else "")
    out: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": SARIF_LEVEL[level],
        "message": {"text": text},
        "locations": [physical_location(loc)],
        "properties": {
            "severity": finding.severity.value,
            "mode": finding.mode,
            "spec": one_line(result.spec.path),
            **({"policy": one_line(finding.policy)} if finding.policy else {}),
        },
    }
    if finding.waived:
        suppression: dict[str, Any] = {"kind": "external", "status": "accepted"}
        if finding.waiver is not None:
            suppression["justification"] = one_line(waiver_text(finding, result) or "waived")
            if finding.waiver.source is not None:
                suppression["location"] = physical_location(finding.waiver.source)
        out["suppressions"] = [suppression]
    return out


def render_document(results: list[GateResult]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    sarif_results: list[dict[str, Any]] = []
    for item in ranked_findings(results):
        f = item.finding
        if f.rule_id not in index:
            index[f.rule_id] = len(rules)
            rules.append(rule_descriptor(f))
        sarif_results.append(finding_result(item.result, f, index[f.rule_id], item.level))
    for r in results:
        if not verdict_needs_note(r):
            continue
        if VERDICT_RULE not in index:
            index[VERDICT_RULE] = len(rules)
            rules.append({
                "id": VERDICT_RULE,
                "name": "verdict",
                "shortDescription": {"text": "The quantized model did not pass the gate"},
            })
        reasons = "; ".join(one_line(x) for x in r.verdict.reasons) or DECISION_LABEL[r.verdict.decision]
        sarif_results.append({
            "ruleId": VERDICT_RULE,
            "ruleIndex": index[VERDICT_RULE],
            "level": "error",
            "message": {"text": f"{DECISION_LABEL[r.verdict.decision]}: {reasons}"},
            "locations": [physical_location(Location(path=r.spec.path))],
            "properties": {"spec": one_line(r.spec.path), "decision": r.verdict.decision.value,
                           "criteria": [one_line(row.reason) for row in criteria(r) if row.outcome is not None
                                        and row.outcome is not Decision.passed]},
        })
    invocation: dict[str, Any] = {
        "executionSuccessful": all(r.verdict.decision is not Decision.error for r in results),
    }
    if results:
        invocation["startTimeUtc"] = min(r.started_at for r in results)
        invocation["endTimeUtc"] = max(r.finished_at for r in results)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "quant-gate",
                        "version": results[0].gate_version if results else __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": "quant-gate/"},
                "invocations": [invocation],
                "results": sarif_results,
            }
        ],
    }


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    return json.dumps(render_document(results), indent=2, ensure_ascii=False) + "\n"
