"""The llama.cpp runtime on a real build: a tiny SentencePiece Llama, its Q4_K_M artifact, the
baseline converted by the same tree; per-document perplexity and fidelity from llama-perplexity,
speed and memory from llama-server, and its faults. Needs ``scripts/build-llama-cpp.sh``'s build
(skipped locally without it, a failure under CI=true)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from gate.errors import BackendError
from gate.serve.interface import (
    DtypeFallbackError,
    MissingLogprobsError,
    OpenRequest,
    RuntimeInputError,
    RuntimeMissingError,
    ServedModel,
    ServerDiedError,
    ServingArgs,
)
from gate.serve.process import running_servers
from tests.needs import unavailable

ARGS = ServingArgs(threads=1, max_context=256, start_timeout_s=120, request_timeout_s=300)


def _require() -> None:
    from gate.quantize.llamacpp import BUILD_SCRIPT, find_llama_cpp

    try:
        find_llama_cpp(("llama-server", "llama-perplexity", "llama-quantize"))
    except BackendError as exc:
        unavailable(f"llama.cpp build missing ({exc.message}); run {BUILD_SCRIPT}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny model's baseline directory, its Q4_K_M artifact and a repository with tiny tasks."""
    _require()
    from gate.quantize import prepare_baseline, produce_artifact
    from tests.evaluate.repo import write_tasks
    from tests.quantize.gguf_models import build_tiny_spm_llama
    from tests.quantize.helpers import make_repo

    root = tmp_path_factory.mktemp("llama-serve")
    model = build_tiny_spm_llama(root / "spm-llama")
    loaded = make_repo(root / "repo", model, method="gguf", bits=4, group_size=None, fmt="gguf-q4_k_m",
                       calibration=False)
    baseline = prepare_baseline(loaded, root / "repo", root / "cache")
    artifact = produce_artifact(loaded, baseline, root / "repo", root / "cache", progress=False)
    write_tasks(root / "repo", mc_items_n=6, ppl_docs=6)
    return {"root": root, "baseline": baseline, "artifact": artifact.path, "repo": root / "repo"}


def _open(built: dict[str, Any], role: str, tmp_path: Path, args: ServingArgs = ARGS) -> Any:
    from gate.serve import get_runtime

    model_dir = built["baseline"].path if role == "baseline" else built["artifact"]
    request = OpenRequest(model_dir=model_dir, role=role, args=args, work_dir=tmp_path / "work",  # type: ignore[arg-type]
                          cache_dir=built["root"] / "cache", identity=built["baseline"].identity)
    return get_runtime("llama-cpp").open(request)


def _score(model: ServedModel, built: dict[str, Any], tmp_path: Path, items: list[int], metric: str = "word_perplexity",
           task: str = "tiny_ppl") -> Any:
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.suites import resolve_task

    sources = [resolve_task(task, built["repo"])]
    return model.score(sources, [MetricRequest(task, metric)], {task: items}, include_dir=tmp_path / "inc")[
        (task, metric)]


def test_perplexity_per_document_keeps_the_doc_id_pairing(built: dict[str, Any], tmp_path: Path) -> None:
    with _open(built, "baseline", tmp_path) as base:
        assert base.dtype == "all F32"  # the tiny model stores fp32: served losslessly
        b = _score(base, built, tmp_path, [4, 0, 3, 1, 2])
        alone = _score(base, built, tmp_path, [3])
    with _open(built, "candidate", tmp_path) as cand:
        assert cand.dtype == "Q4_K - Medium"
        q = _score(cand, built, tmp_path, [0, 1, 2, 3, 4])
    assert b.kind == q.kind == "perplexity" and b.doc_ids == q.doc_ids == [0, 1, 2, 3, 4]
    # doc 3 alone gets exactly the score it had among the others: per-document runs, labelled by doc id
    assert alone.doc_ids == [3] and alone.values[0] == b.values[3]
    assert [v[1] for v in b.values] == [v[1] for v in q.values]  # the same scored share of the same words
    assert all(v[0] > 0 for v in b.values + q.values)
    assert 0.8 * b.aggregate() < q.aggregate() < 1.5 * b.aggregate()  # Q4_K_M of a tiny model: close


def test_fidelity_is_llama_cpp_full_vocabulary_kl_per_document(built: dict[str, Any], tmp_path: Path) -> None:
    from gate.evaluate.fidelity import FidelitySettings
    from tests.tiny_models import CORPUS_LINES as LINES

    texts = tmp_path / "texts.jsonl"
    pairs = [f"{a} {b}" for a in LINES for b in LINES if a != b][:40]
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in pairs + pairs[:3]))  # repeats count once
    settings = FidelitySettings(texts_name="texts.jsonl", tokens=600, window=33)
    with _open(built, "baseline", tmp_path) as base:
        reference = base.fidelity_reference(texts, settings)
        same = base.fidelity_compare(reference, settings, max_kl=0.5, max_flip_rate=0.5)
    with _open(built, "candidate", tmp_path) as cand:
        got = cand.fidelity_compare(reference, settings, max_kl=0.5, max_flip_rate=0.5)
    assert same.kl_mean == 0.0 and same.flip_rate == 0.0  # the baseline against itself
    assert got.documents == 40 and got.tokens > 400  # every distinct text once (40 of 43 lines)
    assert 0.0 < got.kl_mean < 0.5 and 0.0 <= got.flip_rate < 0.5
    assert got.method.startswith("llama-perplexity --kl-divergence per document")


