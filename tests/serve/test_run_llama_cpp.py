"""`gate run` with the llama.cpp runtime end to end on a tiny GGUF model: baseline and candidate
served by llama.cpp, the result's serving section, and failed runs that leave no process behind.
Needs the llama.cpp build (skipped locally without it, a failure under CI=true)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import pytest

from gate.result import Decision

SERVED = (
    "quality:\n"
    "  confidence: 0.95\n"
    "  sequential: false\n"
    "  metrics:\n"
    "    - {task: tiny_ppl, metric: word_perplexity, max_relative_increase: 0.2, limit: 24}\n"
    "  fidelity: {max_kl: 0.3, max_flip_rate: 0.35, texts: tasks/data/tiny_ppl.jsonl, tokens: 256}\n"
)


def _spec(quality: str, serving: str) -> str:
    from tests.evaluate.repo import spec_text

    text = spec_text(quality=quality).replace(
        "  method: rtn\n  bits: 8\n  group_size: 32\n  format: rtn\n",
        "  method: gguf\n  bits: 4\n  group_size: -1\n  format: gguf-q4_k_m\n  options: {imatrix: false}\n")
    return text.replace("rollout:", f"{serving}rollout:")


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.quantize.gguf_models import build_tiny_spm_llama
    from tests.serve.test_llama_cpp import _require

    _require()
    return build_tiny_spm_llama(tmp_path_factory.mktemp("run-llama") / "spm")


def _run(root: Path, model: Path, spec: str) -> Any:
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set
    from tests.evaluate.repo import make_repo

    path = make_repo(root, model, spec)
    options = RunOptions(repo_root=root, cache_dir=root / ".gate" / "cache", device="cpu", progress=False,
                         registry_db=None, resamples=2000)
    return run_gate(path, options, load_policy_set(StaticOptions(repo_root=root)))


@pytest.fixture(autouse=True)
def _children_before() -> None:
    """The test process's children before the test (pools other tests in the same session left
    alive, e.g. ``python3`` workers): only processes the run itself started count as survivors."""
    global _BEFORE
    _BEFORE = {p.pid for p in _children()}


_BEFORE: set[int] = set()


def _children() -> list[Any]:
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if p.is_running()]


def _survivors() -> list[str]:
    return [p.name() for p in _children() if p.pid not in _BEFORE]


def test_both_models_are_judged_inside_llama_cpp(tmp_path: Path, spm_model: Path) -> None:
    result = _run(tmp_path, spm_model, _spec(SERVED, "serving: {runtime: llama-cpp, args: {threads: 1}}\n"))
    assert result.verdict.decision is not Decision.error, result.error
    assert result.artifact is not None, result.verdict.reasons  # the candidate was evaluated, not refused
    serving = result.runtime.serving
    assert serving is not None
    assert (serving.name, serving.version, serving.dtype) == ("llama-cpp", "0.3.36", "Q4_K - Medium")
    assert serving.args["threads"] == 1 and serving.args["max_context"] == 512
    from gate.quantize.llamacpp import find_llama_cpp

    build = find_llama_cpp()
    amx = ("off (ggml's AMX backend crashes in this tree: ggml-org/llama.cpp#20824)"
           if platform.machine() == "x86_64" else "not x86-64")
    assert serving.detail == {"llama_cpp_commit": build.commit, "root": str(build.root), "amx": amx}
    assert result.fidelity is not None and "llama-perplexity --kl-divergence" in result.fidelity.method
    assert result.performance is not None
    assert result.performance.baseline.memory_kind == result.performance.candidate.memory_kind == "rss_server_tree"
    assert _survivors() == []


def test_a_hung_runtime_fails_the_run_and_leaves_nothing(tmp_path: Path, spm_model: Path) -> None:
    from gate.serve.process import running_servers

    result = _run(tmp_path, spm_model, _spec(SERVED, "serving: {runtime: llama-cpp, args: {threads: 1, "
                                                     "request_timeout_s: 0.001}}\n"))
    assert result.verdict.decision is Decision.error, result.verdict.reasons
    # the first tool past its deadline: the baseline's conversion to GGUF, stopped, nothing cached
    assert result.verdict.reasons == [
        f"llama-cpp: converting the baseline to GGUF: {Path(sys.executable).name} ran past its 0 s limit and was "
        "stopped"]
    assert not list((tmp_path / ".gate" / "cache").glob("serve/llama-cpp/*/baseline-*.gguf"))
    assert running_servers() == 0 and _survivors() == []


def test_a_multiple_choice_repository_task_is_refused_before_any_server_starts(tmp_path: Path, spm_model: Path) -> None:
    """QG208 reads the repository task's output_type statically, so `gate run` blocks at the policy
    stage with the task's cause, before anything is converted or served (the run-time guard behind it,
    for a task the static scan cannot see, is tested in tests/serve/test_llama_cpp.py)."""
    quality = SERVED.replace("    - {task: tiny_ppl", "    - {task: tiny_mc, metric: acc, max_drop: 10.0}\n    - {task: tiny_ppl")
    result = _run(tmp_path, spm_model, _spec(quality, "serving: {runtime: llama-cpp, args: {threads: 1}}\n"))
    assert result.verdict.decision is Decision.failed
    assert result.verdict.reasons == [
        "QG208 task 'tiny_mc': output_type multiple_choice is scored by prompt log-probabilities, and llama-server "
        "returns no prompt logprobs (it ignores `echo`: ggml-org/llama.cpp#8942, the echo PR #15189 is not merged in "
        "the pinned release)"]
    assert result.artifact is None and result.runtime.serving is None
    assert not list((tmp_path / ".gate" / "cache").glob("serve/llama-cpp/*/baseline-*.gguf"))
    assert _survivors() == []
