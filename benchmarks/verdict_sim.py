"""The verdict's validation harness: false PASS, power and sequential designs, cell by cell.

Run:  .venv/bin/python benchmarks/verdict_sim.py                 (2,000 reps per cell; minutes on 2 cores)
      .venv/bin/python benchmarks/verdict_sim.py --reps 300      (a quick look)
      .venv/bin/python benchmarks/verdict_sim.py --only binary   (one family: binary | continuous | fidelity)
      .venv/bin/python benchmarks/verdict_sim.py --only continuous --dists 'skewed perplexity' --ns 30,50
      .venv/bin/python benchmarks/verdict_sim.py --interim-share 1  (the plain design, for comparison)

Every cell plants a true degradation and judges simulated per-item data with the gate's OWN
decision functions, vectorised over repetitions (numpy): the same bounds ``compare_metric`` and
``fidelity.compare`` decide with (a test checks the decisions are identical item for item).

- **binary** (``acc``; paired 2x2 tables): absolute (``max_drop``) and relative
  (``max_relative_drop``) tolerances; baseline accuracy 0.3, 0.6, 0.9; discordance (share of items
  the two models score differently) 2%, 10%, 30%; tolerance = discordance / 3 (absolute points or
  the same drop relative to the accuracy). Decided by the paired score interval (Tango) or the
  score test of the relative change.
- **continuous**: per-item differences normal (``mean`` scores, ``max_drop`` 0.25 sd),
  heavy-tailed (Student t with 3 df, same sd) and skewed perplexity (documents of 50-400 words, a
  few documents carrying most of the increase: per-word increase ~ Gamma(0.5), plus noise;
  ``max_relative_increase`` 2%). Decided by the skewness-corrected t bound.
- **fidelity**: KL (document effect Gamma(2), exponential per position) and top-1 flips
  (document rate Beta with concentration 20), 64 positions per document, 1-500 documents;
  limits ``max_kl`` 0.05 and ``max_flip_rate`` 0.10. Decided by ``cluster_bounds``.

Planted degradations: ``0`` (an unchanged model: PASS is the power the sample-size check sizes
for), ``tol`` (exactly the tolerance: PASS is a false PASS), ``2tol`` (FAIL is the power to catch a
model twice as bad). Fidelity: ``limit/2``, ``limit``, ``2limit``. n in {30, 50, 100, 250, 500,
1000} items (fidelity: documents); designs: one look, and the shipped 4-look sequential designs
(Hwang-Shih-DeCani, O'Brien-Fleming, Pocock spending) with the gate's look floors
(``schedule_looks``) and interim looks at half their planned error (``sequential.INTERIM_SHARE``).
Rates carry Monte-Carlo standard errors and one-sided 95% Wilson bounds; a sequential design is
compared with the single look on the SAME simulated data (paired: ``Cell.only_this`` /
``only_single``).

Checks (``violations``): false PASS upper 95% MC bound <= 5% in every cell; FAIL rate >= 80% at
2x the tolerance wherever the gate's sample-size projection (``measured_n_needed``) says n
suffices; sequential false PASS <= single-look false PASS + 1 SE.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np

from gate.evaluate.fidelity import cluster_bounds
from gate.spec.models import MetricTolerance
from gate.verdict.intervals import decision_level, linearised_degradation, relative_score_z, skew_t_bounds
from gate.verdict.sample_size import measured_n_needed, schedule_looks
from gate.verdict.sequential import INTERIM_SHARE, SPENDING_FUNCTIONS, LookSchedule
from gate.verdict.stats import PairedScores, normal_quantile, tango_z

CONFIDENCE = 0.95
NS = (30, 50, 100, 250, 500, 1000)
DOCUMENTS = (1, 2, 4, 8, 16, 20, 32, 64, 128, 500)
DESIGNS = ("single", *SPENDING_FUNCTIONS)
ACCURACIES = (0.3, 0.6, 0.9)
DISCORDANCES = (0.02, 0.10, 0.30)
PLANTED = (("0", 0.0), ("tol", 1.0), ("2tol", 2.0))
FIDELITY_PLANTED = (("limit/2", 0.5), ("limit", 1.0), ("2limit", 2.0))
CONT_TOL = 0.25
PPL_TOL = 0.02
POSITIONS = 64
MAX_KL = 0.05
MAX_FLIP = 0.10
BLOCK = 2000
BOUNDARY = ("tol", "limit")


@dataclass(frozen=True)
class Cell:
    family: str
    """binary | continuous | fidelity"""
    case: str
    """e.g. ``relative acc 0.6 disc 10%``, ``skewed perplexity``, ``KL``"""
    n: int
    planted: str
    design: str
    reps: int
    passes: int
    fails: int
    items_used: float
    """Mean share of the n items scored before the design stopped."""
    resolvable: bool | None
    """Whether the gate's sample-size projection says n suffices (None: no projection)."""
    n_needed: int | None
    only_this: int | None = None
    """Reps this design PASSED and the single look on the same data did not (None: no single look run)."""
    only_single: int | None = None
    """Reps the single look on the same data PASSED and this design did not."""


