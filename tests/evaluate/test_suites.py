"""Shipped suites and task resolution (no model needed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gate.evaluate.interface import TaskError
from gate.evaluate.suites import PERPLEXITY_TASK, SHIPPED_DIR, STRESS_TASKS, materialize, resolve_task
from gate.spec.models import StressSuite

REPO = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((SHIPPED_DIR / "data" / "MANIFEST.json").read_text())


def test_every_stress_suite_ships_its_task_and_no_other_task_ships() -> None:
    """``StressSuite`` (the spec enum) and the shipped task files are one list."""
    shipped = {p.stem for p in SHIPPED_DIR.glob("qg_*.yaml")}
    assert set(STRESS_TASKS) == set(StressSuite)
    assert shipped == {PERPLEXITY_TASK, *STRESS_TASKS.values()}
    assert set(MANIFEST["suites"]) == shipped


@pytest.mark.parametrize("name", ["qg_license_ppl", *STRESS_TASKS.values()])
def test_shipped_suites_resolve_with_their_manifest_sizes(name: str) -> None:
    source = resolve_task(name, None)
    assert source.shipped and source.local
    assert source.n_items == MANIFEST["suites"][name]["items"]
    assert hashlib.sha256(source.data_files[0].read_bytes()).hexdigest() == MANIFEST["suites"][name]["sha256"]
    data = source.config["dataset_kwargs"]["data_files"]["test"]  # type: ignore[index]
    assert Path(data).is_absolute() and Path(data).name == f"{name}.jsonl"


def test_suite_sizes_resolve_a_two_point_tolerance_with_pairing() -> None:
    from gate.spec.models import MetricTolerance
    from gate.verdict.sample_size import check_resolvable

    for task in ("qg_reasoning", "qg_instructions"):
        tol = MetricTolerance(task=task, metric="acc", max_drop=2.0)
        check = check_resolvable(tol, n_available=MANIFEST["suites"][task]["items"], confidence=0.95,
                                 assumed_discordance=0.10)
        assert check.resolvable, check.reason


@pytest.mark.skipif(not Path("/usr/share/common-licenses/GPL-3").is_file(), reason="needs Debian's base-files")
def test_committed_suite_data_matches_a_fresh_generation() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_suites.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_multiple_choice_item_is_well_formed() -> None:
    kinds = {t: resolve_task(t, None).config["output_type"] for t in STRESS_TASKS.values()}  # type: ignore[index]
    multiple_choice = [t for t, kind in kinds.items() if kind == "multiple_choice"]
    # qg_instructions_gen (generate_until) is checked in test_generation_suite.py
    assert multiple_choice == ["qg_reasoning", "qg_instructions", "qg_long_context"]
    for task in multiple_choice:
        lines = (SHIPPED_DIR / "data" / f"{task}.jsonl").read_text().splitlines()
        for line in lines:
            item = json.loads(line)
            assert len(item["choices"]) == len(set(item["choices"])) >= 2
            assert 0 <= item["answer"] < len(item["choices"])


def test_repo_task_data_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    (tmp_path / "tasks" / "data").mkdir(parents=True)
    (tmp_path / "tasks" / "data" / "mine.jsonl").write_text('{"q": 1}\n{"q": 2}\n\n')
    (tmp_path / "tasks" / "mine.yaml").write_text(
        "task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data/mine.jsonl\ntest_split: test\n"
    )
    source = resolve_task("mine", tmp_path)
    assert source.n_items == 2 and not source.shipped
    assert source.data_files == ((tmp_path / "tasks" / "data" / "mine.jsonl").resolve(),)
    materialize([source], tmp_path / "include")
    written = (tmp_path / "include" / "mine.yaml").read_text()
    assert str((tmp_path / "tasks" / "data" / "mine.jsonl").resolve()) in written



def _mine(root: Path, text: str = '{"q": 1}\n') -> None:
    (root / "tasks" / "data").mkdir(parents=True)
    (root / "tasks" / "data" / "mine.jsonl").write_text(text)
    (root / "tasks" / "mine.yaml").write_text(
        "task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data/mine.jsonl\ntest_split: test\n"
    )


def test_a_tasks_identity_does_not_depend_on_the_checkout_path(tmp_path: Path) -> None:
    """Runners check out at different paths: the same task (the key of shared baseline results) must hash alike."""
    for root in ("runner-a/repo", "runner-b/checkout/repo", "runner-c/repo"):
        _mine(tmp_path / root, '{"q": 2}\n' if root.startswith("runner-c") else '{"q": 1}\n')
    a, b, c = (resolve_task("mine", tmp_path / r) for r in ("runner-a/repo", "runner-b/checkout/repo", "runner-c/repo"))
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256  # other data, other identity

def test_missing_task_data_is_a_task_error(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "gone.yaml").write_text(
        "task: gone\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data/gone.jsonl\n"
    )
    with pytest.raises(TaskError) as info:
        resolve_task("gone", tmp_path)
    assert info.value.message == "task 'gone': data file tasks/data/gone.jsonl not found"
    assert info.value.hint == (
        "data_files paths are relative to the task file (tasks/gone.yaml); regenerate shipped data with "
        "`python scripts/make_suites.py`"
    )
    assert str(info.value.location) == "tasks/gone.yaml"


def test_function_tags_are_refused_at_the_tag(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "fn.yaml").write_text("task: fn\nprocess_results: !function utils.process\n")
    with pytest.raises(TaskError) as info:
        resolve_task("fn", tmp_path)
    assert info.value.message == "task 'fn': `!function` imports Python from the pull request (QG532)"
    assert info.value.hint == ("use lm-eval's built-in filters and metrics; code-bearing tasks ship with the gate "
                               "release the base branch pins")
    assert str(info.value.location) == "tasks/fn.yaml:2:18"


def test_a_repository_task_cannot_replace_a_shipped_suite(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "easy.yaml").write_text("task: qg_reasoning\ndataset_path: json\n")
    assert resolve_task("qg_reasoning", tmp_path).shipped


def test_includes_are_merged_before_lm_eval_sees_the_task(tmp_path: Path) -> None:
    (tmp_path / "tasks" / "data").mkdir(parents=True)
    (tmp_path / "tasks" / "data" / "x.jsonl").write_text('{"q": "a"}\n')
    (tmp_path / "tasks" / "base.yml").write_text(
        "dataset_path: json\ndataset_kwargs:\n  data_files: {test: data/x.jsonl}\ntest_split: test\n"
        "doc_to_text: '{{q}}'\noutput_type: loglikelihood_rolling\n")
    (tmp_path / "tasks" / "child.yaml").write_text("include: base.yml\ntask: child\ndoc_to_target: '{{q}}'\n")
    source = resolve_task("child", tmp_path)
    assert source.n_items == 1
    materialize([source], tmp_path / "include")
    written = YAML(typ="safe").load((tmp_path / "include" / "child.yaml").read_text())
    assert written == {"task": "child", "dataset_path": "json", "test_split": "test", "doc_to_text": "{{q}}",
                       "doc_to_target": "{{q}}", "output_type": "loglikelihood_rolling",
                       "dataset_kwargs": {"data_files": {"test": str(tmp_path / "tasks" / "data" / "x.jsonl")}}}


def test_materialize_makes_lm_eval_render_in_a_sandbox(tmp_path: Path) -> None:
    import lm_eval.utils
    from jinja2.exceptions import SecurityError

    materialize([], tmp_path / "include")
    canary = tmp_path / "PWNED"
    with pytest.raises(SecurityError):
        lm_eval.utils.apply_template(f"{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}", {})
    assert not canary.exists()
    assert lm_eval.utils.apply_template("{{q}}!", {"q": "hi"}) == "hi!"


def test_unknown_local_name_passes_through_as_a_standard_task() -> None:
    source = resolve_task("hellaswag", None)
    assert not source.local and source.n_items is None and source.config is None


@pytest.mark.slow  # lm-eval indexes its ~15k built-in tasks first (~20 s idle, minutes under load)
def test_unknown_task_offline_is_a_task_error_with_a_suggestion(tmp_path: Path) -> None:
    from gate.errors import SourceLocation
    from gate.evaluate.harness import count_items

    source = resolve_task("qg_reasonin", None)
    with pytest.raises(TaskError) as info:
        count_items(source, tmp_path / "inc", SourceLocation("m.yaml", 3, 7))
    assert info.value.message.startswith(
        "task 'qg_reasonin' is not a shipped or repository task, and lm-eval could not load it ("
    )
    assert info.value.hint == (
        "did you mean `qg_reasoning`? shipped suites: qg_instructions, qg_instructions_gen, qg_license_ppl, "
        "qg_long_context, qg_reasoning; a standard lm-eval task needs its dataset online or in the local "
        "Hugging Face cache"
    )
    assert str(info.value.location) == "m.yaml:3:7"


def test_include_cycles_and_depth_are_refused_at_the_include(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text("task: a\ninclude: b.yml\n")
    (tmp_path / "tasks" / "b.yml").write_text("include: a.yaml\n")
    with pytest.raises(TaskError) as info:
        resolve_task("a", tmp_path)
    assert info.value.message == "task 'a': include: 'a.yaml' includes itself (a cycle) (QG531)"
    assert str(info.value.location) == "tasks/b.yml:1:1"
    for level in range(12):
        (tmp_path / "tasks" / f"d{level}.yml").write_text(f"include: d{level + 1}.yml\n")
    (tmp_path / "tasks" / "deep.yaml").write_text("task: deep\ninclude: d0.yml\n")
    with pytest.raises(TaskError) as info:
        resolve_task("deep", tmp_path)
    assert info.value.message == "task 'deep': include: 'd8.yml' nests includes more than 8 levels deep (QG531)"
