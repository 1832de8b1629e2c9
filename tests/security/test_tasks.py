"""Issue #20, attacks 1-4: a pull request's task YAMLs are untrusted. Each attack is committed into a
real repository with a canary file; `gate check` (the real CLI, in a subprocess with a deadline) must
block with the named rule at the task file's line, nothing may execute, and nothing may hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gate.errors import SourceLocation
from gate.evaluate.interface import TaskError
from gate.evaluate.suites import materialize, resolve_task
from tests.ci.test_changes import TASK, commit, make_repo, spec_text, write

GATE = [str(Path(sys.executable).parent / "gate")]
DEADLINE_S = 60


def gate(repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run([*GATE, *args], cwd=repo, capture_output=True, text=True, timeout=DEADLINE_S, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    return proc, time.monotonic() - start


def check(repo: Path, spec: str = "models/alpha.yaml") -> tuple[int, list[dict[str, Any]], float]:
    proc, seconds = gate(repo, "check", spec, "--format", "json")
    result = json.loads(proc.stdout)
    findings = [f for f in result["findings"] if f["rule_id"].startswith("QG53")]
    return proc.returncode, findings, seconds


def shown(findings: list[dict[str, Any]]) -> list[str]:
    return [f"{SourceLocation(f['location']['path'], f['location']['line'], f['location']['col'])}: "
            f"{f['rule_id']} {f['message']}" for f in findings]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """alpha evaluates the repository task `evil` (tasks/evil.yaml, written by each test)."""
    repo = make_repo(tmp_path)
    write(repo, "models/alpha.yaml", spec_text("alpha", calib="alpha", task="evil"))
    write(repo, "tasks/data/evil.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n')
    subprocess.run([*GATE, "lock", "models/alpha.yaml"], cwd=repo, check=True, capture_output=True, timeout=DEADLINE_S)
    commit(repo, "lock")
    return repo


def evil_task(**fields: str) -> str:
    text = TASK.format(name="evil")
    for key, value in fields.items():
        text = "\n".join(f"{key}: {value}" if line.startswith(f"{key}:") else line for line in text.splitlines()) + "\n"
    return text


def test_jinja_in_doc_to_text_is_a_finding_and_never_runs(repo: Path, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    payload = f"\"{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}{{{{question}}}}\""
    write(repo, "tasks/evil.yaml", evil_task(doc_to_text=payload))
    commit(repo)
    code, findings, _ = check(repo)
    assert code == 1
    assert shown(findings) == [
        "tasks/evil.yaml:8:1: QG533 task 'evil': doc_to_text: Jinja beyond plain field substitution "
        "(`{{ cycler.__init__.__globals__.os.system`...)"
    ]
    assert not canary.exists()


def test_vouched_templates_still_render_in_a_sandbox(repo: Path, tmp_path: Path) -> None:
    """Even a template a policy vouched for (QG533 `trusted`) cannot escape: lm-eval builds the task
    (rendering doc_to_text on a document, as it does while planning) in Jinja's sandbox."""
    from jinja2.exceptions import SecurityError
    from lm_eval.tasks import TaskManager, get_task_dict

    canary = tmp_path / "PWNED"
    payload = f"\"{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}{{{{question}}}}\""
    write(repo, "tasks/evil.yaml", evil_task(doc_to_text=payload))
    source = resolve_task("evil", repo)  # a template issue alone does not stop resolution
    materialize([source], tmp_path / "include")
    with pytest.raises(SecurityError):
        get_task_dict(["evil"], TaskManager(include_path=str(tmp_path / "include"), include_defaults=False))
    assert not canary.exists()


