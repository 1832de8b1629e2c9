"""The validation harness in reduced form (CI): the cells most at risk, a few hundred repetitions,
failing when a target is missed beyond Monte-Carlo error. The full table:
``python benchmarks/verdict_sim.py`` (docs/benchmarks/verdict.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import verdict_sim

REPS = 1000
SEQUENTIAL = ("single", "hwang-shih-decani", "pocock")


def test_riskiest_cells_hold_their_error_rates() -> None:
    boundary = (("tol", 1.0),)
    cells = verdict_sim.binary_cells(
        REPS, 1, ns=(100,), cases=[(True, 0.6, 0.10), (True, 0.3, 0.30)], designs=verdict_sim.DESIGNS,
        planted=boundary,
    )
    cells += verdict_sim.binary_cells(REPS, 2, ns=(250,), cases=[(False, 0.3, 0.02)], designs=SEQUENTIAL,
                                      planted=boundary)
    cells += verdict_sim.continuous_cells(REPS, 3, ns=(50, 100), dists=("skewed perplexity",), designs=SEQUENTIAL,
                                          planted=boundary)
    cells += verdict_sim.continuous_cells(REPS, 4, ns=(30,), dists=("heavy-tailed",), designs=SEQUENTIAL,
                                          planted=boundary)
    cells += verdict_sim.fidelity_cells(REPS, 5, documents=(1, 20, 32), planted=(("limit", 1.0),))
    assert len(cells) == 4 + 4 + 3 + 6 + 3 + 6
    assert verdict_sim.beyond_mc_error(cells) == []
    # The issue's degenerate case (relative tolerance, 25-item first look) no longer inflates: the
    # sequential designs decide exactly as the single look (no look below the decision floor).
    issue = [c for c in cells if c.case == "relative acc 0.6 disc 10%"]
    assert {c.passes for c in issue} == {issue[0].passes}


def test_power_where_the_projection_says_n_suffices() -> None:
    cells = verdict_sim.binary_cells(REPS, 6, ns=(1000,), cases=[(False, 0.6, 0.10)], designs=("single",),
                                     planted=(("2tol", 2.0),))
    cells += verdict_sim.continuous_cells(REPS, 7, ns=(250,), dists=("normal",), designs=("single",),
                                          planted=(("2tol", 2.0),))
    assert all(c.resolvable for c in cells)
    assert verdict_sim.beyond_mc_error(cells) == []
    assert all(c.fails / c.reps >= 0.8 for c in cells)
