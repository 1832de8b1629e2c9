"""The engine: severity, mode, enforce_after, scopes, parameters, conflicts, CEL rules, settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gate.errors import SpecError
from gate.plan.catalog import load_catalog
from gate.policy.engine import MEASURED_STAGES, GateSettings, build_policy_set
from gate.policy.fragments import deep_merge, loaded_from_data
from gate.policy.rules import builtin_rules
from gate.result import Severity
from tests.policy.helpers import BASE_SPEC, ids, judge, policy_set

RTN_ON_GPU = {"quantization": {"method": "rtn", "format": "rtn", "justification": "reference build"}}
STALE = {"calibration": {"collected": "2024-01-15"}}


def test_builtin_defaults_pass_the_base_spec() -> None:
    ev = judge(build_policy_set([]))
    assert ev.findings == []
    static = [r for r in builtin_rules().values() if r.stage not in MEASURED_STAGES]  # QG702/QG703 run in gate run
    assert ev.checks == len(static)


def test_default_severity_and_location() -> None:
    ev = judge(build_policy_set([]), {"model": {"revision": "main"}})
    [f] = ev.findings
    assert (f.rule_id, f.slug, f.severity, f.mode, f.policy) == ("QG501", "baseline.pinned", Severity.deny, "enforce", None)
    assert str(f.location) == "models/case.yaml:9:3"
    assert f.blocking


def test_policy_sets_severity_and_params(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        rules:
          - {rule: QG204, severity: deny}
          - {rule: QG304, params: {max_age_days: 30}}
    """)
    ev = judge(ps, RTN_ON_GPU)
    assert [(f.rule_id, f.severity) for f in ev.findings] == [("QG204", Severity.deny), ("QG209", Severity.warn),
                                                              ("QG304", Severity.deny)]
    assert ev.findings[2].message == (
        "calibration.collected: 2026-10-01 is 53 days old, over the policy's 30-day freshness window"
    )
    assert ev.findings[2].policy == str(tmp_path / "org.yaml")


def test_disabled_rule_does_not_run_and_is_not_counted(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="rules:\n  - {rule: QG304, enabled: false}\n")
    ev = judge(ps, STALE)
    assert ids(ev) == []
    assert ev.checks == judge(build_policy_set([])).checks - 1


def test_scope_by_tier_owner_name_and_label(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        rules:
          - rule: QG304
            enabled: false
            scope: {tiers: [internal], owners: ["team-*"], names: ["case-*"], labels: {stage: beta}}
    """)
    internal = {"metadata": {"tier": "internal", "labels": {"stage": "beta"}}, **STALE}
    assert ids(judge(ps, internal)) == []
    assert ids(judge(ps, {**internal, "metadata": {"tier": "internal", "labels": {"stage": "ga"}}})) == ["QG304"]
    assert ids(judge(ps, {**internal, "metadata": {"tier": "internal", "name": "other", "labels": {"stage": "beta"}}})) == ["QG304"]
    assert ids(judge(ps, STALE)) == ["QG304"]  # standard tier: out of scope


def test_audit_mode_reports_without_blocking(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="rules:\n  - {rule: QG304, mode: audit}\n")
    [f] = judge(ps, STALE).findings
    assert (f.severity, f.mode, f.blocking) == (Severity.deny, "audit", False)


def test_enforce_after_audits_until_the_date(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="rules:\n  - {rule: QG304, enforce_after: 2026-12-01}\n")
    before = judge(ps, STALE, today=dt.date(2026, 11, 30)).findings[0]
    on = judge(ps, STALE, today=dt.date(2026, 12, 1)).findings[0]
    assert (before.mode, before.blocking) == ("audit", False)
    assert (on.mode, on.blocking) == ("enforce", True)


def test_scoped_params_give_per_tier_bounds_and_settings(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        rules:
          - {rule: QG403, scope: {tiers: [critical]}, params: {max_drop: 0.5}}
          - {rule: QG403, scope: {tiers: [internal]}, params: {max_drop: 5.0}}
        settings:
          - {clip_search_allowed: false}
          - {scope: {tiers: [internal]}, inconclusive: allow}
    """)
    critical = judge(ps, {"metadata": {"tier": "critical"}})
    assert [f.message for f in critical.findings] == [
        "quality.metrics[0].max_drop: 1 for support_qa/acc is above the policy's bound of 0.5 for tier critical"
    ]
    assert ids(judge(ps, {"metadata": {"tier": "internal"}, "rollout": None})) == []

    def settings(tier: str) -> GateSettings:
        return ps.settings_for(loaded_from_data(deep_merge(BASE_SPEC, {"metadata": {"tier": tier}}), "m.yaml"))

    assert settings("critical").inconclusive == "block"
    assert settings("critical").clip_search_allowed is False
    assert settings("critical").tolerance_bounds.max_drop == 0.5
    assert settings("internal").inconclusive == "allow"
    assert settings("internal").tolerance_bounds.max_drop == 5.0
    assert settings("standard").tolerance_bounds.max_drop == 2.0


def test_settings_default_fail_closed() -> None:
    loaded = loaded_from_data(BASE_SPEC, "m.yaml")
    assert build_policy_set([]).settings_for(loaded) == GateSettings()
    assert GateSettings().inconclusive == "block"


