"""Fidelity: how closely the quantized model's next-token distributions follow the baseline's.

Two signals sharper than task accuracy (accuracy can hold while many answers flip):

- mean KL(baseline || quantized) per token position, in nats;
- top-1 flip rate: the fraction of positions whose most likely next token changes.

The baseline pass produces a ``FidelityReference``: per document, the token ids and the baseline's
top-k log-probabilities plus the tail mass, small enough to keep in the baseline cache (the full
distributions of a 49k vocabulary over 2k positions would be ~400 MB). The quantized pass compares
against it. Each limit is judged like a quality criterion: one-sided bounds at the spec's
confidence with documents as the sampling units (positions inside a document are correlated), the
verdict's skewness-corrected t bound on the per-document ratio estimator, and at least
``MIN_DOCUMENTS`` documents (``cluster_bounds``; coverage measured in ``benchmarks/verdict_sim.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gate.evaluate.interface import EvaluateError, FidelityOutcome, FidelityResult

DEFAULT_TOKENS = 2048
TARGET_DOCUMENTS = 64
"""Documents the window aims for (``window_for``): the bounds count documents, and at 64 a model
at half the limit PASSES about 75% (KL) / 58% (flips) of the time (``benchmarks/verdict_sim.py``)."""
MIN_WINDOW = 32
"""Shortest window, tokens: shorter ones would measure mostly context-free positions."""
DEFAULT_WINDOW = DEFAULT_TOKENS // TARGET_DOCUMENTS + 1
"""Tokens per document window at the default token count: 33 tokens = 32 positions, 64 documents."""
DEFAULT_TOP_K = 64
MIN_DOCUMENTS = 20
"""Fewest documents (windows) a fidelity limit is decided on; below, it is INCONCLUSIVE (with one
document the old interval had zero width and passed on the point estimate alone)."""


@dataclass(frozen=True)
class FidelitySettings:
    texts_name: str
    """Task name or file the texts come from (reported)."""
    tokens: int = DEFAULT_TOKENS
    window: int = DEFAULT_WINDOW
    """Longest document window, tokens."""
    top_k: int = DEFAULT_TOP_K
    confidence: float = 0.95

    def key(self) -> dict[str, Any]:
        return {"texts": self.texts_name, "tokens": self.tokens, "window": self.window, "top_k": self.top_k}


@dataclass(frozen=True)
class FidelityReference:
    """The baseline side: token windows and the baseline's top-k next-token log-probs."""

    texts_sha256: str
    token_ids: list[np.ndarray]
    """Per document: int64 token ids (length L)."""
    top_idx: list[np.ndarray]
    """Per document: (L-1, k) int32 token ids, most likely first."""
    top_logp: list[np.ndarray]
    """Per document: (L-1, k) float32 log-probabilities."""

    @property
    def positions(self) -> int:
        return sum(len(t) - 1 for t in self.token_ids)

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"texts_sha256": np.frombuffer(self.texts_sha256.encode(), dtype=np.uint8)}
        for i, (ids, idx, lp) in enumerate(zip(self.token_ids, self.top_idx, self.top_logp, strict=True)):
            arrays[f"ids_{i}"], arrays[f"idx_{i}"], arrays[f"lp_{i}"] = ids, idx, lp
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> FidelityReference:
        with np.load(path, allow_pickle=False) as data:
            n = sum(1 for k in data.files if k.startswith("ids_"))
            return cls(
                texts_sha256=bytes(data["texts_sha256"]).decode(),
                token_ids=[data[f"ids_{i}"] for i in range(n)],
                top_idx=[data[f"idx_{i}"] for i in range(n)],
                top_logp=[data[f"lp_{i}"] for i in range(n)],
            )


