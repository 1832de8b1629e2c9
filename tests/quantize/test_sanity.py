"""The post-quantization sanity check: batched perplexity, the cached baseline reference, and the
in-memory model backends hand over instead of a reload."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from gate.cache import MANIFEST, ContentCache, write_manifest
from gate.quantize import load_for_eval, prepare_baseline, produce_artifact
from gate.quantize.sanity import MAX_TOKENS, TEXTS, perplexity
from gate.weights.lockfile import build_lockfile
from tests.quantize.helpers import make_repo
from tests.tiny_models import corpus


def sequential_perplexity(model, tokenizer, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    """One text at a time, no padding: the definition the batched version must reproduce."""
    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"][:MAX_TOKENS]])
            out = model(input_ids=ids).logits.float()
            nll += float(torch.nn.functional.cross_entropy(out[0, :-1], ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    return math.exp(nll / count)


def test_batched_perplexity_equals_one_text_at_a_time(trained_tiny_llama_dir: Path) -> None:
    model, tokenizer = load_for_eval(trained_tiny_llama_dir)
    texts = [corpus()[0], "Short one.", corpus()[3] + " " + corpus()[4], corpus()[5]]
    lengths = [len(tokenizer(t)["input_ids"][:MAX_TOKENS]) for t in texts]
    assert len(set(lengths)) > 1, lengths  # rows of different lengths: padding is exercised
    batched, tokens = perplexity(model, tokenizer, texts)
    assert tokens == sum(n - 1 for n in lengths)
    assert batched == pytest.approx(sequential_perplexity(model, tokenizer, texts), rel=1e-4)


def test_perplexity_refuses_texts_without_two_tokens(trained_tiny_llama_dir: Path) -> None:
    from gate.errors import BackendError

    model, tokenizer = load_for_eval(trained_tiny_llama_dir)
    with pytest.raises(BackendError) as info:
        perplexity(model, tokenizer, [""])
    assert info.value.message == "sanity check: no text produced at least two tokens"


@pytest.mark.parametrize(("method", "fmt", "group"), [("rtn", "rtn", 32), ("int8", "int8-weight-only", None)])
def test_fast_backends_are_checked_in_memory_and_match_the_reloaded_artifact(
    tmp_path: Path, trained_tiny_llama_dir: Path, method: str, fmt: str, group: int | None
) -> None:
    loaded = make_repo(tmp_path, trained_tiny_llama_dir, method=method, bits=4 if method == "rtn" else 8,
                       group_size=group, fmt=fmt)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert artifact.sanity is not None and artifact.sanity.quantized_source == "in-memory"
    # The number recorded from the in-memory model is what the artifact on disk gives.
    from gate.quantize.calibration import load_calibration

    cal = load_calibration(loaded, tmp_path)
    assert cal is not None
    model, tokenizer = load_for_eval(artifact.path)
    reloaded, tokens = perplexity(model, tokenizer, list(cal.texts)[:TEXTS])
    assert tokens == artifact.sanity.tokens
    assert artifact.sanity.quantized_perplexity == pytest.approx(reloaded, rel=1e-3)


def test_the_baseline_reference_is_computed_once_per_baseline(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    cache = tmp_path / "cache"
    results = []
    for bits in (4, 3):
        root = tmp_path / f"b{bits}"
        loaded = make_repo(root, trained_tiny_llama_dir, method="rtn", bits=bits, group_size=32)
        baseline = prepare_baseline(loaded, root, cache)
        results.append(produce_artifact(loaded, baseline, root, cache, progress=False))
    first, second = (a.sanity for a in results)
    assert first is not None and second is not None
    assert (first.baseline_cached, second.baseline_cached) == (False, True)
    assert second.baseline_perplexity == first.baseline_perplexity and second.tokens == first.tokens
    assert second.quantized_perplexity != first.quantized_perplexity
    entries = [p for p in (cache / "sanity").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    reference = json.loads((entries[0] / "reference.json").read_text())
    assert round(reference["perplexity"], 4) == first.baseline_perplexity and reference["tokens"] == first.tokens


def test_a_corrupt_reference_is_recomputed(tmp_path: Path, trained_tiny_llama_dir: Path) -> None:
    cache = tmp_path / "cache"
    loaded = make_repo(tmp_path / "a", trained_tiny_llama_dir, method="rtn", bits=4, group_size=32)
    baseline = prepare_baseline(loaded, tmp_path / "a", cache)
    honest = produce_artifact(loaded, baseline, tmp_path / "a", cache, progress=False).sanity
    (entry,) = [p for p in (cache / "sanity").iterdir() if not p.name.startswith(".")]
    (entry / "reference.json").write_text('{"perplexity": 1e-9, "tokens": 1}\n')  # tampered: hash no longer matches
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
