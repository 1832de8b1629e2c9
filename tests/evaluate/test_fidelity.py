"""Fidelity: KL and top-1 flips of a real tiny model against itself and against a perturbed copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gate.evaluate.fidelity import (
    DEFAULT_TOKENS,
    DEFAULT_WINDOW,
    MIN_DOCUMENTS,
    FidelityReference,
    FidelitySettings,
    build_reference,
    cluster_bound,
    cluster_bounds,
    compare,
    judge,
    texts_digest,
    token_windows,
    window_for,
)
from gate.verdict.intervals import decision_level
from tests.tiny_models import CORPUS_LINES

# 24 short documents: the corpus lines and the same words reversed (fidelity needs >= 20 documents).
TEXTS = [*CORPUS_LINES, *(" ".join(reversed(line.split())) for line in CORPUS_LINES)]


@pytest.fixture(scope="module")
def model_and_reference(tiny_llama_dir: Path) -> tuple[object, object, FidelityReference]:
    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(tiny_llama_dir)
    windows = token_windows(tokenizer, TEXTS, tokens=110, window=6)
    reference = build_reference(model, windows, texts_digest(TEXTS), top_k=16, device="cpu")
    return model, tokenizer, reference


def test_token_windows_cover_exactly_the_requested_positions(model_and_reference: tuple) -> None:
    _, tokenizer, reference = model_and_reference
    assert reference.positions == 110
    assert len(reference.token_ids) == 22 >= MIN_DOCUMENTS
    windows = token_windows(tokenizer, TEXTS, tokens=110, window=6)
    assert all(2 <= len(w) <= 6 for w in windows)


def test_default_window_spreads_the_tokens_over_64_documents() -> None:
    assert (DEFAULT_TOKENS, DEFAULT_WINDOW) == (2048, 33)  # 64 documents of 32 positions
    # 1,024 tokens (the examples): 32-token windows, 33 documents; long budgets: 256-token windows.
    assert [window_for(t) for t in (256, 1024, 2048, 8192, 100_000)] == [32, 32, 33, 129, 256]


def test_a_model_against_itself_has_no_divergence(model_and_reference: tuple) -> None:
    model, _, reference = model_and_reference
    result = compare(reference, model, FidelitySettings(texts_name="corpus", top_k=16),
                     device="cpu", max_kl=0.01, max_flip_rate=0.0)
    assert result.kl_mean == pytest.approx(0.0, abs=1e-6)
    assert result.flip_rate == 0.0 and result.flip_ci_high == 0.0
    assert result.passed is True and result.outcome == "pass" and result.reasons == []
    assert result.tokens == 110 and result.documents == len(reference.token_ids) == 22


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
    result = compare(reference, noisy, FidelitySettings(texts_name="corpus", top_k=16),
                     device="cpu", max_kl=1e-4, max_flip_rate=0.01)
    assert result.kl_mean > 1e-3 and result.kl_ci_low <= result.kl_mean <= result.kl_ci_high
    assert result.flip_rate > 0.0
    assert result.passed is False and result.outcome == "fail"
    assert result.reasons[0] == (
        f"fidelity: KL {result.kl_mean:.4f} nats/token (95% bounds {result.kl_ci_low:.4f} to {result.kl_ci_high:.4f}) "
        "exceeds max_kl 0.0001 → FAIL"
    )


def test_a_limit_inside_the_interval_is_inconclusive(model_and_reference: tuple) -> None:
    """Non-inferiority, as for metrics: a limit between the CI bounds decides nothing either way."""
    model, _, reference = model_and_reference
    noisy = perturbed(model, 0.3)
    settings = FidelitySettings(texts_name="corpus", top_k=16)
    probe = compare(reference, noisy, settings, device="cpu")
    assert probe.kl_ci_low < probe.kl_ci_high
    limit = round((probe.kl_ci_low + probe.kl_ci_high) / 2, 6)
    result = compare(reference, noisy, settings, device="cpu", max_kl=limit)
    assert (result.outcome, result.passed) == ("inconclusive", None)
    assert result.reasons == [
        f"fidelity: KL {result.kl_mean:.4f} nats/token (95% bounds {result.kl_ci_low:.4f} to {result.kl_ci_high:.4f}) "
        f"straddles max_kl {limit} → INCONCLUSIVE (more fidelity tokens narrow it)"
    ]
    passing = compare(reference, noisy, settings, device="cpu", max_kl=probe.kl_ci_high * 1.01)
    failing = compare(reference, noisy, settings, device="cpu", max_kl=probe.kl_ci_low * 0.99)
    assert (passing.outcome, failing.outcome) == ("pass", "fail")
    both = compare(reference, noisy, settings, device="cpu", max_kl=limit, max_flip_rate=0.0)
    assert both.outcome == "fail" if both.flip_ci_low > 0 else both.outcome == "inconclusive"


def test_no_limits_means_not_judged(model_and_reference: tuple) -> None:
    model, _, reference = model_and_reference
    result = compare(reference, model, FidelitySettings(texts_name="corpus", top_k=16), device="cpu")
    assert result.passed is None and result.outcome is None


def test_reference_survives_a_save_and_load(model_and_reference: tuple, tmp_path: Path) -> None:
    _, _, reference = model_and_reference
    reference.save(tmp_path / "ref.npz")
    again = FidelityReference.load(tmp_path / "ref.npz")
    assert again.texts_sha256 == reference.texts_sha256
    assert all(np.array_equal(a, b) for a, b in zip(again.top_idx, reference.top_idx, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(again.top_logp, reference.top_logp, strict=True))


def test_cluster_bounds_by_hand() -> None:
    """Symmetric per-document means (skewness 0): the bound is the plain Student-t bound over
    documents at the decision level (96% for 95%), positions weighting each document."""
    from scipy import stats

    means = np.array([0.02, 0.04, 0.06, 0.08] * 5)  # 20 documents, 10 positions each
    docs = [np.full(10, m) for m in means]
    got = cluster_bound(docs, confidence=0.95)
    q = stats.t.ppf(decision_level(0.95), 19)
    se = means.std(ddof=1) / np.sqrt(20)
    assert got.mean == pytest.approx(0.05)
    assert (got.low, got.high) == (pytest.approx(0.05 - q * se), pytest.approx(0.05 + q * se))
    assert got.undecided is None and got.documents == 20
    # Positions weight documents: a 90-position document of zeros and a 10-position one of ones.
    mean, _, _, _ = cluster_bounds(np.array([0.0, 10.0]), np.array([90.0, 10.0]), 0.95)
    assert float(mean) == pytest.approx(0.1)


def test_too_few_documents_are_never_decided() -> None:
    """One document used to give a zero-width interval that passed on the point estimate."""
    one = cluster_bound([np.full(64, 0.01)], confidence=0.95)
    assert one.undecided == f"1 documents; at least {MIN_DOCUMENTS} are needed"
    outcome, reason = judge("KL", "nats/token", one, "max_kl", 0.05, 95.0, ".4f")
    assert outcome == "inconclusive"
    assert reason == (
        "fidelity: KL 0.0100 nats/token (95% bounds 0.0100 to 0.0100) not decided against max_kl 0.05: "
        f"1 documents; at least {MIN_DOCUMENTS} are needed → INCONCLUSIVE "
        "(raise quality.fidelity.tokens or give more texts)"
    )
    same = cluster_bound([np.full(64, 0.01)] * 25, confidence=0.95)
    assert same.undecided == "every document has the same value (no spread between documents)"
    zeros = cluster_bound([np.zeros(64)] * 25, confidence=0.95)  # identical distributions everywhere
    assert zeros.undecided is None and (zeros.low, zeros.high) == (0.0, 0.0)