def test_conflicting_severities_across_files_deny_wins(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, a="rules:\n  - {rule: QG204, severity: warn}\n",
                    b="rules:\n  - {rule: QG204, severity: deny}\n")
    ev = judge(ps, RTN_ON_GPU)
    by_id = {f.rule_id: f for f in ev.findings}
    assert by_id["QG204"].severity is Severity.deny
    conflict = by_id["QG002"]
    assert conflict.severity is Severity.warn
    a, b = (str(tmp_path / n) for n in ("a.yaml", "b.yaml"))
    assert conflict.message == (
        f"QG204: {a}:5:5 sets severity warn but {b}:5:5 sets deny; deny wins "
        "(the stricter severity always wins, so adding a policy can only tighten a rule)"
    )
    # the same files in the other order give the same answer
    ps2 = policy_set(tmp_path / "swapped", a="rules:\n  - {rule: QG204, severity: deny}\n",
                     b="rules:\n  - {rule: QG204, severity: warn}\n")
    assert {f.rule_id: f.severity for f in judge(ps2, RTN_ON_GPU).findings}["QG204"] is Severity.deny


def test_hardware_added_by_policy(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        hardware:
          acme-npu: {kind: gpu, vendor: acme, memory_gb: 32, fast_formats: [int8-weight-only]}
    """)
    catalog = ps.extend_catalog(load_catalog())
    assert catalog.get("acme-npu").memory_gb == 32
    ev = judge(ps, {"constraint": {"target": {"hardware": "acme-npu"}}})
    assert ids(ev) == ["QG203"]  # awq has no kernels on the NPU


def test_custom_cel_rules(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        custom_rules:
          - id: ORG001
            expression: spec.metadata.owner.startsWith("team-")
            message: "metadata.owner: owners are teams"
            key: metadata.owner
          - id: ORG002
            severity: warn
            scope: {tiers: [critical]}
            expression: spec.calibration.samples >= 256
            message: "critical models calibrate on 256+ samples"
    """)
    ok = judge(ps)
    assert ids(ok) == []
    bad = judge(ps, {"metadata": {"owner": "alice", "tier": "critical"}, "calibration": {"samples": 128}})
    by_id = {f.rule_id: f for f in bad.findings}
    assert sorted(by_id) == ["ORG001", "ORG002"]
    org1, org2 = by_id["ORG001"], by_id["ORG002"]
    assert (org1.rule_id, org1.slug, org1.severity, str(org1.location)) == (
        "ORG001", "custom.org001", Severity.deny, "models/case.yaml:5:3")
    assert (org2.rule_id, org2.severity, org2.message) == (
        "ORG002", Severity.warn, "critical models calibrate on 256+ samples")
    assert ok.checks == judge(build_policy_set([])).checks + 1  # ORG002 is out of scope for standard


def test_cel_failure_on_a_spec_fails_closed(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        custom_rules:
          - id: ORG009
            expression: spec.rollout.flag.startsWith("quant-")
            message: flags start with quant-
    """)
    assert ids(judge(ps)) == []
    [f] = judge(ps, {"rollout": None, "metadata": {"tier": "internal"}}).findings
    assert f.rule_id == "ORG009" and f.blocking
    assert f.message == (
        "custom rule could not be evaluated on this spec (no such key 'rollout' (guard optional fields with "
        "has())); failing closed"
    )
    assert str(f.location) == f"{tmp_path / 'org.yaml'}:5:5"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("spec.quantization.bits >=", "custom_rules[0].expression: CEL syntax error: Syntax error: mismatched input "
         "'<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, "
         "STRING, BYTES, IDENTIFIER}"),
        ("spec.metadata.name > 3", "custom_rules[0].expression: CEL type error: No such overload: the operation"
         " is not defined for the given operand types. CEL does not coerce between types, so common causes are mixing"
         " int with uint or double (1 + 2u, 1 + 2.5), indexing into a string, or calling a function with the wrong"
         " argument types. Convert explicitly with int(x), uint(x), double(x) or string(x), or check the CEL"
         " specification."),
        ("spec.quantization.bitz == 4", "custom_rules[0].expression: CEL type error: no such key 'bitz' "
         "(guard optional fields with has())"),
        ("spec.quantization.bits + 1", "custom_rules[0].expression: CEL type error: the expression must be a bool, "
         "got int 5"),
    ],
)
def test_cel_errors_at_the_policy_line(tmp_path: Path, expression: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        policy_set(tmp_path, org=f"""
            custom_rules:
              - id: ORG001
                message: m
                expression: '{expression}'
        """)
    assert err.value.message == message
    assert str(err.value.location) == f"{tmp_path / 'org.yaml'}:7:5"


def test_cel_unknown_field_hint(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        policy_set(tmp_path, org="custom_rules:\n  - {id: ORG001, message: m, expression: 'spec.quantization.bitz == 4'}\n")
    assert err.value.hint == "`bitz` is not a spec field; did you mean `bits`?"


def test_policies_are_parsed_once_per_process(tmp_path: Path) -> None:
    from gate.policy.sources import files_from_dir

    policy_set(tmp_path, org="rules:\n  - {rule: QG304, params: {max_age_days: 30}}\n")
    first = build_policy_set(files_from_dir(tmp_path))
    assert build_policy_set(files_from_dir(tmp_path)) is first

