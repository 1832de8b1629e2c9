"""The llm-compressor backend: its isolated environment, a real worker run, the reload in transformers.

Tests that need the environment of ``scripts/make-llmcompressor-env.sh`` skip with the reason when
it is absent, except under ``CI=true`` where they fail (CI creates it first, ``.ci/run``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import BackendError
from gate.quantize.interface import LinearShape, ModelShape, QuantizeRequest, QuantizerInputError
from gate.quantize.llmc import ENV_VAR, VERSION, LlmCompressorBackend, find_env
from tests.needs import unavailable
from tests.quantize.helpers import make_repo


def require_env() -> None:
    try:
        find_env()
    except BackendError as exc:
        unavailable(f"{exc.message}; run scripts/make-llmcompressor-env.sh")


SHAPE = ModelShape(model_type="llama", hidden_size=64, num_layers=1, linears=(
    LinearShape("model.layers.0.self_attn.q_proj", 64, 64), LinearShape("lm_head", 64, 256)))


@pytest.mark.parametrize(
    ("fmt", "bits", "group", "options", "message"),
    [
        ("gptq", 4, 64, {}, "quantization.format: llmcompressor writes ct-w4a16, ct-w8a16, ct-w8a8-int8, ct-fp8, not 'gptq'"),
        ("ct-w4a16", 8, 64, {}, "quantization.bits: ct-w4a16 stores 4-bit weights, not 8-bit"),
        ("ct-w8a16", 8, 64, {"algorithm": "awq"}, "quantization.options.algorithm: 'awq' is not available for ct-w8a16"),
        ("ct-w8a8-int8", 8, None, {"algorithm": "rtn"},
         "quantization.options.algorithm: 'rtn' is not available for ct-w8a8-int8 (method: rtn is the gate's own "
         "reference; here the data-free algorithm is ct-rtn)"),
        ("ct-fp8", 8, None, {"algorithm": "ct-rtn"}, "quantization.options.algorithm: 'ct-rtn' is not available for ct-fp8"),
        ("ct-w8a8-int8", 8, None, {"algorithm": "ct-rtn", "smoothing_strength": 0.5},
         "quantization.options.smoothing_strength: ct-rtn solves nothing, so smoothing_strength has no effect"),
        ("ct-w4a16", 4, 64, {"algorithm": "ct-rtn", "dampening": 0.01},
         "quantization.options.dampening: ct-rtn solves nothing, so dampening has no effect"),
        ("ct-w8a8-int8", 8, 64, {}, "quantization.group_size: ct-w8a8-int8 is per channel"),
        ("ct-w4a16", 4, 64, {"dampening": 0}, "quantization.options.dampening: 0 is not a number in (0, 1]"),
        ("ct-w4a16", 4, 64, {"batch_size": 0}, "quantization.options.batch_size: 0 is not a whole number >= 1"),
        ("ct-w4a16", 4, 64, {"batch_size": 2.5}, "quantization.options.batch_size: 2.5 is not a whole number >= 1"),
        ("ct-w8a8-int8", 8, None, {"algorithm": "ct-rtn", "batch_size": 8},
         "quantization.options.batch_size: ct-rtn runs no calibration forward"),
        ("ct-w8a8-int8", 8, None, {"smoothing_strength": "high"},
         "quantization.options.smoothing_strength: 'high' is not a number in (0, 1]"),
    ],
)
def test_bad_requests_are_refused(fmt: str, bits: int, group: int | None, options: dict[str, object], message: str) -> None:
    req = QuantizeRequest(method="llmcompressor", bits=bits, group_size=group, format=fmt, options=options)
    with pytest.raises(QuantizerInputError) as info:
        LlmCompressorBackend().validate(req, SHAPE)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("fmt", "bits", "options", "hint"),
    [("ct-w8a8-int8", 8, {"algorithm": "gptq"}, "use one of smoothquant-gptq, ct-rtn for ct-w8a8-int8 (default "
      "smoothquant-gptq; ct-rtn is data-free)"),
     ("ct-w4a16", 4, {"algorithm": "fp8"}, "use one of gptq, awq, ct-rtn for ct-w4a16 (default gptq; ct-rtn is data-free)"),
     ("ct-fp8", 8, {"algorithm": "ct-rtn"}, "ct-fp8 is computed with fp8 only"),
     ("ct-w8a8-int8", 8, {"algorithm": "ct-rtn", "smoothing_strength": 0.5},
      "remove options.smoothing_strength, or use the default algorithm of ct-w8a8-int8 (smoothquant-gptq)")],
)
def test_a_bad_algorithm_names_the_ones_the_format_offers(fmt: str, bits: int, options: dict[str, object], hint: str) -> None:
    req = QuantizeRequest(method="llmcompressor", bits=bits, group_size=None, format=fmt, options=options)
    with pytest.raises(QuantizerInputError) as info:
        LlmCompressorBackend().validate(req, SHAPE)
    assert info.value.hint == hint


def test_missing_environment_names_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(BackendError) as info:
        find_env()
    assert str(info.value) == (
        f"the llm-compressor environment is missing: {tmp_path}/env is not a finished environment\n"
        f"  Hint: run scripts/make-llmcompressor-env.sh (creates it once: torch 2.13.0 CPU + llmcompressor {VERSION}), "
        f"or point {ENV_VAR} at one"
    )


@pytest.mark.parametrize(
    ("fmt", "group", "options", "scheme"),
    [("ct-w4a16", 32, {}, "gptq-w4a16"), ("ct-w4a16", 32, {"algorithm": "awq", "batch_size": 8}, "awq-w4a16"),
     ("ct-w8a8-int8", None, {}, "w8a8-int8")],
)
def test_quantizes_in_its_environment_and_reloads_in_transformers(
    tmp_path: Path, trained_tiny_llama_dir: Path, fmt: str, group: int | None, options: dict[str, object], scheme: str
) -> None:
    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact

    require_env()
    bits = 4 if fmt == "ct-w4a16" else 8
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="llmcompressor", bits=bits, group_size=group, fmt=fmt,
                       options=options, samples=32, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert (artifact.path / "recipe.yaml").is_file()
    assert artifact.params["scheme"] == scheme and artifact.params["ignore"] == ["lm_head"]
    assert artifact.params["batch_size"] == options.get("batch_size", 1)
    assert "Modifier" in str(artifact.params["recipe"])
    assert artifact.versions["llmcompressor (llmcompressor env)"] == VERSION
    assert artifact.versions["transformers (llmcompressor env)"] == "5.17.0"
    assert artifact.sanity is not None and artifact.sanity.passed and artifact.sanity.ratio < 1.5
    model, _ = load_for_eval(artifact.path)
    assert model.config.model_type == "llama"


@pytest.mark.parametrize(
    ("fmt", "bits", "group", "scheme", "weights", "activations"),
    [("ct-w8a8-int8", 8, None, "rtn-w8a8-int8", {"num_bits": 8, "strategy": "channel", "symmetric": True},
      {"num_bits": 8, "strategy": "token", "dynamic": True, "symmetric": True}),
     ("ct-w4a16", 4, 32, "rtn-w4a16", {"num_bits": 4, "strategy": "group", "group_size": 32, "symmetric": True}, None)],
)
def test_data_free_rtn_quantizes_without_calibration_and_reloads_in_transformers(
    tmp_path: Path, trained_tiny_llama_dir: Path, fmt: str, bits: int, group: int | None, scheme: str,
    weights: dict[str, object], activations: dict[str, object] | None,
) -> None:
    """ct-rtn runs llm-compressor's QuantizationModifier with no dataset: 4 calibration rows of 16
    tokens (far below GPTQ's full-rank Hessian for this model) are enough, because only the sanity
    check reads them. The checkpoint's scheme is the preset's (W8A8: per-channel int8 weights,
    dynamic per-token int8 activations), the recipe beside it names no GPTQ or SmoothQuant, and the
    reloaded model scores within the sanity bound of the baseline."""
    import torch

    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
    from gate.quantize.sources import load_hf_model

    require_env()
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="llmcompressor", bits=bits, group_size=group, fmt=fmt,
                       options={"algorithm": "ct-rtn"}, samples=4, max_seq_len=16)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    qc = json.loads((artifact.path / "config.json").read_text())["quantization_config"]
    group_0 = qc["config_groups"]["group_0"]
    assert qc["quant_method"] == "compressed-tensors" and qc["ignore"] == ["lm_head"]
    assert {k: group_0["weights"][k] for k in weights} == weights
    if activations is None:
        assert group_0["input_activations"] is None
    else:
        assert {k: group_0["input_activations"][k] for k in activations} == activations
    recipe = (artifact.path / "recipe.yaml").read_text()
    assert "QuantizationModifier" in recipe and "GPTQ" not in recipe and "SmoothQuant" not in recipe
    assert artifact.params["scheme"] == scheme and artifact.params["samples"] == 0
    assert artifact.params["batch_size"] is None
    assert artifact.sanity is not None and artifact.sanity.passed and artifact.sanity.ratio < 1.5
    model, _ = load_for_eval(artifact.path)
    reference = load_hf_model(baseline.path).eval()
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])
    with torch.no_grad():
        quantized_logits, full_logits = model(ids).logits, reference(ids).logits
    assert not torch.equal(quantized_logits, full_logits)  # the weights really changed
    assert torch.nn.functional.cosine_similarity(quantized_logits.flatten(), full_logits.flatten(), dim=0) > 0.95


def test_gptq_refuses_calibration_too_short_for_a_full_rank_hessian(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from gate.errors import InputError
    from gate.quantize import prepare_baseline, produce_artifact

    loaded = make_repo(tmp_path, tiny_llama_dir, method="llmcompressor", bits=4, group_size=32, fmt="ct-w4a16",
                       samples=2, max_seq_len=16)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(InputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message == (
        "calibration.samples: the 2 calibration samples hold 32 tokens (at most max_seq_len 16 each); GPTQ needs at "
        "least 128, the input size of model.layers.0.mlp.down_proj, for a full-rank Hessian"
    )
    assert info.value.hint == ("add samples (calibration.samples) or raise calibration.max_seq_len, or use "
                               "options.algorithm: awq (ct-w4a16) or ct-rtn (data-free)")
    assert str(info.value.location).endswith("spec.yaml:13:3")  # calibration.samples
    assert not (tmp_path / "cache" / "artifacts").exists() or not [
        p for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.startswith(".")]
    awq = QuantizeRequest(method="llmcompressor", bits=4, group_size=32, format="ct-w4a16", options={"algorithm": "awq"},
                          calibration_texts=("one short text",), max_seq_len=16)
    LlmCompressorBackend().validate_calibration(awq, tiny_llama_dir)  # AWQ solves no Hessian
    rtn = QuantizeRequest(method="llmcompressor", bits=8, group_size=None, format="ct-w8a8-int8",
                          options={"algorithm": "ct-rtn"}, calibration_texts=("one short text",), max_seq_len=16)
    LlmCompressorBackend().validate_calibration(rtn, tiny_llama_dir)  # data-free: no Hessian either


def test_a_failing_worker_is_a_blocking_error_with_its_cause(
    tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real worker in the real environment, sent a scheme it does not know: its error and the
    last lines of its traceback are the message, and nothing is cached."""
    import gate.quantize.llmc as llmc
    from gate.quantize import prepare_baseline, produce_artifact

    require_env()
    monkeypatch.setitem(llmc.SCHEMES, "ct-w4a16", "bogus")
    loaded = make_repo(tmp_path, tiny_llama_dir, method="llmcompressor", bits=4, group_size=32, fmt="ct-w4a16",
                       samples=32, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    lines = info.value.message.splitlines()
    assert lines[0] == ("llmcompressor bogus failed: ValueError: unknown scheme 'bogus'; "
                        "the worker's last traceback lines:")
    assert lines[-1] == "    ValueError: unknown scheme 'bogus'"
    assert info.value.hint == "the cause is in the error above; no artifact was cached"
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []
