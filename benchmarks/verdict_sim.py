"""Simulate the verdict's error rates, power and sequential savings with planted true drops.

Run:  .venv/bin/python benchmarks/verdict_sim.py            (about 3-5 minutes on 2 CPU cores)
      .venv/bin/python benchmarks/verdict_sim.py --reps 200  (a quick look)

Per-item results are simulated with a planted true degradation (0, the tolerance, 2x the
tolerance) and judged by the gate's own code (``compare_metric`` for a full run,
``run_sequential`` for the 4-look design), ``--reps`` repetitions each:

- binary (acc): baseline accuracy 0.70, 90% of items scored the same by both models (10%
  discordance), tolerance ``max_drop: 2`` points; paired score interval (Tango / McNemar);
- continuous (a real-valued per-item score, metric units): per-item sd 1.5, baseline/quantized
  correlation 0.95, tolerance ``max_drop: 0.075``; paired bootstrap with ``--resamples`` resamples
  (1,000 by default instead of the gate's 10,000, to keep the run short).

The eval-set size is the ``n_needed`` that ``check_resolvable`` recommends (80% power) given the
discordance / correlation, and 4x that ("a generous set", where the cases are clear).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from dataclasses import dataclass

import numpy as np

from gate.result import Decision
from gate.spec.models import MetricTolerance
from gate.verdict.decide import compare_metric
from gate.verdict.sample_size import check_resolvable
from gate.verdict.sequential import SPENDING_FUNCTIONS, SequentialPlan, run_sequential
from gate.verdict.stats import PairedScores, normal_quantile, tango_z

CONFIDENCE = 0.95
BINARY_TOL = MetricTolerance(task="sim", metric="acc", max_drop=2.0)
BINARY_ACC = 0.70
BINARY_DISCORDANCE = 0.10
CONT_TOL = MetricTolerance(task="sim", metric="score", max_drop=0.075)
CONT_SD = 1.5
CONT_RHO = 0.95


@dataclass
class Row:
    metric: str
    n: int
    planted: str
    reps: int
    full: dict[Decision, int]
    seq: dict[Decision, int]
    seq_fraction: float
    agree: float
    seconds: float


def binary_items(rng: np.random.Generator, n: int, drop: float) -> PairedScores:
    """Items with baseline accuracy BINARY_ACC, discordance BINARY_DISCORDANCE, true drop ``drop``."""
    p10 = (BINARY_DISCORDANCE + drop) / 2  # baseline right, quantized wrong
    p01 = (BINARY_DISCORDANCE - drop) / 2
    p11 = BINARY_ACC - p10
    cells = rng.choice(4, size=n, p=[p11, p10, p01, 1 - p11 - p10 - p01])
    base = ((cells == 0) | (cells == 1)).astype(float)
    quant = ((cells == 0) | (cells == 2)).astype(float)
    return PairedScores(base, quant, "binary")


def continuous_items(rng: np.random.Generator, n: int, drop: float) -> PairedScores:
    shared = rng.standard_normal(n)
    base = 5.0 + CONT_SD * (math.sqrt(CONT_RHO) * shared + math.sqrt(1 - CONT_RHO) * rng.standard_normal(n))
    quant = 5.0 - drop + CONT_SD * (math.sqrt(CONT_RHO) * shared + math.sqrt(1 - CONT_RHO) * rng.standard_normal(n))
    return PairedScores(base, quant, "mean")


def simulate(
    metric: str, n: int, drop: float, planted: str, reps: int, resamples: int, spending: str, seed: int
) -> Row:
    tol, make = (BINARY_TOL, binary_items) if metric == "binary" else (CONT_TOL, continuous_items)
    plan = SequentialPlan.for_items(n, looks=4, confidence=CONFIDENCE, spending=spending)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    full = dict.fromkeys(Decision, 0)
    seq = dict.fromkeys(Decision, 0)
    used = 0
    agree = 0
    start = time.perf_counter()
    for rep in range(reps):
        scores = make(rng, n, drop)
        a = compare_metric(tol, scores, confidence=CONFIDENCE, seed=rep, resamples=resamples)
        b = run_sequential(tol, scores, plan, seed=rep, resamples=resamples)
        full[a.outcome] += 1
        seq[b.outcome] += 1
        used += b.n
        agree += a.outcome is b.outcome
    return Row(metric, n, planted, reps, full, seq, used / (reps * n), agree / reps, time.perf_counter() - start)


def binary_vectorised(n: int, drop: float, reps: int, spending: str, seed: int) -> tuple[float, float, float, float, float]:
    """The same score test, vectorised over ``reps`` tables of discordant counts (no per-item arrays).

    Returns full-run PASS and FAIL rates, sequential PASS and FAIL rates, mean fraction of items used.
    PASS at a look <=> Tango's Z at the margin <= -z (the upper bound is within the tolerance);
    FAIL <=> Z > z; this is how ``compare_metric`` decides, by monotonicity of Z.
    """
    rng = np.random.default_rng(seed)
    margin = BINARY_TOL.tolerance / 100
    p = [(BINARY_DISCORDANCE + drop) / 2, (BINARY_DISCORDANCE - drop) / 2, 1 - BINARY_DISCORDANCE]
    plan = SequentialPlan.for_items(n, looks=4, confidence=CONFIDENCE, spending=spending)  # type: ignore[arg-type]
    sizes = np.diff(np.r_[0, plan.look_sizes])
    chunks = np.stack([rng.multinomial(int(k), p, size=reps) for k in sizes], axis=1)  # (reps, looks, 3)
    cum = np.cumsum(chunks, axis=1)
    z_full = tango_z(cum[:, -1, 0], cum[:, -1, 1], np.full(reps, n), np.full(reps, margin))
    crit = normal_quantile(CONFIDENCE)
    full_pass, full_fail = np.mean(z_full <= -crit), np.mean(z_full > crit)
    decided = np.zeros(reps, dtype=bool)
    seq_pass = np.zeros(reps, dtype=bool)
    seq_fail = np.zeros(reps, dtype=bool)
    used = np.full(reps, float(n))
    for k, size in enumerate(plan.look_sizes):
        c = normal_quantile(plan.confidence_at(k))
        z = tango_z(cum[:, k, 0], cum[:, k, 1], np.full(reps, size), np.full(reps, margin))
        new_pass = ~decided & (z <= -c)
        new_fail = ~decided & (z > c)
        seq_pass |= new_pass
        seq_fail |= new_fail
        used = np.where(new_pass | new_fail, float(size), used)
        decided |= new_pass | new_fail
    return float(full_pass), float(full_fail), float(seq_pass.mean()), float(seq_fail.mean()), float(used.mean() / n)


def continuous_boundary(n: int, reps: int, resamples: int, seed: int) -> int:
    """Full-run PASSes at a true drop equal to the tolerance (the false-PASS rate), more reps."""
    rng = np.random.default_rng(seed)
    passes = 0
    for rep in range(reps):
        scores = continuous_items(rng, n, CONT_TOL.tolerance)
        r = compare_metric(CONT_TOL, scores, confidence=CONFIDENCE, seed=rep, resamples=resamples)
        passes += r.outcome is Decision.passed
    return passes


def bootstrap_timings() -> list[str]:
    """Best-of-5 wall time of one paired bootstrap at the gate's default 10,000 resamples."""
    rng = np.random.default_rng(0)
    base = rng.normal(5.0, 1.0, 1000)
    words = rng.uniform(100, 400, 1000)
    cases = [
        ("mean, max_drop (per-item differences)", CONT_TOL, PairedScores(base, base - 0.01, "mean")),
        (
            "mean, max_relative_drop (both aggregates)",
            MetricTolerance(task="sim", metric="score", max_relative_drop=0.02),
            PairedScores(base, base - 0.01, "mean"),
        ),
        (
            "perplexity, max_relative_increase",
            MetricTolerance(task="sim", metric="word_perplexity", max_relative_increase=0.05),
            PairedScores(np.c_[3 * words, words], np.c_[3.03 * words, words], "perplexity"),
        ),
    ]
    lines = []
    for label, tol, scores in cases:
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            compare_metric(tol, scores, confidence=CONFIDENCE, resamples=10_000)
            best = min(best, time.perf_counter() - start)
        lines.append(f"| {label} | 1,000 | 10,000 | {best:.3f} s |")
    return lines


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (continuous metric)")
    parser.add_argument("--spending", default="hwang-shih-decani", choices=list(SPENDING_FUNCTIONS))
    parser.add_argument("--vector-reps", type=int, default=200_000, help="reps of the vectorised binary check")
    parser.add_argument("--boundary-reps", type=int, default=5000, help="extra full-run reps at the continuous boundary")
    parser.add_argument("--only", choices=["binary", "continuous"], default=None)
    args = parser.parse_args()

    n_bin = check_resolvable(
        BINARY_TOL, n_available=0, confidence=CONFIDENCE, assumed_discordance=BINARY_DISCORDANCE
    ).n_needed
    pilot = continuous_items(np.random.default_rng(7), 2000, 0.0)
    n_cont = check_resolvable(
        CONT_TOL, n_available=0, confidence=CONFIDENCE, base_scores=pilot.base, assumed_correlation=CONT_RHO
    ).n_needed
    conservative = check_resolvable(
        BINARY_TOL, n_available=0, confidence=CONFIDENCE, base_scores=np.r_[np.ones(70), np.zeros(30)]
    ).n_needed

    cases: list[tuple[str, int, float, str]] = []
    if args.only in (None, "binary"):
        t = BINARY_TOL.tolerance / 100
        cases += [("binary", n_bin, 0.0, "0"), ("binary", n_bin, t, "tol"), ("binary", n_bin, 2 * t, "2·tol")]
        cases += [("binary", 4 * n_bin, 0.0, "0"), ("binary", 4 * n_bin, 2 * t, "2·tol")]
    if args.only in (None, "continuous"):
        t = CONT_TOL.tolerance
        cases += [("continuous", n_cont, 0.0, "0"), ("continuous", n_cont, t, "tol"), ("continuous", n_cont, 2 * t, "2·tol")]
        cases += [("continuous", 4 * n_cont, 0.0, "0"), ("continuous", 4 * n_cont, 2 * t, "2·tol")]

    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, numpy {np.__version__}")
    print(f"reps {args.reps}, confidence {CONFIDENCE}, 4 looks ({args.spending} spending), bootstrap resamples {args.resamples}")
    print(f"n_needed: binary {n_bin} (assumed discordance 10%), continuous {n_cont} (assumed correlation 0.95); "
          f"binary with the conservative default (no pairing benefit, acc 0.70): {conservative}")
    print()
    print("| paired bootstrap | items | resamples | best of 5 |")
    print("|---|---|---|---|")
    print("\n".join(bootstrap_timings()))
    print()
    print("| metric | n | true drop | full: PASS | full: FAIL | full: INCONCL. | seq: PASS | seq: FAIL | "
          "items used (seq) | same verdict | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, (metric, n, drop, planted) in enumerate(cases):
        r = simulate(metric, n, drop, planted, args.reps, args.resamples, args.spending, seed=1000 + case)
        P, F, INC = Decision.passed, Decision.failed, Decision.inconclusive
        print(
            f"| {metric} | {n} | {planted} | {pct(r.full[P], r.reps)} | {pct(r.full[F], r.reps)} | "
            f"{pct(r.full[INC], r.reps)} | {pct(r.seq[P], r.reps)} | {pct(r.seq[F], r.reps)} | "
            f"{100 * r.seq_fraction:.1f}% | {100 * r.agree:.1f}% | {r.seconds:.0f} |",
            flush=True,
        )

    if args.only in (None, "continuous") and args.boundary_reps > 0:
        passes = continuous_boundary(n_cont, args.boundary_reps, args.resamples, seed=3000)
        print()
        print(
            f"Continuous, true drop = tolerance, n {n_cont}, {args.boundary_reps:,} more full-run reps: "
            f"false PASS {pct(passes, args.boundary_reps)}"
        )

    if args.only in (None, "binary"):
        print()
        print(f"Binary score test vectorised over {args.vector_reps:,} reps (same decisions, counts only):")
        print()
        print("| n | true drop | full: PASS | full: FAIL | seq: PASS | seq: FAIL | items used (seq) |")
        print("|---|---|---|---|---|---|---|")
        t = BINARY_TOL.tolerance / 100
        for k, (n, drop, planted) in enumerate(
            [(n_bin, 0.0, "0"), (n_bin, t, "tol"), (n_bin, 2 * t, "2·tol"), (4 * n_bin, 0.0, "0"), (4 * n_bin, 2 * t, "2·tol")]
        ):
            fp, ff, sp, sf, used = binary_vectorised(n, drop, args.vector_reps, args.spending, seed=2000 + k)
            print(
                f"| {n} | {planted} | {100 * fp:.2f}% | {100 * ff:.2f}% | {100 * sp:.2f}% | {100 * sf:.2f}% | "
                f"{100 * used:.1f}% |"
            )


if __name__ == "__main__":
    main()
