"""`gate policy test|rules|show`, `gate explain`, docs/rules.md, and the shipped policies vs models/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.policy.docs import rules_markdown
from gate.policy.rules import builtin_rules
from tests.policy.helpers import HERE, REPO_ROOT, write_policies

EXAMPLES = ["models/support-assistant.yaml", "models/search-ranker.yaml", "models/nightly-summarizer.yaml"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_shipped_policy_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "policy", "test", "--repo-root", str(REPO_ROOT))
    assert code == 0, out
    assert out.splitlines()[-1].endswith(" passed, 0 failed")
    assert "PASS policies/tests/org_test.yaml: a moving baseline revision is denied" in out


def test_failing_policy_test_exits_1_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policies(tmp_path / "policies", org="rules:\n  - {rule: QG304, params: {max_age_days: 30}}\n")
    tests = tmp_path / "policies" / "tests"
    tests.mkdir()
    (tests / "t.yaml").write_text(
        "apiVersion: quant-gate/v1\nkind: PolicyTest\nbase: base_spec.yaml\ntoday: 2026-11-23\ncases:\n"
        "  - name: expects nothing\n    expect: []\n"
        "  - name: expects a wrong rule\n    expect: [{rule: QG501}]\n"
    )
    (tmp_path / "base_spec.yaml").write_text((HERE / "base_spec.yaml").read_text())
    code, out, _ = _run(capsys, "policy", "test", "--repo-root", str(tmp_path), "--policies", str(tmp_path / "policies"))
    assert code == 1
    shown = str(tests / "t.yaml")
    assert out.splitlines() == [
        f"FAIL {shown}: expects nothing",
        "  unexpected QG304 (deny) calibration.collected: 2026-10-01 is 53 days old, over the policy's 30-day "
        "freshness window",
        f"FAIL {shown}: expects a wrong rule",
        "  expected QG501, but it did not occur",
        "  unexpected QG304 (deny) calibration.collected: 2026-10-01 is 53 days old, over the policy's 30-day "
        "freshness window",
        "2 tests, 0 passed, 2 failed",
    ]


def test_policy_rules_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "policy", "rules", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows][: len(builtin_rules())] == list(builtin_rules())
    qg301 = next(r for r in rows if r["id"] == "QG301")
    assert qg301["params"] == {"min_samples": 128, "max_samples": 512}
    code, text, _ = _run(capsys, "policy", "rules")
    assert "QG101  scale.constraint-declared" in text and "[not waivable]" in text


def test_policy_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "policy", "show", "--repo-root", str(REPO_ROOT), "--today", "2026-11-23")
    assert code == 0
    assert out.startswith("policies: policies/\n  policies/org.yaml\n  policies/waivers.yaml\n")
    assert "  QG203 for smollm2-135m: expires in 189 days (2027-05-31), owner team-platform" in out
    code, out, _ = _run(capsys, "policy", "show", "--repo-root", str(REPO_ROOT), "--today", "2026-11-23",
                        "--spec", str(REPO_ROOT / "models" / "search-ranker.yaml"))
    assert "  QG205 constraint.throughput-fast-kernels: deny, audit (enforced from 2027-02-01)" in out
    assert '"inconclusive": "block"' in out


def test_explain_prints_the_docs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", "QG501")
    assert code == 0
    assert out == builtin_rules()["QG501"].explain()
    assert out.startswith("QG501 baseline.pinned (deny)\n\nThe baseline is pinned")
    for heading in ("\n\nWhy is this bad?\n", "\n\nExample\n", "\n\nUse instead\n"):
        assert heading in out
    assert _run(capsys, "explain", "waiver.expired")[1].startswith("QG004 waiver.expired (deny)")
    code, _, err = _run(capsys, "explain", "qg7o1")
    assert code == 2
    assert err.startswith("gate: error: Unknown rule 'QG7O1'. Did you mean 'QG701'?")


def test_docs_rules_md_is_current() -> None:
    path = REPO_ROOT / "docs" / "rules.md"
    assert path.read_text(encoding="utf-8") == rules_markdown(), (
        "docs/rules.md is stale: run `gate policy rules --format markdown > docs/rules.md`"
    )


@pytest.mark.parametrize("spec", EXAMPLES)
def test_examples_pass_the_shipped_policies(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", str(REPO_ROOT / spec), "--format", "json", "--repo-root", str(REPO_ROOT))
    result = json.loads(out)
    assert [f["rule_id"] for f in result["findings"] if f["severity"] == "deny"] == []
    assert code == 0


def test_demo_spec_carries_the_awq_on_cpu_waiver(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = _run(capsys, "check", str(REPO_ROOT / "models" / "smollm2-135m.yaml"), "--format", "json",
                        "--repo-root", str(REPO_ROOT))
    [qg203] = [f for f in json.loads(out)["findings"] if f["rule_id"] == "QG203"]
    assert qg203["waived"] is True
    assert qg203["waiver"]["owner"] == "team-platform"
    assert qg203["waiver"]["reason"].startswith("Demo model: the AWQ w4 GPU serving default is evaluated on a CPU")


def test_shipped_policy_denies_the_test_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", str(HERE / "data" / "denied-spec.yaml"), "--format", "json",
                        "--repo-root", str(REPO_ROOT))
    assert code == 1
    denied = sorted(f["rule_id"] for f in json.loads(out)["findings"] if f["severity"] == "deny")
    assert denied == ["ORG001", "ORG002", "ORG003", "QG304", "QG403", "QG501"]
