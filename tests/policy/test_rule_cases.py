"""Pass/fail cases of every built-in rule, as data.

Rule-case format (one file per rule: ``tests/policy/cases/<RULE_ID>.yaml``)::

    rule: QG203
    cases:
      - name: awq on a cpu target          # unique within the file
        expect: fail                       # pass | fail
        spec:                              # fragment deep-merged onto tests/policy/base_spec.yaml:
          constraint:                      #   mappings merge, lists/scalars replace, null deletes
            target: {hardware: cpu-x86-avx2}
        message: "quantization.format: ..."  # fail cases: the exact message of the first violation
        key: quantization.format           # optional: dotted key the first violation points at
        facts:                             # optional facts from earlier stages
          weights: {...}                   #   gate.weights.interface.WeightScan JSON
          plan: {...}                      #   gate.plan.memory.MemoryPlan JSON
          calibration: {...}               #   gate.weights.calibration.CalibrationFile fields
          performance: {...}               #   gate.evaluate.interface.PerformanceResult JSON (gate run)
          tasks: {...}                     #   gate.evaluate.task_check.TaskScan JSON
        params: {...}                      # optional rule parameters (merged onto the defaults)
        today: 2026-11-23                  # optional; default TODAY below

The rule runs alone, as a pure function of the facts (``Rule.check``); a pass case must yield no
violation, a fail case at least one. The meta-test requires every registered rule to have docs and
at least one pass and one fail case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gate.plan.catalog import load_catalog
from gate.policy.facts import Facts
from gate.policy.fragments import deep_merge, loaded_from_data
from gate.policy.rules import builtin_rules

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
REPO_ROOT = HERE.parent.parent
TODAY = dt.date(2026, 11, 23)


def _load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


BASE_SPEC = _load(HERE / "base_spec.yaml")


def _case_files() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(CASES_DIR.glob("*.yaml")):
        data = _load(path)
        assert data["rule"] == path.stem, f"{path.name}: `rule: {data['rule']}` does not match the file name"
        out[path.stem] = data
    return out


CASE_FILES = _case_files()


def _all_cases() -> list[Any]:
    params = []
    for rule_id, data in CASE_FILES.items():
        names = [c["name"] for c in data["cases"]]
        assert len(names) == len(set(names)), f"{rule_id}: duplicate case names"
        for case in data["cases"]:
            params.append(pytest.param(rule_id, case, id=f"{rule_id}-{case['name']}"))
    return params


def _facts(case: dict[str, Any]) -> Facts:
    data = deep_merge(BASE_SPEC, case.get("spec") or {})
    loaded = loaded_from_data(data, f"cases/{case['name'].replace(' ', '-')}.yaml")
    raw = case.get("facts") or {}
    weights = plan = None
    if "weights" in raw:
        from gate.weights.interface import WeightScan

        weights = WeightScan.model_validate(raw["weights"])
    if "plan" in raw:
        from gate.plan.memory import MemoryPlan

        plan = MemoryPlan.model_validate(raw["plan"])
    calibration = None
    if "calibration" in raw:
        from gate.weights.calibration import CalibrationFile

        calibration = CalibrationFile(**raw["calibration"])
    performance = None
    if "performance" in raw:
        from gate.evaluate.interface import PerformanceResult

        performance = PerformanceResult.model_validate(raw["performance"])
    tasks = None
    if "tasks" in raw:
        from gate.evaluate.task_check import TaskScan

        tasks = TaskScan.model_validate(raw["tasks"])
    today = case.get("today", TODAY)
    return Facts(loaded=loaded, catalog=load_catalog(), today=today, repo_root=REPO_ROOT, weights=weights, plan=plan,
                 calibration=calibration, performance=performance, tasks=tasks)


@pytest.mark.parametrize(("rule_id", "case"), _all_cases())
def test_rule_case(rule_id: str, case: dict[str, Any]) -> None:
    rule_cls = builtin_rules().get(rule_id)
    assert rule_cls is not None, f"cases/{rule_id}.yaml names a rule that is not registered"
    facts = _facts(case)
    params = rule_cls.params.model_validate({**rule_cls.params().model_dump(), **(case.get("params") or {})})
    violations = list(rule_cls().check(facts, params))
    if case["expect"] == "pass":
        assert violations == [], f"expected no violation, got: {[v.message for v in violations]}"
        return
    assert case["expect"] == "fail"
    assert violations, "expected a violation, got none"
    if "message" in case:
        assert violations[0].message == case["message"]
    if "key" in case:
        dotted = ".".join(str(p) for p in violations[0].key_path)
        assert dotted == case["key"]


def test_base_spec_passes_every_rule_at_defaults() -> None:
    facts = _facts({"name": "base"})
    for rule_id, rule_cls in builtin_rules().items():
        if rule_cls.stage in ("weights", "plan", "calibration"):
            continue  # their facts are absent here; their own cases cover them
        found = [v.message for v in rule_cls().check(facts, rule_cls.params())]
        assert found == [], f"{rule_id} fails the base spec: {found}"


@pytest.mark.parametrize("rule_id", sorted(builtin_rules()))
def test_every_rule_has_docs_and_cases(rule_id: str) -> None:
    rule_cls = builtin_rules()[rule_id]
    for attr in ("slug", "summary", "why", "example", "use_instead"):
        assert str(getattr(rule_cls, attr, "")).strip(), f"{rule_id} has no {attr}"
    data = CASE_FILES.get(rule_id)
    assert data is not None, f"{rule_id} has no tests/policy/cases/{rule_id}.yaml"
    kinds = {c["expect"] for c in data["cases"]}
    assert kinds == {"pass", "fail"}, f"{rule_id} needs at least one pass and one fail case, has {sorted(kinds)}"
