"""Waivers: applied with their reason, expired ones deny, unused ones warn, mandatory rules refuse them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gate.policy.summary import count, summary_line
from gate.result import Severity
from tests.policy.helpers import ids, judge, policy_set

AWQ_ON_CPU = {"constraint": {"target": {"hardware": "cpu-x86-avx2", "memory_gb": 16}},
              "quantization": {"justification": "demo"}}


def _waiver(rule: str = "QG203", models: str = "[case-model]", expires: str = "2027-05-31") -> str:
    return f"""
        waivers:
          - rule: {rule}
            models: {models}
            reason: Demo evaluated on CPU with reference kernels.
            owner: team-platform
            expires: {expires}
    """


def test_waived_finding_keeps_severity_and_carries_the_reason(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver())
    ev = judge(ps, AWQ_ON_CPU)
    [f, dequantized] = ev.findings  # QG209 warns too: transformers serves AWQ on a CPU dequantized
    assert (dequantized.rule_id, dequantized.waived) == ("QG209", False)
    assert (f.rule_id, f.severity, f.waived, f.blocking) == ("QG203", Severity.deny, True, False)
    assert f.waiver is not None
    assert (f.waiver.reason, f.waiver.owner, f.waiver.expires) == (
        "Demo evaluated on CPU with reference kernels.", "team-platform", "2027-05-31")
    assert str(f.waiver.source) == f"{tmp_path / 'waivers.yaml'}:5:5"


def test_waiver_globs_and_other_models(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver(models="[case-*]"))
    assert judge(ps, AWQ_ON_CPU).findings[0].waived
    other = judge(ps, {**AWQ_ON_CPU, "metadata": {"name": "other-model"}})
    assert [(f.rule_id, f.waived) for f in other.findings] == [("QG203", False), ("QG209", False)]


def test_expired_waiver_is_a_deny_finding_and_waives_nothing(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver(expires="2026-11-22"))
    ev = judge(ps, AWQ_ON_CPU)
    by_id = {f.rule_id: f for f in ev.findings}
    assert sorted(by_id) == ["QG004", "QG203", "QG209"]
    assert not by_id["QG203"].waived and by_id["QG203"].blocking
    expired = by_id["QG004"]
    assert (expired.severity, expired.slug, str(expired.location)) == (
        Severity.deny, "waiver.expired", f"{tmp_path / 'waivers.yaml'}:5:5")
    assert expired.message == "waiver of QG203 for case-model expired on 2026-11-22 (owner team-platform)"


def test_waiver_is_valid_through_its_expiry_day(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver(expires="2026-11-23"))
    assert [f.waived for f in judge(ps, AWQ_ON_CPU).findings] == [True, False]  # QG203 waived; QG209 warns


def test_unused_waiver_warns(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver())
    [f] = judge(ps).findings
    assert (f.rule_id, f.severity, f.message) == ("QG005", Severity.warn, "waiver of QG203 for case-model matches no finding")


def test_unwaivable_rule_cannot_be_waived(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, waivers=_waiver(rule="QG101"))
    ev = judge(ps, {"constraint": None})
    by_id = {f.rule_id: f for f in ev.findings}
    assert sorted(by_id) == ["QG003", "QG101"]
    assert by_id["QG101"].blocking and not by_id["QG101"].waived
    assert by_id["QG003"].message == (
        "QG101 (scale.constraint-declared) can never be waived; the waiver for case-model is ignored"
    )


def test_custom_rules_can_be_waived(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        custom_rules:
          - {id: ORG001, expression: 'spec.metadata.owner == "team-x"', message: owner must be team-x}
    """ + _waiver(rule="ORG001"))
    assert [(f.rule_id, f.waived) for f in judge(ps).findings] == [("ORG001", True)]


def test_summary_line_counts_everything(tmp_path: Path) -> None:
    ps = policy_set(tmp_path, org="""
        rules:
          - {rule: QG304, params: {max_age_days: 30}}
    """ + _waiver(expires="2026-12-01"))
    ev = judge(ps, {**AWQ_ON_CPU, "quantization": {"method": "rtn", "format": "rtn", "justification": "x"},
                    "constraint": {"target": {"hardware": "nvidia-l4"}}, "calibration": {"samples": 16}})
    # QG204 and QG209 warn (rtn on a GPU, served dequantized); QG301 and QG304 deny; the waiver of QG203
    # matches nothing (warn)
    assert ids(ev) == ["QG005", "QG204", "QG209", "QG301", "QG304"]
    line = summary_line(ev.findings, ev.checks, dt.date(2026, 11, 23))
    assert line == f"{ev.checks} checks, {ev.checks - 5} passed, 3 warnings, 2 failures, 0 waived"

    waived = judge(ps, AWQ_ON_CPU)  # QG203 waived, QG209 warns, QG304 still fails (53 days > 30)
    assert summary_line(waived.findings, waived.checks, dt.date(2026, 11, 23)) == (
        f"{waived.checks} checks, {waived.checks - 3} passed, 1 warning, 1 failure, 1 waived "
        "(1 expiring within 14 days)"
    )
    total = count([("a", ev.findings, ev.checks), ("b", waived.findings, waived.checks)], dt.date(2026, 11, 23))
    assert total.line() == (
        f"{ev.checks + waived.checks} checks, {ev.checks + waived.checks - 8} passed, 4 warnings, 3 failures, "
        "1 waived (1 expiring within 14 days)"
    )


def test_summary_line_singulars() -> None:
    assert summary_line([], 1) == "1 check, 1 passed, 0 warnings, 0 failures, 0 waived"
