"""The post-quantization sanity check: the row it scores, its perplexity, the cached baseline side
(no baseline model or tokenizer loaded after the first artifact of a baseline), and the
in-memory model backends hand over instead of a reload."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from gate.cache import MANIFEST, ContentCache, write_manifest
from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
from gate.quantize.sanity import MAX_TOKENS, perplexity, sanity_row
from gate.quantize.sources import load_tokenizer
from gate.weights.lockfile import build_lockfile
from tests.quantize.helpers import make_repo
from tests.tiny_models import corpus


def test_the_row_is_the_first_texts_joined_and_cut_to_max_tokens(trained_tiny_llama_dir: Path) -> None:
    tokenizer = load_tokenizer(trained_tiny_llama_dir)
    short = ["Short one.", "Another short one.", corpus()[0], corpus()[1], corpus()[2]]
    row = sanity_row(tokenizer, short)
    assert row == tokenizer("Short one.\n\nAnother short one.\n\n" + corpus()[0] + "\n\n" + corpus()[1])["input_ids"][:MAX_TOKENS]
    assert len(row) == MAX_TOKENS == 32
    assert len(tokenizer("Short one.\n\nAnother short one.")["input_ids"]) < MAX_TOKENS  # the row spans several texts
    assert sanity_row(tokenizer, ["Tiny."]) == tokenizer("Tiny.")["input_ids"]


def test_perplexity_is_the_models_own_causal_lm_loss(trained_tiny_llama_dir: Path) -> None:
    import torch

    model, tokenizer = load_for_eval(trained_tiny_llama_dir)
    row = sanity_row(tokenizer, corpus())
    ids = torch.tensor([row])
    with torch.inference_mode():
        loss = float(model(input_ids=ids, labels=ids).loss)
    assert perplexity(model, row) == pytest.approx(math.exp(loss), rel=1e-5)


def test_texts_without_two_tokens_are_refused(trained_tiny_llama_dir: Path) -> None:
    from gate.errors import BackendError

    tokenizer = load_tokenizer(trained_tiny_llama_dir)
    with pytest.raises(BackendError) as info:
        sanity_row(tokenizer, [""])
    assert info.value.message == "sanity check: the texts produced fewer than two tokens"


@pytest.mark.parametrize(("method", "fmt", "group"), [("rtn", "rtn", 32), ("int8", "int8-weight-only", None)])
def test_fast_backends_are_checked_in_memory_and_match_the_reloaded_artifact(
    tmp_path: Path, trained_tiny_llama_dir: Path, method: str, fmt: str, group: int | None
) -> None:
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method=method, bits=4 if method == "rtn" else 8,
                       group_size=group, fmt=fmt)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.sanity is not None and artifact.sanity.quantized_source == "in-memory"
    assert (artifact.sanity.texts, artifact.sanity.tokens) == (4, MAX_TOKENS - 1)
    # The number recorded from the in-memory model (checked while the files were being written)
    # is what the artifact on disk gives.
    from gate.quantize.calibration import load_calibration

    cal = load_calibration(loaded, tmp_path)
    assert cal is not None
    model, tokenizer = load_for_eval(artifact.path)
    reloaded = perplexity(model, sanity_row(tokenizer, cal.texts))
    assert artifact.sanity.quantized_perplexity == pytest.approx(reloaded, rel=1e-3)
    timings = json.loads((artifact.path / "gate-provenance.json").read_text())["timings"]
    assert set(timings) == {"baseline_reference", "quantize", "load_quantized", "sanity_perplexity", "write",
                            "write_wait"}


def test_the_baseline_side_is_computed_once_per_baseline(
    tmp_path: Path, trained_tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.quantize.sources as sources

    cache = tmp_path / "cache"
    real_load, loads = sources.load_hf_model, []

    def counted(*args: object, **kwargs: object) -> object:
        loads.append(1)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "load_hf_model", counted)
    results, models_loaded = [], []
    for bits in (4, 3):
        root = tmp_path / f"b{bits}"
        loaded = make_repo(root, trained_tiny_llama_dir, method="rtn", bits=bits, group_size=32)
        baseline = prepare_baseline(loaded, root, cache)
        results.append(produce_artifact(loaded, baseline, root, cache, progress=False))
        models_loaded.append(len(loads))
        loads.clear()

        def never(*args: object, **kwargs: object) -> None:
            raise AssertionError("the baseline side was not taken from the cache")

        monkeypatch.setattr(sources, "load_tokenizer", never)
    # rtn loads the baseline to quantize it; only the first artifact loads it (and the tokenizer)
    # once more for the reference.
    assert models_loaded == [2, 1]
    first, second = (a.sanity for a in results)
    assert first is not None and second is not None
    assert (first.baseline_cached, second.baseline_cached) == (False, True)
    assert second.baseline_perplexity == first.baseline_perplexity and second.tokens == first.tokens
    assert second.quantized_perplexity != first.quantized_perplexity
    assert results[0].calibration == results[1].calibration
    assert results[1].calibration is not None and results[1].calibration.tokens_total is not None
    entries = [p for p in (cache / "sanity").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    reference = json.loads((entries[0] / "reference.json").read_text())
    assert set(reference) == {"input_ids", "texts", "perplexity", "calibration_tokens"}
    assert round(reference["perplexity"], 4) == first.baseline_perplexity
    assert len(reference["input_ids"]) - 1 == first.tokens
    assert sum(reference["calibration_tokens"]) == results[0].calibration.tokens_total  # type: ignore[union-attr]


def test_a_corrupt_reference_is_recomputed(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    cache = tmp_path / "cache"
    loaded = make_repo(tmp_path / "a", trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    baseline = prepare_baseline(loaded, tmp_path / "a", cache)
    honest = produce_artifact(loaded, baseline, tmp_path / "a", cache, progress=False).sanity
    (entry,) = [p for p in (cache / "sanity").iterdir() if not p.name.startswith(".")]
    data = json.loads((entry / "reference.json").read_text())
    (entry / "reference.json").write_text(json.dumps({**data, "perplexity": 1e-9}) + "\n")  # tampered: hash no longer matches
    again = make_repo(tmp_path / "b", trained_tiny_llama_dir, method="rtn", bits=3, group_size=32)
    sanity = produce_artifact(again, prepare_baseline(again, tmp_path / "b", cache), tmp_path / "b", cache,
                              progress=False).sanity
    assert honest is not None and sanity is not None
    assert sanity.baseline_cached is False and sanity.baseline_perplexity == honest.baseline_perplexity


def test_artifact_manifest_and_lockfile_agree_with_the_files(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    """Digests computed once while building serve both the lockfile and the cache manifest; both
    must still describe the bytes on disk."""
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    manifest = json.loads((artifact.path / MANIFEST).read_text())["files"]
    actual = {
        str(p.relative_to(artifact.path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in artifact.path.rglob("*") if p.is_file() and p.name != MANIFEST
    }
    assert manifest == actual
    lock = json.loads((artifact.path / "gate.lock.json").read_text())
    assert {f["path"]: f["sha256"] for f in lock["files"]} == {k: v for k, v in actual.items() if k != "gate.lock.json"}


def test_known_digests_are_taken_as_given(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "b.bin").write_bytes(b"b")
    lock = build_lockfile(tmp_path, known={tmp_path / "a.bin": "0" * 64})
    assert {e.path: e.sha256 for e in lock.files} == {"a.bin": "0" * 64, "b.bin": hashlib.sha256(b"b").hexdigest()}
    write_manifest(tmp_path, "k", {"a.bin": "0" * 64})
    files = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert files == {"a.bin": "0" * 64, "b.bin": hashlib.sha256(b"b").hexdigest()}


def test_a_wrong_known_digest_never_becomes_a_cache_hit(tmp_path: Path) -> None:
    """A builder that reports a wrong digest gets an entry that fails verification and is rebuilt."""
    cache = ContentCache(tmp_path)
    calls: list[int] = []

    def lying(out: Path) -> dict[str, str]:
        calls.append(1)
        (out / "w.bin").write_bytes(b"weights")
        return {"w.bin": "0" * 64}

    cache.get_or_build("artifacts", "k", lying)
    assert cache.get("artifacts", "k") is None
    entry = cache.get_or_build("artifacts", "k", lambda out: (out / "w.bin").write_bytes(b"weights") and None)
    assert entry.hit is False and len(calls) == 1
    assert cache.get("artifacts", "k") is not None
