"""The one stage recorder: every stage of ``gate check`` and ``gate run`` is timed and recorded here.

Stage names are in pipeline order; ``STATIC_STAGES`` end ``gate check``, ``HEAVY_STAGES`` follow
them in ``gate run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from gate.errors import GateError
from gate.result import StageRecord, StageStatus

if TYPE_CHECKING:
    from gate.report.progress import RunProgress

T = TypeVar("T")
Say = Callable[[str], None]

STATIC_STAGES = ("spec", "policy-load", "weights", "calibration", "tasks", "plan", "policy")
"""``gate check``'s stages (``policy-load`` only without a preloaded policy set, ``tasks`` only with a
``tasks/`` directory)."""
HEAVY_STAGES = ("eval-design", "baseline", "evaluate-baseline", "quantize", "evaluate-quantized", "verdict")
"""What ``gate run`` adds after the static stages; ``registry`` and ``mlflow`` records follow when configured."""


def _quiet(_message: str) -> None:
    return None


class StageRecorder:
    """Times each stage and appends its ``StageRecord``; a stage's ``GateError`` is recorded as
    failed and re-raised.

    ``say`` gets a "done in" line per stage and ``progress`` a stage heading (``gate run``'s
    console); ``gate check`` records quietly.
    """

    def __init__(self, records: list[StageRecord] | None = None, *, say: Say | None = None,
                 progress: RunProgress | None = None) -> None:
        self.records: list[StageRecord] = records if records is not None else []
        self.say: Say = say or _quiet
        self.progress = progress

    def run(self, name: str, func: Callable[[], T], *, cache_hit: Callable[[T], bool | None] | None = None,
            message: Callable[[T], str | None] | None = None,
            skipped: Callable[[T], str | None] | None = None) -> T:
        """Run one stage. ``skipped`` returns why a stage that returned had nothing to do (it is then
        recorded as skipped with that message), or None."""
        start = time.perf_counter()
        if self.progress is not None:
            self.progress.stage(name)
        try:
            value = func()
        except GateError as exc:
            self.records.append(StageRecord(stage=name, status=StageStatus.failed,
                                            seconds=time.perf_counter() - start, message=exc.message))
            raise
        seconds = time.perf_counter() - start
        why_skipped = skipped(value) if skipped else None
        if why_skipped is not None:
            self.records.append(StageRecord(stage=name, status=StageStatus.skipped, seconds=seconds,
                                            message=why_skipped))
            return value
        hit = cache_hit(value) if cache_hit else None
        self.records.append(StageRecord(stage=name, status=StageStatus.ok, seconds=seconds, cache_hit=hit,
                                        message=message(value) if message else None))
        self.say(f"{name}: done in {seconds:.1f} s" + (" (cached)" if hit else ""))
        return value

    def skip(self, names: tuple[str, ...] | list[str], reason: str) -> None:
        """Record stages that did not run, and why."""
        self.records.extend(StageRecord(stage=name, status=StageStatus.skipped, message=reason) for name in names)
