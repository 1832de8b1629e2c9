"""JUnit XML: one test suite per spec, one test case per spec x check.

Checks are the pipeline stages, each rule that reported a finding, each criterion (task metrics,
fidelity limits, memory, throughput and cost constraints) and the verdict. Blocking findings and
exceeded limits are failures; inconclusive comparisons are
failures of type ``inconclusive`` (they block under fail-closed); errors are errors; skipped
stages are skipped. Warnings pass and carry their text in ``system-out``; waived findings add who
waived them, until when and why. Control characters are removed (XML 1.0 cannot even carry most
of them, and a CI log viewer would interpret the rest).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from gate.report.criteria import criterion_label, row_of
from gate.report.interface import ReportContext
from gate.report.safe import one_line, plain
from gate.report.summary import DECISION_LABEL, Level, level_of, waiver_text
from gate.result import CriterionKind, Decision, GateResult, StageStatus


@dataclass
class Case:
    name: str
    seconds: float = 0.0
    failure: tuple[str, str, str] | None = None
    """(type, message, text)"""
    error: tuple[str, str, str] | None = None
    skipped: str | None = None
    output: list[str] = field(default_factory=list)


def cases_for(r: GateResult) -> list[Case]:
    cases: list[Case] = []
    for s in r.stages:
        case = Case(name=f"stage {s.stage}", seconds=s.seconds)
        if s.status is StageStatus.failed:
            case.error = ("stage-failed", s.message or "stage failed", s.message or "")
        elif s.status is StageStatus.blocked:
            case.failure = ("blocked", s.message or "stage blocked", s.message or "")
        elif s.status is StageStatus.skipped:
            case.skipped = s.message or "skipped"
        cases.append(case)
    by_rule: dict[str, Case] = {}
    for f in r.findings:
        if f.rule_id not in by_rule:
            by_rule[f.rule_id] = Case(name=f"rule {f.rule_id} {f.slug}")
            cases.append(by_rule[f.rule_id])
        case = by_rule[f.rule_id]
        where = f"{f.location}: " if f.location else ""
        text = f"{where}{f.message}" + (f"\n  Hint: {f.hint}" if f.hint else "")
        level = level_of(f)
        if level is Level.error:
            if case.failure is None:
                case.failure = (f.severity.value, f.message, text)
            else:
                kind, message, body = case.failure
                case.failure = (kind, message, f"{body}\n{text}")
        else:
            tag = "waived" if f.waived else ("audit" if f.mode == "audit" else f.severity.value)
            waiver = waiver_text(f, r)
            case.output.append(f"{level.value} ({tag}): {text}" + (f"\n  {waiver[0].upper()}{waiver[1:]}" if waiver else ""))
    for c in r.criteria:
        row = row_of(r, c)
        label = criterion_label(c)
        case = Case(name=f"{'metric' if c.kind is CriterionKind.metric else 'criterion'} {label}")
        parts = [f"{label} {value}" for label, value in (("baseline", row.baseline), ("candidate", row.candidate),
                 ("interval" if c.kind is CriterionKind.fidelity else "change", row.change)) if value != "—"]
        parts.append(f"limit {row.limit}" if c.limit is not None else "compared only (no limit)")
        if c.n is not None and c.kind is CriterionKind.metric:
            parts.append(f"n={c.n:,}")
        detail = ", ".join(parts + ([c.method] if c.method else []))
        if c.outcome is Decision.failed:
            case.failure = ("limit-exceeded", f"{label}: limit exceeded", detail)
        elif c.outcome is Decision.inconclusive:
            case.failure = ("inconclusive", f"{label}: inconclusive", f"{detail}; {row.note}" if row.note else detail)
        elif c.outcome is Decision.error:
            case.error = ("error", f"{label}: could not be measured", c.note or detail)
        else:
            case.output.append(detail + ("" if c.outcome is Decision.passed or c.limit is None else "; not judged")
                               + (f"; {row.note}" if row.note else ""))
        cases.append(case)
    verdict = Case(name="verdict")
    reasons = "\n".join(r.verdict.reasons)
    label = DECISION_LABEL[r.verdict.decision]
    if r.verdict.decision is Decision.error:
        verdict.error = ("error", f"{label}: {r.verdict.reasons[0] if r.verdict.reasons else ''}".rstrip(": "),
                         r.error or reasons)
    elif r.verdict.decision is not Decision.passed:
        verdict.failure = (r.verdict.decision.value, f"{label}: {r.verdict.reasons[0] if r.verdict.reasons else ''}".rstrip(": "), reasons)
    else:
        verdict.output.append(reasons)
    cases.append(verdict)
    return cases


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    root = ET.Element("testsuites", name="quant-gate")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for r in results:
        cases = cases_for(r)
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.failure),
            "errors": sum(1 for c in cases if c.error),
            "skipped": sum(1 for c in cases if c.skipped),
        }
        seconds = sum(c.seconds for c in cases)
        attrs = {"name": one_line(r.spec.path), **{k: str(v) for k, v in counts.items()},
                 "time": _seconds(seconds), "timestamp": r.started_at}
        suite = ET.SubElement(root, "testsuite", attrs)
        props = ET.SubElement(suite, "properties")
        for key, value in (("spec", r.spec.name), ("command", r.command), ("decision", r.verdict.decision.value),
                           ("gate_version", r.gate_version), ("spec_sha256", r.spec.sha256),
                           ("rule_checks", r.checks)):
            if value is not None:
                ET.SubElement(props, "property", name=key, value=one_line(value))
        for c in cases:
            element = ET.SubElement(suite, "testcase", classname=one_line(r.spec.path), name=one_line(c.name),
                                    time=_seconds(c.seconds))
            if c.failure:
                ET.SubElement(element, "failure", type=c.failure[0], message=one_line(c.failure[1])).text = plain(c.failure[2])
            if c.error:
                ET.SubElement(element, "error", type=c.error[0], message=one_line(c.error[1])).text = plain(c.error[2])
            if c.skipped:
                ET.SubElement(element, "skipped", message=one_line(c.skipped))
            if c.output:
                ET.SubElement(element, "system-out").text = plain("\n".join(c.output))
        for k in totals:
            totals[k] += counts[k]
        total_time += seconds
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", _seconds(total_time))
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
