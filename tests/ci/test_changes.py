"""Change detection on real temporary git repositories (edits, renames, deletions, references)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gate.ci.changes import FileChange, RemovedSpec, parse_name_status, select_specs
from gate.errors import InputError

SPEC = """\
apiVersion: quant-gate/v1
kind: ModelSpec
metadata: {{name: {name}, owner: {owner}, tier: {tier}}}
model:
  path: weights/{name}
  lockfile: weights/{name}.lock.json
constraint:
  kind: memory
  statement: "fit the target"
  target: {{hardware: {hardware}, memory_gb: 24, context: 2048, batch: 1}}
quantization: {{method: awq, bits: 4, group_size: 128, format: awq-gemm}}
calibration: {{source: data/{calib}.jsonl, samples: 128, max_seq_len: 256}}
quality:
  metrics:
    - {{task: {task}, metric: acc, max_drop: 1.0}}
"""

TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/{name}.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""

POLICY = """\
apiVersion: quant-gate/v1
kind: Policy
metadata: {name: org}
rules:
  - rule: QG301
    params: {min_samples: 64}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def spec_text(name: str, hardware: str = "nvidia-l4", calib: str = "shared", task: str = "support_qa", *,
              owner: str = "team-a", tier: str = "standard") -> str:
    return SPEC.format(name=name, hardware=hardware, calib=calib, task=task, owner=owner, tier=tier)