def rate(k: int, reps: int, z: float = 1.6448536269514722) -> tuple[float, float, float, float]:
    """Rate, its Monte-Carlo SE, and one-sided Wilson lower and upper bounds (95% by default)."""
    p = k / reps
    centre = (p + z * z / (2 * reps)) / (1 + z * z / reps)
    half = z * math.sqrt(p * (1 - p) / reps + z * z / (4 * reps * reps)) / (1 + z * z / reps)
    return p, math.sqrt(p * (1 - p) / reps), max(0.0, centre - half), min(1.0, centre + half)


def _plan(design: str, n: int, criteria: list[tuple[MetricTolerance, str, float | None]],
          interim_share: float = INTERIM_SHARE) -> LookSchedule:
    if design == "single":
        return LookSchedule.for_items(n, looks=1, confidence=CONFIDENCE)
    return schedule_looks(criteria, n, looks=4, confidence=CONFIDENCE, spending=design, interim_share=interim_share)


def _sequential(decide: Callable[[int, float], tuple[np.ndarray, np.ndarray]], plan: LookSchedule,
                reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the looks: ``decide(size, confidence) -> (pass, fail)`` boolean arrays per rep."""
    passed = np.zeros(reps, dtype=bool)
    failed = np.zeros(reps, dtype=bool)
    used = np.full(reps, float(plan.n_total))
    open_ = np.ones(reps, dtype=bool)
    for k, size in enumerate(plan.look_sizes):
        p, f = decide(size, plan.confidence_at(k))
        new_p, new_f = open_ & p, open_ & f
        passed |= new_p
        failed |= new_f
        used = np.where(new_p | new_f, float(size), used)
        open_ &= ~(new_p | new_f)
    return passed, failed, used / plan.n_total


def _paired(passed: np.ndarray, single: np.ndarray | None) -> tuple[int | None, int | None]:
    """(reps only this design PASSED, reps only the single look PASSED) on the same data."""
    if single is None:
        return None, None
    return int(np.sum(passed & ~single)), int(np.sum(single & ~passed))


# --- binary -------------------------------------------------------------------------------------


def binary_tolerance(relative: bool, acc: float, disc: float) -> MetricTolerance:
    if relative:
        return MetricTolerance(task="sim", metric="acc", max_relative_drop=disc / 3 / acc)
    return MetricTolerance(task="sim", metric="acc", max_drop=100 * disc / 3)


def binary_probabilities(acc: float, disc: float, drop: float) -> list[float]:
    """Cell probabilities (both right, only baseline, only quantized, both wrong)."""
    p10, p01 = (disc + drop) / 2, (disc - drop) / 2
    p11 = acc - p10
    return [p11, p10, p01, 1.0 - p11 - p10 - p01]


def binary_decision(tol: MetricTolerance, counts: np.ndarray, size: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """``compare_metric``'s decision for binary scores (PASS <=> p = Phi(Z(tol)) < 1 - c)."""
    z = normal_quantile(decision_level(confidence))
    if tol.tolerance_form == "max_relative_drop":
        stat = relative_score_z(counts, tol.tolerance)
    else:
        stat = tango_z(counts[:, 1], counts[:, 2], np.full(len(counts), float(size)), np.full(len(counts), tol.tolerance / 100))
    return stat < -z, stat > z


def _binary_look(tol: MetricTolerance, counts: dict[int, np.ndarray], size: int,
                 conf: float) -> tuple[np.ndarray, np.ndarray]:
    return binary_decision(tol, counts[size], size, conf)


def binary_needed(tol: MetricTolerance, acc: float, disc: float, drop: float) -> int | None:
    """The gate's projection (``measured_n_needed``) from pilot data at the planted drop: 100,000
    items in exact proportions, as the first look would measure them."""
    probs = binary_probabilities(acc, disc, drop)
    counts = np.round(np.array(probs) * 100_000).astype(int)
    base = np.r_[np.ones(counts[0] + counts[1]), np.zeros(counts[2] + counts[3])]
    quant = np.r_[np.ones(counts[0]), np.zeros(counts[1]), np.ones(counts[2]), np.zeros(counts[3])]
    return measured_n_needed(tol, PairedScores(base, quant, "binary"), confidence=CONFIDENCE)


def binary_cells(reps: int, seed: int, ns: Iterable[int] = NS, cases: Iterable[tuple[bool, float, float]] | None = None,
                 designs: Iterable[str] = DESIGNS, planted: Iterable[tuple[str, float]] = PLANTED,
                 boundary_reps: int | None = None, interim_share: float = INTERIM_SHARE) -> list[Cell]:
    rng = np.random.default_rng(seed)
    out = []
    cases = list(cases) if cases is not None else [
        (rel, acc, disc) for rel in (False, True) for acc in ACCURACIES for disc in DISCORDANCES]
    designs = list(designs)
    for relative, acc, disc in cases:
        if min(min(binary_probabilities(acc, disc, m * disc / 3)) for _, m in PLANTED) < 0:
            continue  # e.g. accuracy 0.9 leaves no room for 30% discordance with no drop
        tol = binary_tolerance(relative, acc, disc)
        label = f"{'relative' if relative else 'absolute'} acc {acc:g} disc {disc:.0%}"
        for n in ns:
            plans = {design: _plan(design, n, [(tol, "binary", acc)], interim_share) for design in designs}
            sizes = sorted({s for plan in plans.values() for s in plan.look_sizes})
            for name, mult in planted:
                r = boundary_reps if boundary_reps and name in BOUNDARY else reps
                needed = binary_needed(tol, acc, disc, mult * disc / 3)
                probs = binary_probabilities(acc, disc, mult * disc / 3)
                # Counts at every look size any design uses: multinomial increments between sizes.
                steps = np.diff(np.r_[0, sizes])
                cum = np.cumsum(np.stack([rng.multinomial(int(k), probs, size=r) for k in steps], axis=1), axis=1)
                at = {size: cum[:, i, :].astype(float) for i, size in enumerate(sizes)}
                runs = {design: _sequential(partial(_binary_look, tol, at), plan, r) for design, plan in plans.items()}
                for design, (p, f, used) in runs.items():
                    only = _paired(p, runs["single"][0] if "single" in runs else None)
                    out.append(Cell("binary", label, n, name, design, r, int(p.sum()), int(f.sum()),
                                    float(used.mean()), None if needed is None else n >= needed, needed, *only))
    return out


# --- continuous ---------------------------------------------------------------------------------


def continuous_data(dist: str, rng: np.random.Generator, reps: int, n: int, mult: float) -> tuple[np.ndarray, np.ndarray]:
    if dist in ("normal", "heavy-tailed"):
        noise = rng.standard_normal((reps, n)) if dist == "normal" else rng.standard_t(3, (reps, n)) / math.sqrt(3.0)
        base = 5.0 + rng.standard_normal((reps, n))
        return base, base - (mult * CONT_TOL + noise)
    words = rng.integers(50, 401, size=(reps, n)).astype(float)
    nll = words * (3.0 + 0.3 * rng.standard_normal((reps, n)))
    increase = math.log1p(PPL_TOL) * mult * rng.gamma(0.5, 1.0, (reps, n)) / 0.5 + 0.05 * rng.standard_normal((reps, n))
    return np.stack([nll, words], axis=-1), np.stack([nll + words * increase, words], axis=-1)


def continuous_tolerance(dist: str) -> tuple[MetricTolerance, str]:
    if dist == "skewed perplexity":
        return MetricTolerance(task="sim", metric="word_perplexity", max_relative_increase=PPL_TOL), "perplexity"
    return MetricTolerance(task="sim", metric="score", max_drop=CONT_TOL), "mean"


def continuous_decision(tol: MetricTolerance, kind: str, base: np.ndarray, quant: np.ndarray,
                        confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """``compare_metric``'s decision with the ``t`` method (bounds on the working scale)."""
    relative = tol.tolerance_form.startswith("max_relative")
    sign = 1.0 if tol.higher_is_better else -1.0
    theta, influence, log_scale = linearised_degradation(kind, base, quant, relative=relative, sign=sign, scale=1.0)
    margin = math.log1p(tol.tolerance) if log_scale else tol.tolerance
    low, high, decidable = skew_t_bounds(theta, influence, decision_level(confidence))
    return decidable & (high <= margin), decidable & (low > margin)


def _continuous_look(tol: MetricTolerance, kind: str, base: np.ndarray, quant: np.ndarray, size: int,
                     conf: float) -> tuple[np.ndarray, np.ndarray]:
    return continuous_decision(tol, kind, base[:, :size], quant[:, :size], conf)


def continuous_cells(reps: int, seed: int, ns: Iterable[int] = NS,
                     dists: Iterable[str] = ("normal", "heavy-tailed", "skewed perplexity"),
                     designs: Iterable[str] = DESIGNS, planted: Iterable[tuple[str, float]] = PLANTED,
                     boundary_reps: int | None = None, interim_share: float = INTERIM_SHARE) -> list[Cell]:
    rng = np.random.default_rng(seed)
    out = []
    designs = list(designs)
    for dist in dists:
        tol, kind = continuous_tolerance(dist)
        for n in ns:
            plans = {design: _plan(design, n, [(tol, kind, None)], interim_share) for design in designs}
            for name, mult in planted:
                pb, pq = continuous_data(dist, np.random.default_rng(seed + 99), 1, 20_000, mult)
                needed = measured_n_needed(tol, PairedScores(pb[0], pq[0], kind), confidence=CONFIDENCE)  # type: ignore[arg-type]
                total = boundary_reps if boundary_reps and name in BOUNDARY else reps
                tally = {design: [0, 0, 0.0, 0, 0] for design in designs}
                for block in range(0, total, BLOCK):  # blocks of reps bound the memory
                    r = min(BLOCK, total - block)
                    base, quant = continuous_data(dist, rng, r, n, mult)
                    runs = {design: _sequential(partial(_continuous_look, tol, kind, base, quant), plan, r)
                            for design, plan in plans.items()}
                    for design, (p, f, used) in runs.items():
                        only_this, only_single = _paired(p, runs["single"][0] if "single" in runs else None)
                        tally[design][0] += int(p.sum())
                        tally[design][1] += int(f.sum())
                        tally[design][2] += float(used.sum())
                        tally[design][3] += only_this or 0
                        tally[design][4] += only_single or 0
                paired = "single" in designs
                for design in designs:
                    k_pass, k_fail, used_sum, k_this, k_single = tally[design]
                    out.append(Cell("continuous", dist, n, name, design, total, int(k_pass), int(k_fail),
                                    used_sum / total, None if needed is None else n >= needed, needed,
                                    int(k_this) if paired else None, int(k_single) if paired else None))
    return out


# --- fidelity -----------------------------------------------------------------------------------


def fidelity_sums(measure: str, rng: np.random.Generator, reps: int, docs: int, mult: float) -> np.ndarray:
    """Per-document sums over ``POSITIONS`` correlated positions, true mean ``mult * limit``."""
    if measure == "KL":
        effect = rng.gamma(2.0, 0.5, (reps, docs))
        return mult * MAX_KL * effect * rng.gamma(float(POSITIONS), 1.0, (reps, docs))
    mean = min(mult * MAX_FLIP, 0.999)
    concentration = 20.0
    doc_rate = rng.beta(mean * concentration, (1 - mean) * concentration, (reps, docs))
    return rng.binomial(POSITIONS, doc_rate).astype(float)


def fidelity_cells(reps: int, seed: int, documents: Iterable[int] = DOCUMENTS,
                   measures: Iterable[str] = ("KL", "flips"),
                   planted: Iterable[tuple[str, float]] = FIDELITY_PLANTED,
                   boundary_reps: int | None = None) -> list[Cell]:
    rng = np.random.default_rng(seed)
    out = []
    for measure in measures:
        limit = MAX_KL if measure == "KL" else MAX_FLIP
        for docs in documents:
            for name, mult in planted:
                r = boundary_reps if boundary_reps and name in BOUNDARY else reps
                sums = fidelity_sums(measure, rng, r, docs, mult)
                counts = np.full((r, docs), float(POSITIONS))
                _, low, high, decidable = cluster_bounds(sums, counts, CONFIDENCE)
                p = decidable & (high <= limit)
                f = decidable & (low > limit)
                out.append(Cell("fidelity", measure, docs, name, "single", r, int(p.sum()), int(f.sum()), 1.0,
                                None, None))
    return out


# --- checks and tables --------------------------------------------------------------------------


def violations(cells: list[Cell]) -> list[str]:
    """Every cell that breaks a target, one line each (empty: all targets met)."""
    out = []
    single = {(c.family, c.case, c.n, c.planted): c for c in cells if c.design == "single"}
    for c in cells:
        where = f"{c.family} {c.case} n={c.n} {c.design} planted {c.planted}"
        if c.planted in BOUNDARY:
            p, _, _, upper = rate(c.passes, c.reps)
            if upper > 1 - CONFIDENCE:
                out.append(f"false PASS {p:.2%} (upper 95% MC bound {upper:.2%}) > 5%: {where}")
            ref = single.get((c.family, c.case, c.n, c.planted))
            if c.design != "single" and ref is not None:
                p0, se0, _, _ = rate(ref.passes, ref.reps)
                if p > p0 + se0:
                    out.append(f"sequential false PASS {p:.2%} > single look {p0:.2%} + 1 SE ({se0:.2%}): {where}")
        if c.planted == "2tol" and c.resolvable:
            f, _, _, _ = rate(c.fails, c.reps)
            if f < 0.8:
                out.append(f"power (FAIL at 2x tolerance) {f:.1%} < 80% where n >= n_needed {c.n_needed}: {where}")
    return out


def paired_se(c: Cell) -> float:
    """Monte-Carlo SE of (this design's PASS rate - the single look's) on the same reps."""
    b, d = c.only_this or 0, c.only_single or 0
    return math.sqrt(max(b + d - (b - d) ** 2 / c.reps, 0.0)) / c.reps


def beyond_mc_error(cells: list[Cell], z: float = 2.5758293035489004) -> list[str]:
    """The cells that break a target beyond Monte-Carlo error (99.5% one-sided): false PASS whose
    LOWER bound is above 5%, power whose upper bound is below 80%, a sequential design above the
    single look by more than ``z`` SE of the difference (of the paired difference when both ran on
    the same data: only the reps where they disagree carry its error). What the CI test fails on."""
    out = []
    single = {(c.family, c.case, c.n, c.planted): c for c in cells if c.design == "single"}
    for c in cells:
        where = f"{c.family} {c.case} n={c.n} {c.design} planted {c.planted}"
        if c.planted in BOUNDARY:
            p, _, low, _ = rate(c.passes, c.reps, z)
            if low > 1 - CONFIDENCE:
                out.append(f"false PASS {p:.2%} (lower MC bound {low:.2%}) > 5%: {where}")
            ref = single.get((c.family, c.case, c.n, c.planted))
            if c.design != "single" and ref is not None:
                p0 = ref.passes / ref.reps
                se = paired_se(c) if c.only_this is not None and ref.reps == c.reps else math.sqrt(
                    p * (1 - p) / c.reps + p0 * (1 - p0) / ref.reps)
                if p > p0 + z * se:
                    out.append(f"sequential false PASS {p:.2%} > single look {p0:.2%} + {z:.2f} SE: {where}")
        if c.planted == "2tol" and c.resolvable:
            f, _, _, up = rate(c.fails, c.reps, z)
            if up < 0.8:
                out.append(f"power {f:.1%} (upper MC bound {up:.1%}) < 80% where n >= n_needed {c.n_needed}: {where}")
    return out


def table(cells: list[Cell]) -> list[str]:
    lines = [
        "| family | case | n | design | false PASS (at tol) [MC SE; upper 95%] | PASS at 0 | FAIL at 2x tol | "
        "items used at tol | n_needed (at 2x tol) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(c.family, c.case, c.n, c.design, c.planted): c for c in cells}
    keys = sorted({(c.family, c.case, c.n, c.design) for c in cells},
                  key=lambda k: (k[0], k[1], k[2], DESIGNS.index(k[3])))
    for family, case, n, design in keys:
        names = ("limit/2", "limit", "2limit") if family == "fidelity" else ("0", "tol", "2tol")
        zero, tol, two = (by.get((family, case, n, design, x)) for x in names)
        cols = []
        if tol is not None:
            p, se, _, up = rate(tol.passes, tol.reps)
            cols.append(f"{p:.2%} [{se:.2%}; {up:.2%}]")
        else:
            cols.append("")
        cols.append(f"{zero.passes / zero.reps:.1%}" if zero else "")
        cols.append(f"{two.fails / two.reps:.1%}" if two else "")
        cols.append(f"{tol.items_used:.0%}" if tol else "")
        needed = two.n_needed if two and two.n_needed is not None else None
        cols.append("" if needed is None else f"{needed:,}{'' if n >= needed else ' (n short)'}")
        lines.append(f"| {family} | {case} | {n} | {design} | " + " | ".join(cols) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--boundary-reps", type=int, default=10_000,
                        help="reps of the cells planted at the tolerance (the false-PASS cells)")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--only", choices=["binary", "continuous", "fidelity"], default=None)
    parser.add_argument("--interim-share", type=float, default=INTERIM_SHARE,
                        help="share of an interim look's planned error it is decided at (1: the plain "
                             "design the gate used before)")
    parser.add_argument("--ns", default=",".join(str(n) for n in NS),
                        help="comma-separated n of the binary and continuous cells (fidelity keeps its document counts)")
    parser.add_argument("--dists", default="normal,heavy-tailed,skewed perplexity",
                        help="comma-separated continuous distributions")
    args = parser.parse_args()
    ns = tuple(int(x) for x in args.ns.split(","))
    start = time.perf_counter()
    cells: list[Cell] = []
    if args.only in (None, "binary"):
        cells += binary_cells(args.reps, args.seed, ns=ns, boundary_reps=args.boundary_reps,
                              interim_share=args.interim_share)
    if args.only in (None, "continuous"):
        cells += continuous_cells(args.reps, args.seed + 1, ns=ns, dists=args.dists.split(","),
                                  boundary_reps=args.boundary_reps, interim_share=args.interim_share)
    if args.only in (None, "fidelity"):
        cells += fidelity_cells(args.reps, args.seed + 2, boundary_reps=args.boundary_reps)
    print(f"machine: {platform.machine()} {platform.system()}, numpy {np.__version__}; reps per cell {args.reps} "
          f"({args.boundary_reps} at the tolerance), confidence {CONFIDENCE}, interim share {args.interim_share:g}; "
          f"{len(cells)} cells in "
          f"{time.perf_counter() - start:.0f} s")
    print()
    print("\n".join(table(cells)))
    bad = violations(cells)
    print()
    print(f"{len(bad)} cells miss a target as the issue states it (upper 95% MC bound, +1 SE)" + (":" if bad else ""))
    for line in bad:
        print(f"- {line}")
    worse = beyond_mc_error(cells)
    print()
    print(f"{len(worse)} cells miss a target beyond Monte-Carlo error (99.5% one-sided)" + (":" if worse else ""))
    for line in worse:
        print(f"- {line}")


if __name__ == "__main__":
    main()
