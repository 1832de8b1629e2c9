"""The CI fan-out: runner labels from target hardware, check-result filtering, GitHub outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.ci.changes import SelectedSpec, select_specs
from gate.ci.matrix import artifact_name, build_fan_out, load_fan_out, runner_labels
from gate.cli import main
from gate.errors import InputError
from gate.plan.catalog import load_catalog
from gate.report import ReportFormat, render
from tests.ci.test_changes import POLICY, commit, make_repo, spec_text, write
from tests.report.samples import error_check


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def test_runner_labels_from_the_catalog() -> None:
    catalog = load_catalog()
    assert runner_labels("nvidia-l4", catalog) == ("self-hosted", "gpu", "nvidia-l4")
    assert runner_labels("cpu-x86-avx2", catalog) == ("self-hosted", "cpu", "cpu-x86-avx2")
    assert runner_labels("nvidia-b200", catalog) == ("self-hosted", "gpu")
    assert runner_labels(None, catalog) == ("self-hosted", "gpu")


def test_artifact_names_are_safe() -> None:
    assert artifact_name("models/teams/a b:c.yaml") == "result-models_teams_a_b_c.yaml"


def test_plan_from_changes(repo: Path) -> None:
    write(repo, "policies/org.yaml", POLICY.replace("min_samples: 64", "min_samples: 128"))  # applies to all specs
    commit(repo)
    changes = select_specs(repo, "main")
    plan = build_fan_out(changes, changes.selected, repo, load_catalog())
    assert plan.matrix() == {"include": [
        {"spec": "models/alpha.yaml", "name": "alpha", "hardware": "nvidia-l4",
         "runs_on": ["self-hosted", "gpu", "nvidia-l4"], "artifact": "result-models_alpha.yaml",
         "reasons": ["policy changed: policies/org.yaml (rules entry for QG301 changed for all specs)"]},
        {"spec": "models/beta.yaml", "name": "beta", "hardware": "cpu-x86-avx2",
         "runs_on": ["self-hosted", "cpu", "cpu-x86-avx2"], "artifact": "result-models_beta.yaml",
         "reasons": ["policy changed: policies/org.yaml (rules entry for QG301 changed for all specs)"]},
    ]}
    outputs = plan.github_outputs().splitlines()
    assert outputs[1:] == ["count=2", 'specs=["models/alpha.yaml","models/beta.yaml"]', "deleted=[]"]
    assert json.loads(outputs[0].removeprefix("matrix=")) == plan.matrix()


def test_specs_blocked_by_gate_check_are_skipped(repo: Path) -> None:
    blocked = error_check("models/alpha.yaml")
    selected = [SelectedSpec("models/alpha.yaml", ("spec edited",)), SelectedSpec("models/beta.yaml", ("x",))]
    plan = build_fan_out(None, selected, repo, load_catalog(), [blocked])
    assert [e.spec for e in plan.entries] == ["models/beta.yaml"]
    assert plan.skipped[0].spec == "models/alpha.yaml"
    assert plan.skipped[0].reason == (
        "gate check: error (models/alpha.yaml:3:1: quantization.bits: required key is missing)"
    )


def test_unloadable_spec_gets_default_labels(repo: Path) -> None:
    write(repo, "models/alpha.yaml", "kind: [\n")
    plan = build_fan_out(None, [SelectedSpec("models/alpha.yaml", ("spec edited",))], repo, load_catalog())
    assert plan.entries[0].runs_on == ("self-hosted", "gpu")
    assert plan.entries[0].name == "alpha"


def run_plan(repo: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["plan", "--repo-root", str(repo), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_zero_specs_and_deleted(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "models/beta.yaml").unlink()
    commit(repo)
    outputs = tmp_path / "github_output"
    code, out, err = run_plan(repo, "--changed-since", "main", "--github-output", str(outputs), capsys=capsys)
    assert code == 0
    assert json.loads(out) == {"plan_version": "1", "ref": "main", "count": 0, "include": [],
                               "deleted": [{"path": "models/beta.yaml", "renamed_to": None}],
                               "skipped": [], "unreadable": [], "notes": []}
    assert err == "gate plan: no spec to run since main\n"
    assert outputs.read_text() == 'matrix={"include":[]}\ncount=0\nspecs=[]\ndeleted=["models/beta.yaml"]\n'


def test_cli_formats(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha", hardware="nvidia-h100"))
    commit(repo)
    code, out, _ = run_plan(repo, "--changed-since", "main", "--format", "paths", capsys=capsys)
    assert (code, out) == (0, "models/alpha.yaml\n")
    _, out, _ = run_plan(repo, "--changed-since", "main", "--format", "matrix", capsys=capsys)
    assert json.loads(out)["include"][0]["runs_on"] == ["self-hosted", "gpu", "nvidia-h100"]
    _, out, _ = run_plan(repo, "--changed-since", "main", "--format", "text", capsys=capsys)
    assert out == ("models/alpha.yaml  runs-on: [self-hosted, gpu, nvidia-h100]  (spec edited)\n"
                   "1 spec(s) to run (changed since main)\n")
    _, out, _ = run_plan(repo, "--format", "paths", capsys=capsys)
    assert out == "models/alpha.yaml\nmodels/beta.yaml\n"


def test_cli_check_results_filter(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha") + "# edit\n")
    commit(repo)
    check = tmp_path / "check.json"
    check.write_text(render([error_check("models/alpha.yaml")], ReportFormat.json), encoding="utf-8")
    plan_path = tmp_path / "plan.json"
    code, _, _ = run_plan(repo, "--changed-since", "main", "--check-results", str(check), "--output", str(plan_path),
                          capsys=capsys)
    assert code == 0
    plan = load_fan_out(plan_path)
    assert plan.count == 0
    assert [s.spec for s in plan.skipped] == ["models/alpha.yaml"]


def test_cli_bad_ref(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_plan(repo, "--changed-since", "origin/main", capsys=capsys)
    assert code == 2
    assert err == (
        f"gate: error: git ref 'origin/main' not found in {repo}\n"
        "  Hint: fetch the base branch first (actions/checkout with `fetch-depth: 0`, or `git fetch origin main`), "
        "or pass the base commit's SHA (in GitHub Actions: `github.event.pull_request.base.sha`), or a full ref "
        "name such as refs/remotes/origin/main\n"
    )


def test_load_plan_errors(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"plan_version": "1", "include": [{"spec": "x"}]}', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_fan_out(path)
    assert err.value.message == "plan is missing 'name'"
    path.write_text('{"plan_version": "1", "incl', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_fan_out(path)
    assert str(err.value) == (
        f"{path}:1:23: not a valid plan: Unterminated string starting at\n"
        "  Hint: re-run `gate plan --format json` (a truncated upload?)"
    )
