"""Fidelity: KL and top-1 flips of a real tiny model against itself and against a perturbed copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gate.evaluate.fidelity import (
    FidelityReference,
    FidelitySettings,
    build_reference,
    cluster_bootstrap_ci,
    compare,
    texts_digest,
    token_windows,
)
from tests.tiny_models import CORPUS_LINES


@pytest.fixture(scope="module")
def model_and_reference(tiny_llama_dir: Path) -> tuple[object, object, FidelityReference]:
    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(tiny_llama_dir)
    windows = token_windows(tokenizer, CORPUS_LINES, tokens=96, window=16)
    reference = build_reference(model, windows, texts_digest(CORPUS_LINES), top_k=16, device="cpu")
    return model, tokenizer, reference


def test_token_windows_cover_exactly_the_requested_positions(model_and_reference: tuple) -> None:
    _, tokenizer, reference = model_and_reference
    assert reference.positions == 96
    windows = token_windows(tokenizer, CORPUS_LINES, tokens=96, window=16)
    assert all(2 <= len(w) <= 16 for w in windows)


def test_a_model_against_itself_has_no_divergence(model_and_reference: tuple) -> None:
    model, _, reference = model_and_reference
    result = compare(reference, model, FidelitySettings(texts_name="corpus", top_k=16, resamples=200),
                     device="cpu", max_kl=0.01, max_flip_rate=0.0)
    assert result.kl_mean == pytest.approx(0.0, abs=1e-6)
    assert result.flip_rate == 0.0 and result.flip_ci_high == 0.0
    assert result.passed is True and result.outcome == "pass" and result.reasons == []
    assert result.tokens == 96 and result.documents == len(reference.token_ids)


def perturbed(model, scale: float):  # type: ignore[no-untyped-def]
    """A copy of ``model`` with seeded Gaussian noise of ``scale`` x each tensor's mean magnitude."""
    import copy

    import torch

    noisy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * p.abs().mean() * scale)
    return noisy


def test_perturbed_weights_diverge_and_fail_the_limits(model_and_reference: tuple) -> None:
    model, _, reference = model_and_reference
    noisy = perturbed(model, 2.0)
    result = compare(reference, noisy, FidelitySettings(texts_name="corpus", top_k=16, resamples=200),
                     device="cpu", max_kl=1e-4, max_flip_rate=0.01)
    assert result.kl_mean > 1e-3 and result.kl_ci_low <= result.kl_mean <= result.kl_ci_high
    assert result.flip_rate > 0.0
    assert result.passed is False and result.outcome == "fail"
    assert result.reasons[0] == (
        f"fidelity: KL {result.kl_mean:.4f} nats/token (95% CI {result.kl_ci_low:.4f} to {result.kl_ci_high:.4f}) "
        "exceeds max_kl 0.0001 → FAIL"
    )


def test_a_limit_inside_the_interval_is_inconclusive(model_and_reference: tuple) -> None:
    """Non-inferiority, as for metrics: a limit between the CI bounds decides nothing either way."""
    model, _, reference = model_and_reference
    noisy = perturbed(model, 0.3)
    settings = FidelitySettings(texts_name="corpus", top_k=16, resamples=200)
    probe = compare(reference, noisy, settings, device="cpu")
    assert probe.kl_ci_low < probe.kl_ci_high
    limit = round((probe.kl_ci_low + probe.kl_ci_high) / 2, 6)
    result = compare(reference, noisy, settings, device="cpu", max_kl=limit)
    assert (result.outcome, result.passed) == ("inconclusive", None)
    assert result.reasons == [
        f"fidelity: KL {result.kl_mean:.4f} nats/token (95% CI {result.kl_ci_low:.4f} to {result.kl_ci_high:.4f}) "
        f"straddles max_kl {limit} → INCONCLUSIVE (more fidelity tokens narrow it)"
    ]
    passing = compare(reference, noisy, settings, device="cpu", max_kl=probe.kl_ci_high * 1.01)
    failing = compare(reference, noisy, settings, device="cpu", max_kl=probe.kl_ci_low * 0.99)
    assert (passing.outcome, failing.outcome) == ("pass", "fail")
    both = compare(reference, noisy, settings, device="cpu", max_kl=limit, max_flip_rate=0.0)
    assert both.outcome == "fail" if both.flip_ci_low > 0 else both.outcome == "inconclusive"


def test_no_limits_means_not_judged(model_and_reference: tuple) -> None:
    model, _, reference = model_and_reference
    result = compare(reference, model, FidelitySettings(texts_name="corpus", top_k=16, resamples=100), device="cpu")
    assert result.passed is None and result.outcome is None


def test_reference_survives_a_save_and_load(model_and_reference: tuple, tmp_path: Path) -> None:
    _, _, reference = model_and_reference
    reference.save(tmp_path / "ref.npz")
    again = FidelityReference.load(tmp_path / "ref.npz")
    assert again.texts_sha256 == reference.texts_sha256
    assert all(np.array_equal(a, b) for a, b in zip(again.top_idx, reference.top_idx, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(again.top_logp, reference.top_logp, strict=True))


def test_cluster_bootstrap_weights_documents_by_positions() -> None:
    docs = [np.zeros(90), np.ones(10)]
    mean, lo, hi = cluster_bootstrap_ci(docs, confidence=0.9, seed=0, resamples=500)
    assert mean == pytest.approx(0.1)
    assert 0.0 <= lo <= mean <= hi <= 1.0
