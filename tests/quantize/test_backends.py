"""Every backend, for real, on tiny Llama models: quantize, write the artifact, reload it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import BackendError
from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
from gate.quantize.artifact import LOCKFILE, PROVENANCE
from tests.quantize.helpers import make_repo


def logits(model, tokenizer, text: str = "The quick brown fox jumps over the lazy dog."):  # type: ignore[no-untyped-def]
    import torch

    with torch.inference_mode():
        return model(**tokenizer(text, return_tensors="pt")).logits[0]


def rtn_reference(w, bits: int, group: int):  # type: ignore[no-untyped-def]
    """Independent asymmetric RTN, written out elementwise-style for the test."""
    import torch

    out = torch.empty_like(w)
    qmax = 2**bits - 1
    for r in range(w.shape[0]):
        for g in range(0, w.shape[1], group):
            block = w[r, g : g + group]
            lo, hi = min(float(block.min()), 0.0), max(float(block.max()), 0.0)
            scale = max((hi - lo) / qmax, 1e-12)
            zero = min(max(round(-lo / scale), 0), qmax)
            q = torch.clamp(torch.round(block / scale) + zero, 0, qmax)
            out[r, g : g + group] = (q - zero) * scale
    return out


def test_rtn_artifact_is_complete_and_reloads_exactly(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    from safetensors import safe_open

    from gate.quantize.sources import load_hf_model
    from gate.weights.lockfile import read_lockfile, sha256_file

    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert not artifact.cache_hit
    assert (artifact.method, artifact.bits, artifact.group_size) == ("rtn", 4, 32)
    assert artifact.params["quantized_modules"] == 15 and artifact.params["packed"] is True
    assert {"torch", "transformers", "safetensors", "python"} <= set(artifact.versions)
    assert artifact.calibration is not None and artifact.calibration.samples == 32
    assert artifact.calibration.tokens_max is not None and artifact.calibration.tokens_max <= 32
    assert artifact.sanity is not None and artifact.sanity.passed
    path = artifact.path
    assert path.parent == tmp_path / "cache" / "artifacts" and path.name == artifact.cache_key
    config = json.loads((path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "gate-rtn"
    assert config["quantization_config"]["bits"] == 4
    card = (path / "README.md").read_text()
    assert card.startswith('---\nbase_model: "model"\nbase_model_relation: quantized\n')
    prov = json.loads((path / PROVENANCE).read_text())
    assert prov["spec"]["sha256"] == loaded.sha256
    assert prov["baseline"]["identity"] == baseline.identity
    assert prov["calibration"]["sha256"] == artifact.calibration.sha256
    assert prov["versions"]["torch"].startswith("2.")
    lock = read_lockfile(path / LOCKFILE)
    assert {e.path for e in lock.files} >= {"model.safetensors", "config.json", "tokenizer.json", "README.md", PROVENANCE}
    assert all(sha256_file(path / e.path) == e.sha256 for e in lock.files)
    assert artifact.artifact_sha256 == sha256_file(path / LOCKFILE)
    with safe_open(str(path / "model.safetensors"), "pt") as fh:
        assert fh.get_slice("model.layers.0.mlp.down_proj.qweight").get_dtype() == "U8"
        assert fh.get_slice("model.layers.0.mlp.down_proj.qweight").get_shape() == [64, 64]  # 128 in, packed 2/byte

    base_model = load_hf_model(baseline.path)
    model, _ = load_for_eval(path)
    w = base_model.model.layers[0].mlp.down_proj.weight.detach()
    got = model.model.layers[0].mlp.down_proj.weight.detach()
    assert float((got - rtn_reference(w, 4, 32)).abs().max()) < 1e-5
    assert float((got - w).abs().max()) > 0  # it really was quantized
    assert not model.training and next(model.parameters()).dtype.is_floating_point

    again = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert again.cache_hit and again.cache_key == artifact.cache_key
    assert again.seconds < 5 and again.artifact_sha256 == artifact.artifact_sha256


def test_rtn_keeps_named_modules_in_full_precision(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    from gate.quantize.sources import load_hf_model

    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="rtn", bits=8, group_size=-1 and None, keep=["down_proj", "lm_head"])
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.params["modules_to_not_convert"] == [
        "lm_head", "model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"
    ]
    base = load_hf_model(baseline.path)
    model, _ = load_for_eval(artifact.path)
    assert bool((model.model.layers[1].mlp.down_proj.weight == base.model.layers[1].mlp.down_proj.weight).all())
    assert bool((model.lm_head.weight == base.lm_head.weight).all())
    assert not bool((model.model.layers[1].mlp.up_proj.weight == base.model.layers[1].mlp.up_proj.weight).all())


def test_two_bit_rtn_is_worse_than_four_bit(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    ratios = {}
    for bits in (4, 2):
        root = tmp_path / f"b{bits}"
        loaded = make_repo(root, trained_tiny_llama_dir, method="rtn", bits=bits, group_size=32)
        baseline = prepare_baseline(loaded, root, tmp_path / "cache")
        artifact = produce_artifact(loaded, baseline, root, tmp_path / "cache", progress=False)
        assert artifact.sanity is not None
        ratios[bits] = artifact.sanity.ratio
    # 2-bit is clearly worse, yet far from the sanity limit: a deliberately bad model for the
    # evaluation stage to fail, not a broken one for the quantize stage to block.
    assert ratios[4] < 1.1 and 1.2 < ratios[2] < 10, ratios


def test_int8_artifact_loads_with_plain_transformers(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="int8", bits=8, group_size=None, fmt="int8-weight-only")
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.params["config"] == "Int8WeightOnlyConfig"
    assert artifact.params["granularity"] == "per-channel"
    assert (artifact.params["activation_dtype"], artifact.params["device"]) == ("float32", "cpu")
    assert artifact.versions["torchao"] == "0.18.0"
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"
    plain = AutoModelForCausalLM.from_pretrained(str(artifact.path), dtype=torch.float32)
    assert type(plain.model.layers[0].self_attn.q_proj.weight).__name__ == "Int8Tensor"
    assert type(plain.lm_head.weight) is torch.nn.Parameter  # kept in full precision
    tok = AutoTokenizer.from_pretrained(str(artifact.path))
    base = AutoModelForCausalLM.from_pretrained(str(baseline.path), dtype=torch.float32)
    model, _ = load_for_eval(artifact.path)
    diff = (logits(model, tok) - logits(base, tok)).abs().max()
    assert 0 < float(diff) < 0.5


def test_awq_quantizes_and_reloads_on_cpu(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="awq", bits=4, group_size=32, fmt="awq-gemm",
                       options={"clip_search": False}, samples=32, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.params["quant_config"] == {"zero_point": True, "q_group_size": 32, "w_bit": 4, "version": "GEMM"}
    assert artifact.params["apply_clip"] is False
    assert artifact.versions["autoawq"] == "0.2.9"
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"
    assert artifact.sanity is not None and artifact.sanity.ratio < 1.5
    model, _ = load_for_eval(artifact.path)
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    from gate.quantize.sources import load_hf_model

    base = load_hf_model(baseline.path)
    w, q = base.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight
    assert float((w - q).abs().max()) > 0
    assert float((w - q).abs().mean()) < 0.1 * float(w.abs().mean()) * 10


def test_corrupted_quantization_is_blocked_by_the_sanity_check(
    tmp_path: Path, trained_tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that writes wrong weights (here: RTN with scales off by 40x, the kind of damage
    autoawq's in-place scale search does on CPU) must block, and nothing may be cached."""
    import gate.quantize.rtn as rtn

    real = rtn.quantize_weight

    def corrupting(w, bits, group_size, symmetric):  # type: ignore[no-untyped-def]
        codes, scales, zeros = real(w, bits, group_size, symmetric)
        return codes, scales * 40, zeros

    monkeypatch.setattr(rtn, "quantize_weight", corrupting)
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message.startswith("sanity check failed: quantized perplexity ")
    assert info.value.message.endswith("on 31 calibration tokens (limit 10x); the quantized model is broken")
    assert info.value.hint is not None and "autoawq's in-place scale search on CPU" in info.value.hint
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []
