"""What rules may read: the loaded spec and facts gathered by earlier stages (no I/O in rules)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gate.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from gate.evaluate.interface import PerformanceResult
    from gate.evaluate.task_check import TaskScan
    from gate.plan.catalog import HardwareCatalog
    from gate.plan.memory import MemoryPlan
    from gate.weights.calibration import CalibrationFile
    from gate.weights.interface import WeightScan


@dataclass(frozen=True)
class Facts:
    loaded: LoadedSpec
    catalog: HardwareCatalog
    today: dt.date
    repo_root: Path
    weights: WeightScan | None = None
    """Set by the weights stage (None when it did not run, e.g. a hub model not yet fetched)."""
    plan: MemoryPlan | None = None
    """Set by the plan stage."""
    tasks: TaskScan | None = None
    """The repository tasks the spec evaluates, checked (None when the repository has no ``tasks/``)."""
    calibration: CalibrationFile | None = None
    """Set by the calibration stage (None when it did not run or the spec has no calibration)."""
    performance: PerformanceResult | None = None
    """Set by ``gate run`` once speed and memory are measured (the QG702/QG703 facts)."""
