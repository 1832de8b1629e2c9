"""Paired statistics: baseline and quantized scored the SAME items, compared item by item.

Conventions used throughout the verdict package:

- A *bound at confidence c* is one-sided: the upper bound ``U`` satisfies P(true value <= U) >= c.
  The pair ``(low, high)`` returned by the interval functions is therefore a two-sided
  ``2c - 1`` interval (a 90% interval for c = 0.95) whose each end is a one-sided ``c`` bound.
  Non-inferiority uses exactly one end per decision (PASS: ``high <= tolerance``; FAIL:
  ``low > tolerance``), so each wrong decision has probability at most ``1 - c``.
- The bootstrap resamples items, seeded, vectorised with numpy index matrices; both aggregates are
  recomputed on the same resampled indices (that is the pairing). Bounds are the *expanded
  percentile* bounds (``expanded_level``), which keep the nominal level for small item counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from gate.errors import BackendError

ScoreKind = Literal["mean", "binary", "perplexity", "bits_per_byte"]
SCORE_KINDS: tuple[str, ...] = ("mean", "binary", "perplexity", "bits_per_byte")
RATIO_KINDS: tuple[str, ...] = ("perplexity", "bits_per_byte")

_STANDARD_NORMAL = NormalDist()
# Elements per index-matrix chunk: bounds the bootstrap's memory (~32 MB of int64) at any size.
_CHUNK_ELEMENTS = 4_000_000


class ScoresError(BackendError):
    """Per-item scores handed to the verdict are malformed (a bug in the evaluation stage)."""


def normal_quantile(p: float) -> float:
    """The standard normal quantile (numpy-free, via the standard library)."""
    return _STANDARD_NORMAL.inv_cdf(p)


def normal_cdf(x: float) -> float:
    return _STANDARD_NORMAL.cdf(x)


@dataclass(frozen=True, eq=False)
class PairedScores:
    """Per-item scores of the baseline and the quantized model on the same items, in the same order.

    ``base[i]`` and ``quant[i]`` belong to the SAME item ``i``.
    """

    base: np.ndarray
    """Baseline scores: shape ``(n,)`` for ``mean``/``binary``; ``(n, 2)`` for the ratio kinds."""
    quant: np.ndarray
    """Quantized scores, same shape and item order as ``base``."""
    kind: ScoreKind
    """How items aggregate.

    - ``binary``: 0/1 per item (acc, acc_norm, exact_match); aggregate = mean.
    - ``mean``: any real per-item score (f1, a rubric score); aggregate = mean.
    - ``perplexity``: column 0 = the document's summed NEGATIVE log-likelihood in nats (>= 0, i.e.
      ``-loglikelihood`` from lm-eval's ``loglikelihood_rolling``), column 1 = its word (or token)
      count; aggregate = ``exp(sum nll / sum count)``.
    - ``bits_per_byte``: column 0 as above, column 1 = the document's UTF-8 byte count; aggregate
      = ``sum nll / (sum bytes * ln 2)``.
    """
    points: bool | None = None
    """Whether absolute tolerances are in percentage points (score x 100). None = decide from the
    data: True for ``binary`` and for ``mean`` scores that all lie in [0, 1]; False otherwise."""
    _scale: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SCORE_KINDS:
            raise ScoresError(
                f"unknown score kind {self.kind!r}",
                hint=f"use one of: {', '.join(SCORE_KINDS)}",
            )
        base = np.asarray(self.base, dtype=np.float64)
        quant = np.asarray(self.quant, dtype=np.float64)
        if base.shape != quant.shape:
            raise ScoresError(
                f"baseline and quantized scores differ in shape: {base.shape} vs {quant.shape}",
                hint="pair the scores item by item: both models must score the same items",
            )
        want_2d = self.kind in RATIO_KINDS
        if want_2d and (base.ndim != 2 or base.shape[1] != 2):
            raise ScoresError(
                f"{self.kind} scores must have shape (n, 2) (summed nll, count); got {base.shape}",
                hint="column 0 = the document's negative log-likelihood, column 1 = its word/byte count",
            )
        if not want_2d and base.ndim != 1:
            raise ScoresError(
                f"{self.kind} scores must have shape (n,); got {base.shape}",
                hint="give one score per item",
            )
        if base.shape[0] == 0:
            raise ScoresError("no paired items to compare", hint="evaluate at least one item")
        if not (np.all(np.isfinite(base)) and np.all(np.isfinite(quant))):
            raise ScoresError(
                "scores contain NaN or infinite values",
                hint="a NaN score usually means a failed generation or overflow; fix the evaluation",
            )
        if self.kind == "binary" and not (np.all((base == 0) | (base == 1)) and np.all((quant == 0) | (quant == 1))):
            raise ScoresError("binary scores must be 0 or 1", hint="use kind='mean' for fractional scores")
        if want_2d:
            if np.any(base[:, 0] < 0) or np.any(quant[:, 0] < 0):
                raise ScoresError(
                    "column 0 of ratio scores must be the negative log-likelihood (>= 0); got a negative value",
                    hint="pass -loglikelihood, not the loglikelihood lm-eval returns",
                )
            if np.any(base[:, 1] <= 0) or np.any(quant[:, 1] <= 0):
                raise ScoresError(
                    "column 1 of ratio scores (word/byte count) must be positive",
                    hint="drop empty documents before scoring",
                )
        base.setflags(write=False)
        quant.setflags(write=False)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "quant", quant)
        points = self.points
        if points is None:
            points = self.kind == "binary" or (
                self.kind == "mean" and bool(np.all((base >= 0) & (base <= 1) & (quant >= 0) & (quant <= 1)))
            )
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "_scale", 100.0 if points else 1.0)

    @property
    def n(self) -> int:
        return int(self.base.shape[0])

    @property
    def scale(self) -> float:
        """Multiplier from metric units to absolute-tolerance units (100 for points, else 1)."""
        return self._scale

    def head(self, k: int) -> PairedScores:
        """The first ``k`` items (what a sequential look has evaluated)."""
        return PairedScores(self.base[:k], self.quant[:k], self.kind, points=self.points)

    def aggregates(self) -> tuple[float, float]:
        """Baseline and quantized aggregate in metric units (accuracy as a fraction, perplexity)."""
        idx = np.arange(self.n)[None, :]
        return float(aggregate(self.kind, self.base, idx)[0]), float(aggregate(self.kind, self.quant, idx)[0])

    def discordance(self) -> tuple[int, int]:
        """For binary scores: (items only the baseline got right, items only the quantized got right)."""
        if self.kind != "binary":
            raise ScoresError("discordant pairs are defined for binary scores only")
        worse = int(np.sum((self.base == 1) & (self.quant == 0)))
        better = int(np.sum((self.base == 0) & (self.quant == 1)))
        return worse, better


def aggregate(kind: str, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The aggregate of ``values`` over each row of the index matrix ``idx`` (shape ``(B, m)``)."""
    if kind in ("mean", "binary"):
        return np.asarray(values[idx].mean(axis=1))
    nll = values[:, 0][idx].sum(axis=1)
    count = values[:, 1][idx].sum(axis=1)
    if kind == "perplexity":
        return np.asarray(np.exp(nll / count))
    return np.asarray(nll / (count * math.log(2.0)))


def index_chunks(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    """Seeded bootstrap index matrices (rows = resamples), chunked to bound memory."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    chunks = []
    done = 0
    while done < resamples:
        m = min(rows, resamples - done)
        chunks.append(rng.integers(0, n, size=(m, n), dtype=np.int32 if n < 2**31 else np.int64))
        done += m
    return chunks


def student_t_quantile(p: float, df: float) -> float:
    """Student-t quantile by the Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5); accurate to
    about 1e-4 for df >= 5 at the levels the gate uses."""
    z = normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def expanded_level(confidence: float, n: int) -> float:
    """The percentile level of the *expanded percentile* bootstrap (Hesterberg 2015).

    The plain percentile interval is too narrow for small n (it ignores the t-distribution and the
    n/(n-1) variance bias), which would make false PASSes more likely than 1 - c. Taking the
    ``Phi(sqrt(n/(n-1)) * t_{c, n-1})`` percentile instead restores the nominal level; the change
    vanishes for large n. Below 6 items no correction is attempted (such sets cannot resolve a
    tolerance anyway; see ``check_resolvable``).
    """
    if n < 6:
        return confidence
    return min(normal_cdf(math.sqrt(n / (n - 1)) * student_t_quantile(confidence, n - 1)), 1.0 - 1e-12)


def percentile_bounds(draws: np.ndarray, confidence: float, n: int | None = None) -> tuple[float, float]:
    """One-sided ``confidence`` lower and upper percentile bounds of bootstrap draws (expanded for
    ``n`` items when given)."""
    level = confidence if n is None else expanded_level(confidence, n)
    low, high = np.quantile(draws, [1.0 - level, level])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: np.ndarray, *, confidence: float, seed: int = 0, resamples: int = 10_000
) -> tuple[float, float, float]:
    """Mean of ``values`` with expanded-percentile bootstrap bounds: ``(mean, low, high)``.

    Each bound is one-sided at ``confidence`` (together a two-sided ``2c - 1`` interval), the same
    convention as ``compare_metric``; e.g. compare ``high`` with a maximum KL or flip rate.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    _check_confidence(confidence)
    if arr.size == 0:
        raise ScoresError("no values to bootstrap", hint="measure at least one item")
    if not np.all(np.isfinite(arr)):
        raise ScoresError("values contain NaN or infinite entries", hint="fix the measurement")
    draws = np.concatenate([arr[idx].mean(axis=1) for idx in index_chunks(arr.size, resamples, seed)])
    low, high = percentile_bounds(draws, confidence, arr.size)
    return float(arr.mean()), low, high


def _check_confidence(confidence: float) -> None:
    if not 0.5 < confidence < 1.0:
        raise ScoresError(
            f"confidence {confidence} is outside (0.5, 1)",
            hint="declare quality.confidence such as 0.95",
        )


# --- Binary scores: paired score interval (Tango 1998) and McNemar's exact test -------------------


def mcnemar_exact_p(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value (no change): binomial test of ``worse`` of ``worse + better``
    discordant pairs at 1/2 (equals ``scipy.stats.binomtest(worse, worse + better).pvalue``)."""
    m = worse + better
    if m == 0 or worse == better:
        return 1.0
    k = min(worse, better)
    log_half_m = -m * math.log(2.0)
    tail = sum(math.exp(math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) + log_half_m) for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def tango_z(worse: np.ndarray, better: np.ndarray, n: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Tango's score statistic for H0: p(worse) - p(better) = ``delta`` (vectorised).

    With ``delta = 0`` it equals McNemar's z = (b - c) / sqrt(b + c). Decreasing in ``delta``.
    """
    b = np.asarray(worse, dtype=np.float64)
    c = np.asarray(better, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    d = np.asarray(delta, dtype=np.float64)
    # Restricted MLE of p(better) under the hypothesised difference: positive root of
    # 2n q^2 + (d(2n - b + c) - (b + c)) q - c d (1 - d) = 0.
    big_b = d * (2.0 * nn - b + c) - (b + c)
    disc = np.maximum(big_b * big_b + 8.0 * nn * c * d * (1.0 - d), 0.0)
    q = np.maximum((np.sqrt(disc) - big_b) / (4.0 * nn), 0.0)
    var = nn * (2.0 * q + d * (1.0 - d))
    num = b - c - nn * d
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, num / np.sqrt(np.where(var > 0, var, 1.0)), np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)))
    return np.asarray(z)


def _tango_z_scalar(b: float, c: float, n: float, d: float) -> float:
    """``tango_z`` for one table, in plain floats (no numpy overhead: the per-metric hot path)."""
    big_b = d * (2.0 * n - b + c) - (b + c)
    q = max((math.sqrt(max(big_b * big_b + 8.0 * n * c * d * (1.0 - d), 0.0)) - big_b) / (4.0 * n), 0.0)
    var = n * (2.0 * q + d * (1.0 - d))
    num = b - c - n * d
    if var > 0:
        return num / math.sqrt(var)
    return math.inf if num > 0 else (-math.inf if num < 0 else 0.0)


def tango_bounds(
    worse: np.ndarray | int, better: np.ndarray | int, n: np.ndarray | int, confidence: float, *, iterations: int = 52
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided ``confidence`` bounds on the paired difference p(worse) - p(better), as a proportion.

    The score interval inverts Tango's test: the bounds solve Z(delta) = +z and -z, found by
    bisection on [-1, 1] (Z is decreasing in delta); vectorised over many tables.
    """
    z = normal_quantile(confidence)
    if np.ndim(worse) == 0 and np.ndim(better) == 0 and np.ndim(n) == 0:
        b, c, m = float(worse), float(better), float(n)

        def solve_one(target: float) -> float:
            lo, hi = -1.0, 1.0
            for _ in range(iterations):
                mid = 0.5 * (lo + hi)
                if _tango_z_scalar(b, c, m, mid) > target:
                    lo = mid
                else:
                    hi = mid
            return 0.5 * (lo + hi)

        return np.asarray(solve_one(z)), np.asarray(solve_one(-z))

    shape = np.broadcast(np.asarray(worse), np.asarray(better), np.asarray(n)).shape

    def solve(target: float) -> np.ndarray:
        lo = np.full(shape, -1.0)
        hi = np.full(shape, 1.0)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = tango_z(np.asarray(worse), np.asarray(better), np.asarray(n), mid) > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        return 0.5 * (lo + hi)

    return solve(z), solve(-z)
