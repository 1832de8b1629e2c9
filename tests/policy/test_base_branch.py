"""Base-branch policies: a pull request that loosens a policy is still judged by the base branch's."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gate.cli import main
from gate.options import StaticOptions
from gate.policy.engine import load_policy_set
from tests.policy.helpers import HERE, write_policies

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: a strict policy and a passing spec; branch `pr`: loosens the policy and breaks the spec."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    write_policies(root / "policies", org="rules:\n  - {rule: QG304, params: {max_age_days: 90}}\n")
    (root / "models").mkdir()
    shutil.copy(HERE / "base_spec.yaml", root / "models" / "case.yaml")
    calibration = root / "data" / "calibration" / "case.jsonl"  # QG305/QG306 read it
    calibration.parent.mkdir(parents=True)
    calibration.write_text('{"text": "a calibration sample"}\n', encoding="utf-8")
    digest = hashlib.sha256(calibration.read_bytes()).hexdigest()
    (root / "models" / "case.yaml").write_text((HERE / "base_spec.yaml").read_text().replace("a" * 64, digest))
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "checkout", "-q", "-b", "pr")
    write_policies(root / "policies", org="rules:\n  - {rule: QG501, enabled: false}\n  - {rule: QG304, params: {max_age_days: 3650}}\n")
    spec = (root / "models" / "case.yaml").read_text()
    spec = spec.replace("revision: 0123456789abcdef0123456789abcdef01234567", "revision: main")
    spec = spec.replace("collected: 2026-10-01", "collected: 2024-06-01")
    (root / "models" / "case.yaml").write_text(spec)
    _git(root, "commit", "-q", "-am", "loosen the policy")
    return root


def _check(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, object]]:
    code = main(["check", str(repo / "models" / "case.yaml"), "--format", "json", "--repo-root", str(repo), *extra])
    out = capsys.readouterr().out
    result = json.loads(out)  # one spec: one GateResult object
    assert isinstance(result, dict)
    return code, result


def test_loosened_pr_policy_passes_only_when_read_from_the_pr(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _check(repo, capsys)
    assert code == 0  # the working tree's (PR's) policies let it through


def test_base_branch_policies_still_deny(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = _check(repo, capsys, "--policies-from", "main")
    assert code == 1
    findings = result["findings"]
    assert isinstance(findings, list)
    assert sorted((f["rule_id"], f["severity"]) for f in findings) == [("QG304", "deny"), ("QG501", "deny")]
    stale = next(f for f in findings if f["rule_id"] == "QG304")
    age = (dt.date.today() - dt.date(2024, 6, 1)).days
    assert stale["message"] == (
        f"calibration.collected: 2024-06-01 is {age} days old, over the policy's 90-day freshness window"
    )
    assert stale["policy"] == "main:policies/org.yaml"


def test_reading_a_ref_never_touches_the_working_tree(repo: Path) -> None:
    (repo / "policies" / "org.yaml").write_text("not: [valid")  # a broken working copy is irrelevant
    ps = load_policy_set(StaticOptions(repo_root=repo, policies_ref="main"))
    assert ps.files == ("main:policies/org.yaml",)
    assert ps.source == "main:policies/"
    [entry] = ps.entries["QG304"]
    assert entry.setting.params == {"max_age_days": 90}
    assert str(entry.location) == "main:policies/org.yaml:5:5"


def test_unknown_ref_is_bad_input(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", str(repo / "models" / "case.yaml"), "--repo-root", str(repo), "--policies-from", "nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gate: error: git ref 'nope' not found in {repo}\n")


def test_ref_without_policies_uses_builtin_defaults(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("x")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "init")
    ps = load_policy_set(StaticOptions(repo_root=root, policies_ref="main"))
    assert (ps.files, ps.entries) == ((), {})


def test_policies_at_a_ref_come_in_file_name_order_like_the_working_tree(tmp_path: Path) -> None:
    """Parameters merge in file-name order, so `--policies-from` must read files in that order too
    (git ls-tree lists `mode type hash<TAB>path`: sorting whole records would order by blob hash)."""
    from gate.policy.sources import files_from_dir, files_from_ref

    root = tmp_path / "repo"
    (root / "policies").mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    names = ["a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml"]
    for name in names:
        (root / "policies" / name).write_text(f"# {name}\n" + "x" * len(name) * 7 + name)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "policies")
    hashes = [line.split()[2] for line in _git(root, "ls-tree", "main", "policies/").splitlines()]
    assert hashes != sorted(hashes)  # blob-hash order differs from name order in this fixture
    at_ref = [f.shown for f in files_from_ref(root, "main")]
    assert at_ref == [f"main:policies/{n}" for n in names]
    assert [Path(f.shown).name for f in files_from_dir(root / "policies")] == names
