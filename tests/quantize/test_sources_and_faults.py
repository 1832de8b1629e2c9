"""Model sources, load_for_eval dispatch, and faults that must become clear blocking errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gate.errors import BackendError, InputError
from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
from gate.quantize.interface import QuantizerInputError
from gate.quantize.sources import directory_identity
from gate.spec.loader import load_spec
from tests.quantize.helpers import make_repo


def test_path_source_is_the_directory_and_identity_tracks_content(tmp_path: Path, tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, tiny_llama_dir)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert baseline.path == tmp_path / "model" and baseline.source_kind == "path"
    assert baseline.identity == directory_identity(tiny_llama_dir)
    assert not (tmp_path / "cache").exists()  # a path source converts nothing


def test_lockfile_is_the_identity_when_present(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from gate.weights.lockfile import sha256_file, write_lockfile

    make_repo(tmp_path, tiny_llama_dir)
    write_lockfile(tmp_path / "model", tmp_path / "model.lock.json")
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec.read_text().replace("  path: model\n", "  path: model\n  lockfile: model.lock.json\n"))
    baseline = prepare_baseline(load_spec(spec), tmp_path, tmp_path / "cache")
    assert baseline.identity == sha256_file(tmp_path / "model.lock.json")


def test_missing_sources_name_the_key(tmp_path: Path, tiny_llama_dir: Path) -> None:
    make_repo(tmp_path, tiny_llama_dir)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec.read_text().replace("  path: model\n", "  path: nowhere\n"))
    with pytest.raises(InputError) as info:
        prepare_baseline(load_spec(spec), tmp_path, tmp_path / "cache")
    assert str(info.value).endswith(
        "spec.yaml:5:3: model.path: nowhere is not a directory\n"
        "  Hint: point model.path at a Hugging Face model directory (config.json + *.safetensors)"
    )
    spec.write_text(spec.read_text().replace("  path: nowhere\n", "  gguf: weights/x.gguf\n"))
    with pytest.raises(InputError) as info:
        prepare_baseline(load_spec(spec), tmp_path, tmp_path / "cache")
    assert info.value.message == "model.gguf: weights/x.gguf does not exist"
    assert info.value.hint == "run `gate example fetch` for the shipped example, or fix the path"
    spec.write_text(spec.read_text().replace("  gguf: weights/x.gguf\n", "  hub: org/model\n"))
    with pytest.raises(InputError) as info:
        prepare_baseline(load_spec(spec), tmp_path, tmp_path / "cache")
    assert info.value.message == "model.hub: org/model has no pinned revision"


def test_pickle_only_directory_is_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    loaded = make_repo(tmp_path, tiny_llama_dir)
    with pytest.raises(InputError) as info:
        prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    assert info.value.message == f"{model} has no *.safetensors weights"


def test_group_size_error_points_at_the_spec_key(tmp_path: Path, tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, tiny_llama_dir, method="rtn", group_size=48)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(QuantizerInputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert str(info.value).endswith(
        "spec.yaml:9:3: quantization.group_size: 48 does not divide the input size 64 of "
        "lm_head\n  Hint: use group_size: 64 (or -1 for per-channel where the method allows it)"
    )


def test_awq_refuses_calibration_shorter_than_one_block(tmp_path: Path, tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, tiny_llama_dir, method="awq", fmt="awq-gemm", samples=2, max_seq_len=512)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(QuantizerInputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message.startswith("calibration.samples: the 2 calibration samples hold ")
    assert info.value.message.endswith("tokens, fewer than max_seq_len 512; autoawq needs at least one full block")
    assert info.value.location is not None and info.value.location.line == 13


def test_awq_without_calibration_is_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, tiny_llama_dir, method="awq", fmt="awq-gemm", calibration=False)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(InputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message == "quantization.method: awq needs calibration data and the spec has no `calibration` section"


def test_model_that_fails_to_load_blocks_and_caches_nothing(tmp_path: Path, tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, tiny_llama_dir, copy_model=True)
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated download
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message.startswith(f"cannot load the model in {tmp_path / 'model'}: ")
    assert list((tmp_path / "cache" / "artifacts").iterdir()) == [
        p for p in (tmp_path / "cache" / "artifacts").iterdir() if p.name.endswith(".lock")
    ]


def test_backend_exception_mid_way_blocks_and_caches_nothing(
    tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.quantize.rtn as rtn

    def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(rtn, "quantize_weight", explode)
    loaded = make_repo(tmp_path, tiny_llama_dir)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert str(info.value) == (
        "rtn quantization failed: RuntimeError: CUDA error: an illegal memory access was encountered\n"
        "  Hint: the backend raised mid-way; no artifact was cached. Re-run with the same spec to reproduce"
    )
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []


def test_failing_artifact_write_blocks_and_caches_nothing(
    tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weights are written on a worker thread while the sanity check runs; a failure there
    (disk full) is still the build's failure."""
    import safetensors.torch

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    loaded = make_repo(tmp_path, tiny_llama_dir)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message == "rtn quantization failed: OSError: [Errno 28] No space left on device"
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []


def test_out_of_memory_is_named(tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gate.quantize.rtn as rtn

    def oom(*args: object, **kwargs: object) -> object:
        raise MemoryError

    monkeypatch.setattr(rtn, "quantize_weight", oom)
    loaded = make_repo(tmp_path, tiny_llama_dir)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message == "rtn: out of memory while quantizing"


def test_load_for_eval_dispatch(tmp_path: Path, tiny_llama_dir: Path) -> None:
    model, tokenizer = load_for_eval(tiny_llama_dir)
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert tokenizer.eos_token == "</s>"
    odd = tmp_path / "odd"
    shutil.copytree(tiny_llama_dir, odd)
    config = json.loads((odd / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "exl2"}
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError) as info:
        load_for_eval(odd)
    assert info.value.message == f"{odd / 'config.json'}: quantization_config.quant_method 'exl2' is not one the gate can load"