def make_repo(root: Path) -> Path:
    """main: two specs (alpha on an L4, beta on a CPU), weights, calibration data, a local task, a policy."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha"))
    write(repo, "models/beta.yaml", spec_text("beta", hardware="cpu-x86-avx2", task="qg_local"))
    write(repo, "models/locks/README.md", "lockfiles\n")
    write(repo, "weights/alpha/model.safetensors", "a")
    write(repo, "weights/alpha.lock.json", "{}")
    write(repo, "weights/beta/model.safetensors", "b")
    write(repo, "weights/beta.lock.json", "{}")
    write(repo, "data/alpha.jsonl", '{"text": "a"}\n')
    write(repo, "data/shared.jsonl", '{"text": "s"}\n')
    write(repo, "tasks/qg_local.yaml", TASK.format(name="qg_local"))
    write(repo, "tasks/data/qg_local.jsonl", '{"question": "q", "choices": ["a"], "answer": 0}\n')
    write(repo, "policies/org.yaml", POLICY)
    write(repo, "README.md", "models\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def commit(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def selected(repo: Path) -> dict[str, tuple[str, ...]]:
    return {s.path: s.reasons for s in select_specs(repo, "main").selected}


def test_nothing_changed(repo: Path) -> None:
    write(repo, "README.md", "models, documented\n")
    commit(repo)
    changes = select_specs(repo, "main")
    assert changes.selected == ()
    assert changes.deleted == ()
    assert changes.changes == (FileChange(status="M", path="README.md"),)


def test_edited_and_added_specs(repo: Path) -> None:
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha").replace("bits: 4", "bits: 8"))
    write(repo, "models/teams/gamma.yml", spec_text("gamma"))
    commit(repo)
    assert selected(repo) == {"models/alpha.yaml": ("spec edited",), "models/teams/gamma.yml": ("spec added",)}


def test_referenced_files(repo: Path) -> None:
    write(repo, "weights/alpha/model.safetensors", "a2")
    write(repo, "weights/beta.lock.json", '{"v": 2}')
    write(repo, "data/shared.jsonl", '{"text": "s2"}\n')
    write(repo, "tasks/data/qg_local.jsonl", '{"question": "q2", "choices": ["a"], "answer": 0}\n')
    commit(repo)
    assert selected(repo) == {
        "models/alpha.yaml": ("weights changed: weights/alpha/model.safetensors",),
        "models/beta.yaml": (
            "lockfile changed: weights/beta.lock.json",
            "calibration data changed: data/shared.jsonl",
            "task qg_local changed: tasks/data/qg_local.jsonl",
        ),
    }


def test_weights_prefix_does_not_match_a_sibling(repo: Path) -> None:
    write(repo, "weights/alpha-v2/model.safetensors", "x")
    commit(repo)
    assert selected(repo) == {}


def test_unscoped_policy_change_selects_every_spec(repo: Path) -> None:
    # Scoped and metadata-only policy changes: tests/ci/test_policy_changes.py.
    write(repo, "policies/org.yaml", POLICY.replace("min_samples: 64", "min_samples: 128"))
    commit(repo)
    why = ("policy changed: policies/org.yaml (rules entry for QG301 changed for all specs)",)
    assert selected(repo) == {"models/alpha.yaml": why, "models/beta.yaml": why}


def test_rename_spec_and_rename_calibration(repo: Path) -> None:
    git(repo, "mv", "models/alpha.yaml", "models/alpha-v2.yaml")
    git(repo, "mv", "data/shared.jsonl", "data/shared-2026.jsonl")
    write(repo, "models/beta.yaml", spec_text("beta", hardware="cpu-x86-avx2", calib="shared-2026", task="qg_local"))
    commit(repo)
    changes = select_specs(repo, "main")
    assert FileChange(status="R", old_path="models/alpha.yaml", path="models/alpha-v2.yaml") in changes.changes
    assert {s.path: s.reasons for s in changes.selected} == {
        "models/alpha-v2.yaml": ("spec renamed from models/alpha.yaml",),
        "models/beta.yaml": ("spec edited", "calibration data changed: data/shared-2026.jsonl"),
    }
    assert changes.deleted == ()


def test_deleted_spec_is_reported_not_selected(repo: Path) -> None:
    git(repo, "rm", "-q", "models/beta.yaml")
    (repo / "archive").mkdir()
    git(repo, "mv", "models/alpha.yaml", "archive/alpha.yaml")
    commit(repo)
    changes = select_specs(repo, "main")
    assert changes.selected == ()
    assert changes.deleted == (
        RemovedSpec(path="models/alpha.yaml", renamed_to="archive/alpha.yaml"),
        RemovedSpec(path="models/beta.yaml"),
    )


def test_broken_spec_that_changed_is_selected_and_unchanged_broken_spec_is_listed(repo: Path) -> None:
    write(repo, "models/alpha.yaml", "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata: [oops\n")
    commit(repo, "break alpha")
    git(repo, "checkout", "-q", "-b", "pr2")
    write(repo, "data/alpha.jsonl", '{"text": "a2"}\n')
    commit(repo)
    changes = select_specs(repo, "pr")
    assert changes.selected == ()
    assert changes.unreadable == ("models/alpha.yaml",)
    assert {s.path for s in select_specs(repo, "main").selected} == {"models/alpha.yaml"}


def test_diff_is_against_the_merge_base(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    write(repo, "models/beta.yaml", spec_text("beta", hardware="cpu-x86-avx2", task="qg_local") + "# main moved on\n")
    commit(repo, "main moves")
    git(repo, "checkout", "-q", "pr")
    write(repo, "data/alpha.jsonl", '{"text": "a3"}\n')
    commit(repo)
    assert selected(repo) == {"models/alpha.yaml": ("calibration data changed: data/alpha.jsonl",)}


def test_unknown_ref(repo: Path) -> None:
    with pytest.raises(InputError) as err:
        select_specs(repo, "origin/nope")
    assert str(err.value) == (
        f"git ref 'origin/nope' not found in {repo}\n"
        "  Hint: fetch the base branch first (actions/checkout with `fetch-depth: 0`, or `git fetch origin nope`), "
        "or pass the base commit's SHA (in GitHub Actions: `github.event.pull_request.base.sha`), or a full ref "
        "name such as refs/remotes/origin/main"
    )


SHA_HINT = ("pass the base commit's SHA (in GitHub Actions: `github.event.pull_request.base.sha`), or a full ref "
            "name such as refs/remotes/origin/main")


def test_a_tag_shadowing_the_base_branch_is_refused(repo: Path) -> None:
    """Issue #20, attack 6: `git tag origin/main HEAD` made the diff empty (0 specs, no policy change)."""
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha").replace("bits: 4", "bits: 8"))
    commit(repo)
    assert [s.path for s in select_specs(repo, "origin/main").selected] == ["models/alpha.yaml"]
    git(repo, "tag", "origin/main", "HEAD")
    with pytest.raises(InputError) as err:
        select_specs(repo, "origin/main")
    assert err.value.message == "git ref 'origin/main' is ambiguous: it names refs/tags/origin/main, refs/remotes/origin/main"
    assert err.value.hint == SHA_HINT
    base = git(repo, "rev-parse", "main").strip()
    assert [s.path for s in select_specs(repo, base).selected] == ["models/alpha.yaml"]
    assert [s.path for s in select_specs(repo, "refs/remotes/origin/main").selected] == ["models/alpha.yaml"]


def test_a_branch_named_like_a_commit_prefix_is_refused(repo: Path) -> None:
    base = git(repo, "rev-parse", "main").strip()
    git(repo, "branch", base[:8], "HEAD")
    with pytest.raises(InputError) as err:
        select_specs(repo, base[:8])
    assert err.value.message == (f"git ref '{base[:8]}' is ambiguous: it names refs/heads/{base[:8]} and an "
                                 "abbreviated commit SHA")


@pytest.mark.parametrize("ref", ["main~1", "main^", "@{-1}", "main..pr", "-p", "main:models"])
def test_revision_expressions_are_refused(repo: Path, ref: str) -> None:
    with pytest.raises(InputError) as err:
        select_specs(repo, ref)
    assert err.value.message == f"{ref!r} is not a plain git ref name or commit SHA"


def test_replace_objects_do_not_swap_the_base(repo: Path) -> None:
    """`git replace` (a pushable refs/replace/ ref) would make main's commit read as HEAD's."""
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha").replace("bits: 4", "bits: 8"))
    commit(repo)
    git(repo, "replace", git(repo, "rev-parse", "main").strip(), git(repo, "rev-parse", "HEAD").strip())
    assert [s.path for s in select_specs(repo, "main").selected] == ["models/alpha.yaml"]


def test_no_common_history(repo: Path) -> None:
    git(repo, "checkout", "-q", "--orphan", "lonely")
    commit(repo, "unrelated")
    with pytest.raises(InputError) as err:
        select_specs(repo, "main")
    assert err.value.message == "'main' and HEAD have no common history (merge base)"
    assert err.value.hint == "the clone is probably shallow: use actions/checkout with `fetch-depth: 0`"


def test_parse_name_status_with_odd_names() -> None:
    out = "M\0models/a b.yaml\0R087\0old\tname.yaml\0new\nname.yaml\0D\0gone.yaml\0"
    assert parse_name_status(out) == [
        FileChange(status="M", path="models/a b.yaml"),
        FileChange(status="R", old_path="old\tname.yaml", path="new\nname.yaml"),
        FileChange(status="D", path="gone.yaml"),
    ]



def test_a_task_edit_that_makes_it_unsafe_still_selects_its_spec(repo: Path) -> None:
    """The spec must be checked (and blocked by QG532) when its task turns hostile, not dropped."""
    write(repo, "tasks/qg_local.yaml", "process_docs: !function utils.f\n" + TASK.format(name="qg_local"))
    commit(repo)
    assert selected(repo) == {"models/beta.yaml": ("task qg_local changed: tasks/qg_local.yaml",)}


def test_an_included_task_file_is_followed(repo: Path) -> None:
    write(repo, "tasks/_common.yml", "output_type: multiple_choice\n")
    write(repo, "tasks/qg_local.yaml", "include: _common.yml\n" + TASK.format(name="qg_local"))
    commit(repo, "split the task")
    git(repo, "update-ref", "refs/heads/main", "HEAD")
    write(repo, "tasks/_common.yml", "output_type: multiple_choice\nnum_fewshot: 0\n")
    commit(repo)
    assert selected(repo) == {"models/beta.yaml": ("task qg_local changed: tasks/_common.yml",)}
