"""Policy unit tests (``gate policy test``): spec fragments and the findings they must produce.

A test file under ``policies/tests/`` (like ``conftest verify``)::

    apiVersion: quant-gate/v1
    kind: PolicyTest
    base: models/support-assistant.yaml     # repo-relative spec the fragments merge onto
    today: 2026-11-23                       # optional: pins dates (freshness, expiry, enforce_after)
    cases:
      - name: the example passes
        expect: []                          # no findings at all
      - name: a moving revision is denied
        spec: {model: {revision: main}}     # deep-merged; null deletes a key
        expect:
          - {rule: QG501, severity: deny}   # optional: severity, mode, waived, message

Each expected item must match one finding (on the fields it gives) and every finding must be
expected, so a policy change that adds, drops or downgrades a finding fails its tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.errors import SpecError
from gate.plan.catalog import load_catalog
from gate.policy.engine import PolicySet, evaluate
from gate.policy.facts import Facts
from gate.policy.fragments import deep_merge, loaded_from_data
from gate.result import Finding
from gate.spec.loader import validate_document
from gate.spec.yaml_source import display_path, read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedFinding(_Strict):
    rule: str
    severity: Literal["deny", "warn", "info"] | None = None
    mode: Literal["audit", "enforce"] | None = None
    waived: bool | None = None
    message: str | None = None

    def matches(self, f: Finding) -> bool:
        return (
            f.rule_id == self.rule
            and (self.severity is None or f.severity.value == self.severity)
            and (self.mode is None or f.mode == self.mode)
            and (self.waived is None or f.waived == self.waived)
            and (self.message is None or f.message == self.message)
        )

    def describe(self) -> str:
        extra = [f"{k}={v}" for k, v in self.model_dump(exclude={"rule", "message"}).items() if v is not None]
        return self.rule + (f" ({', '.join(extra)})" if extra else "")


class PolicyTestCase(_Strict):
    name: str = Field(min_length=1)
    spec: dict[str, Any] = Field(default_factory=dict)
    expect: list[ExpectedFinding] = Field(default_factory=list)


class PolicyTestFile(_Strict):
    apiVersion: Literal["quant-gate/v1"]
    kind: Literal["PolicyTest"]
    base: str = Field(description="Spec the fragments merge onto, relative to the repository root.")
    today: dt.date | None = None
    cases: list[PolicyTestCase] = Field(min_length=1)


@dataclass(frozen=True)
class CaseOutcome:
    file: str
    name: str
    passed: bool
    missing: list[str]
    """Expected findings that did not occur."""
    unexpected: list[Finding]
    """Findings nobody expected."""


def _describe(f: Finding) -> str:
    flags = [f.severity.value] + (["audit"] if f.mode == "audit" else []) + (["waived"] if f.waived else [])
    return f"{f.rule_id} ({', '.join(flags)}) {f.message}"


def run_test_file(path: Path, policy_set: PolicySet, repo_root: Path, today: dt.date) -> list[CaseOutcome]:
    doc = read_yaml(path, what="policy test")
    test = validate_document(PolicyTestFile, doc)
    base_path = repo_root / test.base
    base_doc = read_yaml(base_path, what="spec")
    if not isinstance(base_doc.data, dict):
        raise SpecError("base spec is not a mapping", location=doc.source_map.locate(("base",)))
    shown = display_path(path)
    catalog = policy_set.extend_catalog(load_catalog())
    outcomes = []
    for i, case in enumerate(test.cases):
        data = deep_merge(base_doc.data, case.spec)
        try:
            loaded = loaded_from_data(data, f"{test.base}#{case.name}")
        except SpecError as exc:
            raise SpecError(
                f"cases[{i}].spec: the merged spec is invalid: {exc.message}",
                hint=exc.hint, location=doc.source_map.locate(("cases", i, "spec")),
            ) from None
        facts = Facts(loaded=loaded, catalog=catalog, today=test.today or today, repo_root=repo_root)
        findings = evaluate(facts, policy_set)
        remaining = list(findings)
        missing = []
        for expected in case.expect:
            hit = next((f for f in remaining if expected.matches(f)), None)
            if hit is None:
                missing.append(expected.describe())
            else:
                remaining.remove(hit)
        outcomes.append(CaseOutcome(shown, case.name, not missing and not remaining, missing, remaining))
    return outcomes


def render_outcomes(outcomes: list[CaseOutcome]) -> str:
    lines = []
    for o in outcomes:
        lines.append(f"{'PASS' if o.passed else 'FAIL'} {o.file}: {o.name}")
        for m in o.missing:
            lines.append(f"  expected {m}, but it did not occur")
        for f in o.unexpected:
            lines.append(f"  unexpected {_describe(f)}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes)} tests, {len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def test_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.is_file()) if directory.is_dir() else []


test_files.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
run_test_file.__test__ = False  # type: ignore[attr-defined]
