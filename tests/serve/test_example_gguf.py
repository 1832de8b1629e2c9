"""The shipped GGUF example judged in llama.cpp, end to end on the real SmolLM2-135M (slow: a
cold run converts, quantizes and serves both models; run with `-m slow`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.result import Decision

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gguf_example_gets_a_verdict_inside_llama_cpp() -> None:
    from gate.cache import default_cache_dir
    from gate.example import fetch_example
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set
    from tests.serve.test_llama_cpp import _require

    _require()
    fetch_example(REPO, default_cache_dir(REPO))
    options = RunOptions(repo_root=REPO, cache_dir=default_cache_dir(REPO), device="cpu", progress=False,
                         registry_db=None)
    result = run_gate(REPO / "models" / "smollm2-135m-gguf.yaml", options,
                      load_policy_set(StaticOptions(repo_root=REPO)))
    assert result.verdict.decision in (Decision.passed, Decision.inconclusive, Decision.failed), result.error
    assert result.runtime.serving is not None and result.runtime.serving.name == "llama-cpp"
    assert result.runtime.serving.dtype == "Q4_K - Medium"
    assert result.fidelity is not None and result.fidelity.documents >= 20
    assert result.performance is not None and result.performance.candidate.memory_kind == "rss_server_tree"