def test_function_smuggled_through_an_absolute_include(repo: Path, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    write(repo, "tasks/evil_utils.py", f"import pathlib\npathlib.Path({str(canary)!r}).touch()\n"
                                       "def process_docs(ds):\n    return ds\n")
    write(repo, "tasks/evil_inc.yml", "process_docs: !function evil_utils.process_docs\n")
    write(repo, "tasks/evil.yaml", f"include: {repo / 'tasks' / 'evil_inc.yml'}\n" + evil_task())
    commit(repo)
    code, findings, _ = check(repo)
    assert code == 1
    assert shown(findings) == [
        f"tasks/evil.yaml:1:1: QG531 task 'evil': include: '{repo / 'tasks' / 'evil_inc.yml'}' is an absolute path",
        "tasks/evil_utils.py: QG532 task 'evil_utils.py': a Python file in the task directory (task code from a "
        "pull request)",
    ]
    with pytest.raises(TaskError) as info:
        resolve_task("evil", repo)
    assert info.value.message == (f"task 'evil': include: '{repo / 'tasks' / 'evil_inc.yml'}' is an absolute path "
                                  "(QG531)")
    assert not canary.exists()


def test_function_through_a_relative_include_is_read_and_refused(repo: Path, tmp_path: Path) -> None:
    write(repo, "tasks/evil_inc.yml", "doc_to_text: '{{question}}'\nprocess_docs: !function evil_utils.process_docs\n")
    write(repo, "tasks/evil.yaml", "include: evil_inc.yml\n" + evil_task())
    write(repo, "tasks/loop.yaml", "include: loop.yaml\ntask: loop\n")
    code, findings, _ = check(repo)
    assert code == 1
    assert shown(findings) == [
        "tasks/evil_inc.yml:2:15: QG532 task 'evil': `!function` imports Python from the pull request",
    ]


@pytest.mark.parametrize(("hook", "line"), [("class", "class: !function evil.Task"), ("process", "process_results: x"),
                                            ("unsafe", "unsafe_code: true")])
def test_code_hooks_are_refused(repo: Path, hook: str, line: str) -> None:
    write(repo, "tasks/evil.yaml", evil_task() + line + "\n")
    _, findings, _ = check(repo)
    assert [f["rule_id"] for f in findings] == ["QG532"]
    assert findings[0]["location"]["line"] == 13


@pytest.mark.parametrize(("value", "reason"), [
    ("pw.jsonl", "resolves through a symlink to /etc/passwd, outside the repository root"),
    ("/etc/passwd", "is an absolute path"),
    ("../../../../../../etc/passwd", "escapes the repository root through '..'"),
])
def test_task_data_is_confined_to_the_repository(repo: Path, value: str, reason: str) -> None:
    (repo / "tasks" / "pw.jsonl").symlink_to("/etc/passwd")
    write(repo, "tasks/evil.yaml", evil_task().replace("test: data/evil.jsonl", f"test: {value}"))
    commit(repo)
    code, findings, _ = check(repo)
    assert code == 1
    assert shown(findings) == [f"tasks/evil.yaml:5:5: QG534 task 'evil': dataset_kwargs.data_files.test: "
                               f"{value!r} {reason}"]
    with pytest.raises(TaskError):
        resolve_task("evil", repo)


def test_a_task_symlinked_to_dev_zero_ends_fast(repo: Path) -> None:
    write(repo, "tasks/evil.yaml", evil_task())
    (repo / "tasks" / "zzz.yaml").symlink_to("/dev/zero")
    commit(repo)
    code, findings, seconds = check(repo)
    assert code == 1
    assert shown(findings) == ["tasks/zzz.yaml: QG530 task 'zzz.yaml': resolves through a symlink to /dev/zero, "
                               "outside the task directory"]
    assert seconds < 30
    proc, seconds = gate(repo, "plan", "--changed-since", "main", "--format", "paths")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "models/alpha.yaml\n"
    assert seconds < 30


def test_a_fifo_in_the_task_directory_never_blocks(repo: Path) -> None:
    write(repo, "tasks/evil.yaml", evil_task())
    os.mkfifo(repo / "tasks" / "fifo.yaml")
    _, findings, seconds = check(repo)
    assert shown(findings) == ["tasks/fifo.yaml: QG530 task 'fifo.yaml': is not a regular file"]
    assert seconds < 30


def test_an_alias_bomb_in_a_task_ends_fast(repo: Path) -> None:
    bomb = "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]\n" for i in range(1, 12))
    write(repo, "tasks/evil.yaml", evil_task() + "l0: &l0 [x]\n" + bomb)
    code, findings, seconds = check(repo)
    assert code == 1
    assert shown(findings) == ["tasks/evil.yaml:13:5: QG530 task 'evil': anchors and aliases are not allowed "
                               "(found anchor `&l0`)"]
    assert seconds < 30


def test_a_repository_task_named_like_a_shipped_suite(repo: Path) -> None:
    write(repo, "tasks/evil.yaml", evil_task())
    write(repo, "tasks/easy.yaml", "task: qg_reasoning\ndataset_path: json\n")
    _, findings, _ = check(repo)
    assert shown(findings) == ["tasks/easy.yaml:1:1: QG530 task 'qg_reasoning': task: 'qg_reasoning' is the name of "
                               "a shipped suite (shipped suites cannot be replaced)"]


def test_a_plain_task_passes(repo: Path) -> None:
    write(repo, "tasks/evil.yaml", evil_task())
    _, findings, _ = check(repo)
    assert findings == []


def test_a_task_directory_linked_out_of_the_repository(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (repo / "tasks").rename(elsewhere)
    (elsewhere / "evil.yaml").write_text(evil_task())
    (repo / "tasks").symlink_to(elsewhere)
    _, findings, _ = check(repo)
    assert shown(findings) == [f"tasks: QG530 task 'tasks': the task directory resolves through a symlink to "
                               f"{elsewhere}, outside the repository root"]
    assert not resolve_task("evil", repo).local  # never read from there


@pytest.mark.parametrize(("entry", "message"), [
    ("metric: tasks/evil_metric", "metric_list[0].metric: 'tasks/evil_metric' is a path or a Hub repository, whose "
                                  "script lm-eval would load and run"),
    ("metric: bleu\n    hf_evaluate: true", "metric_list[0].hf_evaluate: loads and runs a metric script from the "
                                            "Hugging Face Hub"),
])
def test_a_metric_lm_eval_would_load_as_a_script(repo: Path, entry: str, message: str) -> None:
    write(repo, "tasks/evil.yaml", evil_task().replace("metric: acc", entry))
    _, findings, _ = check(repo)
    assert [f"{f['rule_id']} {f['message']}" for f in findings] == [f"QG532 task 'evil': {message}"]
    with pytest.raises(TaskError):
        resolve_task("evil", repo)
