"""Issue #20, attack 6: the base ref cannot be spoofed (the real `gate plan` / `gate check` CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.ci.test_changes import commit, git, make_repo, spec_text, write

GATE = str(Path(sys.executable).parent / "gate")


def test_gate_plan_and_check_refuse_a_tag_named_like_the_base_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha").replace("bits: 4", "bits: 8"))
    commit(repo)
    git(repo, "tag", "origin/main", "HEAD")
    expected = ("gate: error: git ref 'origin/main' is ambiguous: it names refs/tags/origin/main, "
                "refs/remotes/origin/main\n  Hint: pass the base commit's SHA (in GitHub Actions: "
                "`github.event.pull_request.base.sha`), or a full ref name such as refs/remotes/origin/main\n")
    for args in (["plan", "--changed-since", "origin/main"],
                 ["check", "models/alpha.yaml", "--policies-from", "origin/main", "--format", "json"]):
        proc = subprocess.run([GATE, *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False)
        assert (proc.returncode, proc.stderr) == (2, expected), args
    base = git(repo, "rev-parse", "refs/remotes/origin/main").strip()
    proc = subprocess.run([GATE, "plan", "--changed-since", base, "--format", "paths"], cwd=repo,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, "models/alpha.yaml\n"), proc.stderr
