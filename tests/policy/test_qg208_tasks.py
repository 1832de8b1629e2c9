"""QG208 reads a repository task's ``output_type`` statically (the task scan: ruamel, positions,
includes merged), so a multiple-choice repository task on llama.cpp is refused by `gate check` at
the line that sets it, before anything is served."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.errors import SourceLocation
from tests.ci.test_changes import SPEC, make_repo, write

NO_LOGPROBS = ("llama-server returns no prompt logprobs (it ignores `echo`: ggml-org/llama.cpp#8942, the echo PR "
               "#15189 is not merged in the pinned release)")

TEMPLATE = """\
dataset_path: json
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
"""


def _spec(task: str, metric: str = "acc") -> str:
    text = SPEC.format(name="alpha", owner="team-a", tier="standard", hardware="cpu-x86-avx2", calib="alpha", task=task)
    text = text.replace("quantization: {method: awq, bits: 4, group_size: 128, format: awq-gemm}",
                        "quantization: {method: gguf, bits: 4, group_size: -1, format: gguf-q4_k_m}")
    return text.replace(f"{{task: {task}, metric: acc, max_drop: 1.0}}",
                        f"{{task: {task}, metric: {metric}, max_drop: 1.0}}") + "  stress: []\n"


def _qg208(repo: Path) -> list[str]:
    out = io.StringIO()
    spec = str(repo / "models" / "alpha.yaml")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["lock", spec, "--repo-root", str(repo)]) == 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["check", spec, "--repo-root", str(repo), "--format", "json"])
    result: Any = json.loads(out.getvalue())
    return [f"{SourceLocation(f['location']['path'], f['location']['line'], f['location']['col'])}: "
            f"{f['severity']} {f['message']}  Hint: {f['hint']}"
            for f in result["findings"] if f["rule_id"] == "QG208"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path)
    write(repo, "tasks/data/support_mc.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n')
    return repo


HINT = ("in llama-cpp, judge with perplexity (loglikelihood_rolling) or generation (generate_until) tasks; or serve "
        "with a runtime that returns prompt log-probabilities (serving.runtime: transformers or vllm)")


def test_output_type_from_an_included_template_is_refused_at_the_template_line(repo: Path) -> None:
    write(repo, "tasks/_mc_template.yaml", TEMPLATE)
    write(repo, "tasks/support_mc.yaml", "include: _mc_template.yaml\ntask: support_mc\ndataset_kwargs:\n"
                                         "  data_files:\n    test: data/support_mc.jsonl\ntest_split: test\n")
    write(repo, "models/alpha.yaml", _spec("support_mc"))
    assert _qg208(repo) == [
        f"tasks/_mc_template.yaml:2:1: deny task 'support_mc': output_type multiple_choice is scored by prompt "
        f"log-probabilities, and {NO_LOGPROBS}  Hint: {HINT}",
    ]


def test_the_task_file_overrides_its_template(repo: Path) -> None:
    write(repo, "tasks/_mc_template.yaml", TEMPLATE)
    write(repo, "tasks/support_mc.yaml", "include: _mc_template.yaml\ntask: support_mc\noutput_type: generate_until\n"
                                         "dataset_kwargs:\n  data_files:\n    test: data/support_mc.jsonl\n"
                                         "test_split: test\n")
    write(repo, "models/alpha.yaml", _spec("support_mc", metric="exact_match"))
    assert _qg208(repo) == []


def test_a_multiple_choice_task_declared_in_its_own_file(repo: Path) -> None:
    # make_repo's tasks/qg_local.yaml: output_type: multiple_choice on line 7
    write(repo, "models/alpha.yaml", _spec("qg_local"))
    assert _qg208(repo) == [
        f"tasks/qg_local.yaml:7:1: deny task 'qg_local': output_type multiple_choice is scored by prompt "
        f"log-probabilities, and {NO_LOGPROBS}  Hint: {HINT}",
    ]


def test_the_same_task_in_vllm_is_fine(repo: Path) -> None:
    write(repo, "models/alpha.yaml", _spec("qg_local").replace(
        "hardware: cpu-x86-avx2", "hardware: nvidia-l4").replace(
        "{method: gguf, bits: 4, group_size: -1, format: gguf-q4_k_m}",
        "{method: llmcompressor, bits: 4, group_size: 128, format: ct-w4a16}"))
    assert _qg208(repo) == []
