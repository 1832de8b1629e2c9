"""The dtype models are evaluated in: float32 on CPU, float16 on CUDA, the same for baseline and
every backend, so speed and memory are compared like for like."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
from gate.quantize.sources import compute_dtype
from tests.quantize.helpers import make_repo


def baseline_and_artifact(root: Path, model_dir: Path, method: str, fmt: str, bits: int, group: int | None) -> list[Path]:
    loaded = make_repo(root, model_dir, method=method, bits=bits, group_size=group, fmt=fmt)
    baseline = prepare_baseline(loaded, root, root / "cache")
    return [baseline.path, produce_artifact(loaded, baseline, root, root / "cache", progress=False).path]


def test_compute_dtype_by_device() -> None:
    import torch

    assert compute_dtype("cpu") is torch.float32
    assert compute_dtype("cuda") is torch.float16
    assert compute_dtype("cuda:1") is torch.float16


@pytest.mark.parametrize(("method", "fmt", "bits", "group"), [("rtn", "rtn", 4, 32), ("int8", "int8-weight-only", 8, None)])
def test_cpu_evaluation_is_float32_for_baseline_and_artifacts(
    tmp_path: Path, trained_tiny_llama_dir: Path, method: str, fmt: str, bits: int, group: int | None
) -> None:
    import torch

    paths = baseline_and_artifact(tmp_path, trained_tiny_llama_dir, method, fmt, bits, group)
    assert [load_for_eval(path)[0].dtype for path in paths] == [torch.float32, torch.float32]


@pytest.mark.gpu
@pytest.mark.parametrize(("method", "fmt", "bits", "group"), [("rtn", "rtn", 4, 32), ("int8", "int8-weight-only", 8, None)])
def test_cuda_evaluation_is_float16_for_baseline_and_artifacts(
    tmp_path: Path, trained_tiny_llama_dir: Path, method: str, fmt: str, bits: int, group: int | None
) -> None:
    import torch

    paths = baseline_and_artifact(tmp_path, trained_tiny_llama_dir, method, fmt, bits, group)
    for path in paths:
        model, _ = load_for_eval(path, device="cuda")
        assert model.dtype is torch.float16 and next(model.parameters()).is_cuda


@pytest.mark.gpu
def test_int8_quantizes_on_the_gpu_in_float16(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="int8", bits=8, group_size=None, fmt="int8-weight-only")
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert (artifact.params["activation_dtype"], artifact.params["device"]) == ("float16", "cuda")
    assert artifact.sanity is not None and artifact.sanity.passed

