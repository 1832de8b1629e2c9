"""llm-compressor on CUDA (marked ``gpu``: skipped without CUDA; ``scripts/gpu-check.sh`` runs them).

GPTQ and AWQ W4A16 and FP8 dynamic quantize the briefly trained tiny Llama in the llm-compressor
environment with the GPU, the artifact reloads on CUDA in transformers (compressed-tensors), and its
sanity check against the baseline passes. The worker reports where it ran and its peak GPU memory,
so a run that silently fell back to the CPU fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.quantize.helpers import make_repo
from tests.quantize.test_llmc import require_env

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(
    ("fmt", "bits", "group", "options", "scheme"),
    [
        ("ct-w4a16", 4, 32, {}, "gptq-w4a16"),
        ("ct-w4a16", 4, 32, {"algorithm": "awq"}, "awq-w4a16"),
        ("ct-fp8", 8, None, {}, "fp8-dynamic"),
    ],
)
def test_llmcompressor_quantizes_on_cuda_and_reloads_there(
    tmp_path: Path, trained_tiny_llama_dir: Path, fmt: str, bits: int, group: int | None, options: dict[str, object],
    scheme: str,
) -> None:
    import torch

    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact

    require_env()
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="llmcompressor", bits=bits, group_size=group, fmt=fmt,
                       options=options, samples=64, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.params["scheme"] == scheme
    assert artifact.params["device"] == "cuda", artifact.params
    assert artifact.params["peak_gpu_memory_mb"] > 0
    config = json.loads((artifact.path / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["type"], weights["num_bits"]) == (("float", 8) if fmt == "ct-fp8" else ("int", 4))
    assert artifact.sanity is not None and artifact.sanity.passed and artifact.sanity.ratio < 1.5
    model, _ = load_for_eval(artifact.path, device="cuda")
    assert next(model.parameters()).is_cuda
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4]], device="cuda")).logits
    assert torch.isfinite(logits).all()