def test_speed_and_memory_come_from_llama_server(built: dict[str, Any], tmp_path: Path) -> None:
    from gate.evaluate.performance import PerformanceSettings

    settings = PerformanceSettings(prompt_tokens=32, decode_tokens=8, batch_sizes=(1, 2), warmup=1, repeats=2)
    with _open(built, "candidate", tmp_path) as cand:
        perf = cand.performance(settings)
        pid = cand._server.pid
    assert perf.memory_kind == "rss_server_tree" and perf.peak_memory_bytes > 1_000_000
    assert set(perf.tokens_per_s) == {"1", "2"} and all(v > 0 for v in perf.tokens_per_s.values())
    assert perf.prefill_ms_p50 > 0 and perf.decode_ms_per_token_p50 > 0
    assert perf.parameter_bytes == (built["artifact"] / "model.gguf").stat().st_size
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert running_servers() == 0


def test_multiple_choice_is_refused_naming_the_missing_logprobs(built: dict[str, Any], tmp_path: Path) -> None:
    with _open(built, "candidate", tmp_path) as cand, pytest.raises(MissingLogprobsError) as caught:
        _score(cand, built, tmp_path, [0, 1], metric="acc", task="tiny_mc")
    assert caught.value.message == (
        "task 'tiny_mc' (multiple_choice) needs prompt log-probabilities, and llama-server returns no prompt "
        "logprobs (it ignores `echo`: ggml-org/llama.cpp#8942, the echo PR #15189 is not merged in the pinned release)")


def test_server_killed_mid_evaluation_is_a_blocking_fault(built: dict[str, Any], tmp_path: Path) -> None:
    from gate.evaluate.performance import PerformanceSettings

    with _open(built, "candidate", tmp_path) as cand:
        server = cand.server(1)
        os.killpg(server.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        with pytest.raises(ServerDiedError) as caught:
            cand.performance(PerformanceSettings(prompt_tokens=16, decode_tokens=4, warmup=0, repeats=1))
    assert caught.value.cause == "llama-server killed by signal 9 while the gate was evaluating through it"
    assert "llama-server-1.log" in caught.value.message
    assert running_servers() == 0


def test_an_artifact_llama_cpp_cannot_serve_is_refused(built: dict[str, Any], tmp_path: Path) -> None:
    from gate.serve import get_runtime

    awq = tmp_path / "awq"
    awq.mkdir()
    (awq / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq"}}))
    request = OpenRequest(model_dir=awq, role="candidate", args=ARGS, work_dir=tmp_path / "w")
    with pytest.raises(RuntimeInputError) as caught, get_runtime("llama-cpp").open(request):
        pass
    assert caught.value.message == f"serving.runtime: llama-cpp serves GGUF files; {awq} is a awq artifact"


def test_served_type_other_than_declared_is_a_fallback(built: dict[str, Any], tmp_path: Path) -> None:
    from gate.evaluate.performance import PerformanceSettings
    from gate.serve.llama_cpp import LlamaServedModel

    with _open(built, "candidate", tmp_path) as cand:
        lying = LlamaServedModel(cand.gguf, "Q8_0", cand.request, cand.version)
        with pytest.raises(DtypeFallbackError) as caught:
            lying.performance(PerformanceSettings(prompt_tokens=16, decode_tokens=4, warmup=0, repeats=1))
    assert caught.value.cause == ("llama-server serves model.gguf as 'Q4_K - Medium', but the candidate is 'Q8_0': "
                                  "the runtime is not serving the weights under review")
    assert running_servers() == 0


def test_missing_build_is_runtime_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gate.serve import get_runtime

    monkeypatch.setenv("QUANT_GATE_LLAMA_CPP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeMissingError) as caught:
        get_runtime("llama-cpp").check_version(None)
    assert caught.value.message == (f"serving.runtime llama-cpp: llama.cpp tools not found: "
                                    f"{tmp_path / 'nowhere' / 'manifest.json'} does not exist")


def test_wrong_version_is_refused() -> None:
    from gate.serve import get_runtime

    _require()
    with pytest.raises(RuntimeMissingError) as caught:
        get_runtime("llama-cpp").check_version(">=0.4")
    assert caught.value.message == "serving.version: llama-cpp 0.3.36 is installed; the spec asks for >=0.4"
