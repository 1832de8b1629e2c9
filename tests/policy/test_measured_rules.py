"""QG702/QG703 run on what `gate run` measured: warn by default, deny by policy, waivable, silent in gate check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ruamel.yaml import YAML

from gate.evaluate.interface import PerformanceResult
from gate.plan.catalog import load_catalog
from gate.policy.engine import run_checks, run_measured_checks
from gate.policy.facts import Facts
from gate.policy.fragments import deep_merge, loaded_from_data
from gate.result import Severity
from tests.policy.helpers import BASE_SPEC, TODAY, policy_set

CASES = Path(__file__).resolve().parent / "cases"
CPU_MEMORY = {"constraint": {"kind": "memory", "target": {"hardware": "cpu-x86-avx2", "memory_gb": 4, "context": 2048,
                                                          "batch": 1}}}


def _went_up() -> PerformanceResult:
    case = next(c for c in YAML(typ="safe", pure=True).load((CASES / "QG702.yaml").read_text())["cases"]
                if c["name"] == "memory went up")
    return PerformanceResult.model_validate(json.loads(json.dumps(case["facts"]["performance"])))


def _facts(ps: object) -> Facts:
    loaded = loaded_from_data(deep_merge(BASE_SPEC, CPU_MEMORY), "models/case.yaml")
    return Facts(loaded=loaded, catalog=load_catalog(), today=TODAY, repo_root=CASES, performance=_went_up())


def test_a_warning_by_default_and_not_a_static_check(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="rules: []\n")
    facts = _facts(ps)
    assert [f.rule_id for f in run_checks(facts, ps).findings if f.rule_id.startswith("QG70")] == []
    (finding,) = run_measured_checks(facts, ps)
    assert (finding.rule_id, finding.severity, finding.blocking) == ("QG702", Severity.warn, False)
    assert str(finding.location) == "models/case.yaml:11:3"
    assert finding.detail == {"baseline_gb": 1.29, "quantized_gb": 1.51, "ratio": 1.1705}


def test_a_policy_makes_it_deny(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="rules:\n  - {rule: QG702, severity: deny}\n")
    (finding,) = run_measured_checks(_facts(ps), ps)
    assert (finding.severity, finding.blocking) == (Severity.deny, True)


def test_a_waiver_covers_it_and_is_not_unused_in_gate_check(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        rules:
          - {rule: QG702, severity: deny}
        waivers:
          - {rule: QG702, models: [case-model], reason: "CPU kernels dequantize; GPU runners measure the target",
             owner: team-platform, expires: 2026-12-31}
    """)
    facts = _facts(ps)
    static = [f.rule_id for f in run_checks(facts, ps).findings]
    assert "QG005" not in static and "QG702" not in static  # not an unused waiver in gate check
    (finding,) = run_measured_checks(facts, ps)
    assert (finding.waived, finding.blocking) == (True, False)
    assert finding.waiver is not None and finding.waiver.owner == "team-platform"
    expired = dataclasses.replace(facts, today=TODAY.replace(year=2027))
    assert run_measured_checks(expired, ps)[0].blocking