def window_for(tokens: int) -> int:
    """The window that spreads ``tokens`` positions over ``TARGET_DOCUMENTS`` documents (between
    ``MIN_WINDOW`` and 256 tokens each): the bounds count documents, not positions."""
    return max(MIN_WINDOW, min(256, tokens // TARGET_DOCUMENTS + 1))


def load_texts(path: Path, field: str = "text") -> list[str]:
    """Texts of a JSONL file (one object per line, ``field`` holding the text) or a plain text file."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [str(json.loads(line)[field]) for line in raw.splitlines() if line.strip()]
    return [p.strip() for p in raw.split("\n\n") if p.strip()]


def token_windows(tokenizer: Any, texts: list[str], tokens: int, window: int) -> list[list[int]]:
    """Documents in order, each cut to ``window`` tokens, until ``tokens`` positions are covered."""
    out: list[list[int]] = []
    covered = 0
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])[:window]
        if len(ids) < 2:
            continue
        need = tokens - covered
        if len(ids) - 1 > need:
            ids = ids[: need + 1]
        out.append(ids)
        covered += len(ids) - 1
        if covered >= tokens:
            break
    return out


def _log_probs(model: Any, ids: list[int], device: str) -> Any:
    import torch

    with torch.inference_mode():
        batch = torch.tensor([ids], dtype=torch.long, device=device)
        logits = model(input_ids=batch).logits[0, :-1].float()
        return torch.log_softmax(logits, dim=-1)


def build_reference(model: Any, windows: list[list[int]], texts_sha256: str, *, top_k: int, device: str) -> FidelityReference:
    """Baseline pass: keep each position's top-k log-probs."""
    import torch

    ids_out, idx_out, lp_out = [], [], []
    for ids in windows:
        logp = _log_probs(model, ids, device)
        if not torch.isfinite(logp).all():
            raise EvaluateError("fidelity: the baseline produced non-finite log-probabilities",
                                hint="check the baseline weights (NaN/Inf) and its dtype")
        top = torch.topk(logp, k=min(top_k, logp.shape[-1]), dim=-1)
        ids_out.append(np.asarray(ids, dtype=np.int64))
        idx_out.append(top.indices.to(torch.int32).cpu().numpy())
        lp_out.append(top.values.to(torch.float32).cpu().numpy())
    return FidelityReference(texts_sha256=texts_sha256, token_ids=ids_out, top_idx=idx_out, top_logp=lp_out)


def _log1mexp(logsum: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, stable; clipped so an all-mass top-k gives a tiny tail."""
    x = np.minimum(logsum, -1e-7)
    return np.where(x > -0.693, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def position_scores(reference: FidelityReference, model: Any, device: str) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Quantized pass: per document, per-position KL and flip indicators; and the mean tail mass."""
    import torch

    kls: list[np.ndarray] = []
    flips: list[np.ndarray] = []
    tails: list[float] = []
    for ids, idx, p_lp in zip(reference.token_ids, reference.top_idx, reference.top_logp, strict=True):
        q_all = _log_probs(model, ids.tolist(), device)
        if not torch.isfinite(q_all).all():
            kls.append(np.full(len(idx), np.inf))
            flips.append(np.ones(len(idx)))
            tails.append(0.0)
            continue
        q_lp = torch.gather(q_all, 1, torch.from_numpy(idx.astype(np.int64)).to(q_all.device)).cpu().numpy().astype(np.float64)
        q_top1 = q_all.argmax(dim=-1).cpu().numpy()
        p = p_lp.astype(np.float64)
        p_tail_log = _log1mexp(np.logaddexp.reduce(p, axis=1))
        q_tail_log = _log1mexp(np.logaddexp.reduce(q_lp, axis=1))
        kl = (np.exp(p) * (p - q_lp)).sum(axis=1) + np.exp(p_tail_log) * (p_tail_log - q_tail_log)
        kls.append(np.maximum(kl, 0.0))
        flips.append((q_top1 != idx[:, 0]).astype(np.float64))
        tails.append(float(np.exp(p_tail_log).mean()))
    return kls, flips, float(np.mean(tails)) if tails else 0.0


@dataclass(frozen=True)
class ClusterBound:
    """The mean over all positions with one-sided bounds from documents as the sampling units."""

    mean: float
    low: float
    high: float
    documents: int
    undecided: str | None = None
    """Why no decision may be taken on these documents (too few, no spread, too skewed), else None."""


def cluster_bounds(sums: np.ndarray, counts: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised over rows of per-document ``sums`` and position ``counts`` (shape ``(..., D)``):
    the position-weighted mean ``sum(sums) / sum(counts)``, its one-sided ``confidence`` bounds
    (computed at ``decision_level(confidence)``, as for metrics) and whether the row may decide.

    Positions inside a document are correlated, so the document is the unit: the mean is a ratio
    estimator whose per-document influence ``(s_d - mean * c_d) / mean(c)`` goes to the verdict's
    skewness-corrected t bound (``gate.verdict.intervals.skew_t_bounds``), with its floors, plus
    ``MIN_DOCUMENTS``. Rows whose every document is exactly 0 (identical distributions at every
    position: the floor of a non-negative measure) are bounded by 0 and may decide.
    """
    from gate.verdict.intervals import decision_level, skew_t_bounds

    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    mean = s.sum(axis=-1) / c.sum(axis=-1)
    influence = (s - mean[..., None] * c) / c.mean(axis=-1, keepdims=True)
    low, high, decidable = skew_t_bounds(mean, influence, decision_level(confidence))
    zero = np.all(s == 0, axis=-1)
    docs = s.shape[-1]
    decidable = (decidable | zero) & (docs >= MIN_DOCUMENTS)
    low = np.where(zero, 0.0, np.maximum(low, 0.0))
    high = np.where(zero, 0.0, high)
    return mean, low, high, decidable


def cluster_bound(per_doc: list[np.ndarray], *, confidence: float) -> ClusterBound:
    """``cluster_bounds`` for one measurement (per-position values grouped by document)."""
    sums = np.array([float(v.sum()) for v in per_doc])
    counts = np.array([len(v) for v in per_doc], dtype=np.float64)
    docs = len(per_doc)
    mean_all = float(sums.sum() / counts.sum()) if docs else float("nan")
    if docs == 0 or not np.isfinite(mean_all):
        return ClusterBound(mean_all, mean_all, mean_all, docs)
    mean, low, high, decidable = cluster_bounds(sums, counts, confidence)
    undecided = None
    if docs < MIN_DOCUMENTS:
        undecided = f"{docs} documents; at least {MIN_DOCUMENTS} are needed"
    elif not bool(decidable):
        undecided = "every document has the same value (no spread between documents)"
    return ClusterBound(float(mean), float(low), float(high), docs, undecided)


def compare(
    reference: FidelityReference,
    model: Any,
    settings: FidelitySettings,
    *,
    device: str,
    max_kl: float | None = None,
    max_flip_rate: float | None = None,
) -> FidelityResult:
    """KL and flip rate of ``model`` against the baseline reference, with bounds and the spec's limits."""
    kls, flips, tail = position_scores(reference, model, device)
    return judged_result(
        kls, flips, settings, texts_sha256=reference.texts_sha256, documents=len(reference.token_ids),
        tokens=reference.positions, top_k=settings.top_k, tail_mass_mean=tail,
        method=lambda level: f"top-{settings.top_k} + tail bucket KL; one-sided {level:g}% bounds over documents "
        f"(skewness-corrected t on the per-document ratio estimator, at least {MIN_DOCUMENTS} documents)",
        max_kl=max_kl, max_flip_rate=max_flip_rate)


def judged_result(
    kls: list[np.ndarray],
    flips: list[np.ndarray],
    settings: FidelitySettings,
    *,
    texts_sha256: str,
    documents: int,
    tokens: int,
    top_k: int,
    tail_mass_mean: float,
    method: Callable[[float], str],
    max_kl: float | None,
    max_flip_rate: float | None,
) -> FidelityResult:
    """The fidelity result of per-position KL and flip values grouped by document, however a runtime
    measured them (in process, llama.cpp's log-probability files, vLLM's prompt logprobs): cluster
    bounds over documents, each judged against its limit; ``method(level)`` describes the measurement."""
    kl = cluster_bound(kls, confidence=settings.confidence)
    fl = cluster_bound(flips, confidence=settings.confidence)
    level = round(settings.confidence * 100, 1)
    judged = [
        judge("KL", "nats/token", kl, "max_kl", max_kl, level, ".4f"),
        judge("top-1 flip rate", "", fl, "max_flip_rate", max_flip_rate, level, ".3f"),
    ]
    outcomes = [o for o, _ in judged if o is not None]
    reasons = [r for _, r in judged if r]
    outcome: FidelityOutcome | None = None
    if outcomes:
        outcome = "fail" if "fail" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    return FidelityResult(
        texts=settings.texts_name,
        texts_sha256=texts_sha256,
        documents=documents,
        tokens=tokens,
        confidence=settings.confidence,
        kl_mean=_finite(kl.mean), kl_ci_low=_finite(kl.low), kl_ci_high=_finite(kl.high),
        flip_rate=fl.mean, flip_ci_low=fl.low, flip_ci_high=fl.high,
        top_k=top_k,
        tail_mass_mean=tail_mass_mean,
        method=method(level),
        max_kl=max_kl,
        max_flip_rate=max_flip_rate,
        passed=None if outcome in (None, "inconclusive") else outcome == "pass",
        outcome=outcome,
        reasons=reasons,
        kl_outcome=judged[0][0],
        flip_outcome=judged[1][0],
        undecided=kl.undecided or fl.undecided,
    )


def judge(
    name: str, unit: str, bound: ClusterBound, field: str, limit: float | None, level: float, fmt: str
) -> tuple[FidelityOutcome | None, str]:
    """Non-inferiority against one limit, as for metrics: pass when the upper bound is within it,
    fail when the lower bound is beyond it, inconclusive when the bounds straddle it or the
    documents cannot support a decision (too few, no spread, too skewed)."""
    if limit is None:
        return None, ""
    mean, low, high = bound.mean, bound.low, bound.high
    shown = f"fidelity: {name} {mean:{fmt}}{' ' + unit if unit else ''} ({level:g}% bounds {low:{fmt}} to {high:{fmt}})"
    if np.isnan(low) or np.isnan(high) or not np.isfinite(mean):  # a broken model, never a pass
        return "fail", f"{shown} exceeds {field} {limit} → FAIL"
    if bound.undecided is not None:
        return "inconclusive", (
            f"{shown} not decided against {field} {limit}: {bound.undecided} → INCONCLUSIVE "
            "(raise quality.fidelity.tokens or give more texts)"
        )
    if high <= limit:
        return "pass", ""
    if low > limit:
        return "fail", f"{shown} exceeds {field} {limit} → FAIL"
    return "inconclusive", f"{shown} straddles {field} {limit} → INCONCLUSIVE (more fidelity tokens narrow it)"


def _finite(value: float) -> float:
    """JSON has no infinity: a broken model's KL is reported as a large finite number."""
    return value if np.isfinite(value) else 1e9


def texts_digest(texts: list[str]) -> str:
    return hashlib.sha256("\n\x00".join(texts).encode("utf-8")).hexdigest()
