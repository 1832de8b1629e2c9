"""`.ci/run` runs exactly the README's test command, offline, and treats "no tests" as failure."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CI_RUN = REPO_ROOT / ".ci" / "run"
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 && "
    ".venv/bin/pip install -q -e '.[ml,dev]' && .venv/bin/pytest -q"
)


def test_readme_documents_the_test_command() -> None:
    readme = REPO_ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not written yet")
    assert TEST_COMMAND in readme.read_text(encoding="utf-8").splitlines()


def test_ci_run_holds_the_command_verbatim() -> None:
    text = CI_RUN.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert re.findall(r'^TEST_COMMAND="(.*)"$', text, flags=re.M) == [TEST_COMMAND]
    assert CI_RUN.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"


FAKE_PYTHON3 = """#!/usr/bin/env bash
# Stands in for `python3 -m venv .venv`: a venv whose pip logs and whose pytest exits as told.
set -eu
[ "$1 $2 $3" = "-m venv .venv" ] || { echo "unexpected python3 call: $*" >&2; exit 9; }
mkdir -p .venv/bin
cat > .venv/bin/pip <<'PIP'
#!/usr/bin/env bash
echo "pip $*" >> "$CI_LOG"
PIP
cat > .venv/bin/pytest <<'PYTEST'
#!/usr/bin/env bash
echo "pytest $* cwd=$PWD offline=$HF_HUB_OFFLINE,$HF_DATASETS_OFFLINE,$TRANSFORMERS_OFFLINE" >> "$CI_LOG"
exit "$FAKE_PYTEST_RC"
PYTEST
chmod +x .venv/bin/pip .venv/bin/pytest
"""


def _run_ci(tmp_path: Path, pytest_rc: int) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(CI_RUN, repo / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON3)
    fake.chmod(0o755)
    log = tmp_path / "ci.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CI_LOG": str(log),
        "FAKE_PYTEST_RC": str(pytest_rc),
        "HOME": str(tmp_path),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return proc, lines, repo.resolve()


def test_ci_run_runs_the_command_from_the_repo_root_offline(tmp_path: Path) -> None:
    proc, lines, repo = _run_ci(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"+ {TEST_COMMAND}\n"
    assert lines == [
        "pip install -q torch==2.13.0",
        "pip install -q -e .[ml,dev]",
        f"pytest -q cwd={repo} offline=1,1,1",
    ]


@pytest.mark.parametrize(("pytest_rc", "ci_rc"), [(1, 1), (2, 2), (5, 1)])
def test_ci_run_fails_when_pytest_fails_or_collects_nothing(tmp_path: Path, pytest_rc: int, ci_rc: int) -> None:
    proc, lines, _ = _run_ci(tmp_path, pytest_rc)
    assert proc.returncode == ci_rc
    assert lines[-1].startswith("pytest -q ")
    if pytest_rc == 5:
        assert proc.stderr == "ci: pytest collected no tests (exit 5); the suite is never empty, so this is a failure\n"


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.needs import unavailable

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no tool$"):
        unavailable("no tool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^no tool; CI must run these tests \(\.ci/run installs what they need\)$"):
        unavailable("no tool")
