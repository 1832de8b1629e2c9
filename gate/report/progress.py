"""Progress display for ``gate run``: one rich progress bar per stage on stderr (terminals only).

Usage::

    with stage_progress(["quantize", "evaluate"]) as progress:
        progress.start("evaluate", total=len(items))
        progress.advance("evaluate")
        progress.finish("evaluate")

When stderr is not a terminal (CI logs) the tracker prints one plain line per finished stage.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any


class StageProgress:
    """Tracks stages; draws bars through ``rich.progress`` when ``live`` is set."""

    def __init__(self, stages: Sequence[str], stream: IO[str], live: bool) -> None:
        self.stream = stream
        self.live = live
        self._started: dict[str, float] = {}
        self._tasks: dict[str, Any] = {}
        self._progress: Any = None
        if live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(file=stream), transient=False,
            )
            for name in stages:
                self._tasks[name] = self._progress.add_task(name, total=None, start=False)

    def start(self, stage: str, total: int | None = None) -> None:
        self._started[stage] = time.perf_counter()
        if self._progress is not None:
            task = self._tasks.get(stage)
            if task is None:
                task = self._tasks[stage] = self._progress.add_task(stage, total=total)
            self._progress.update(task, total=total)
            self._progress.start_task(task)

    def advance(self, stage: str, amount: int = 1) -> None:
        if self._progress is not None and stage in self._tasks:
            self._progress.advance(self._tasks[stage], amount)

    def finish(self, stage: str, status: str = "ok") -> float:
        """Mark ``stage`` done; returns its seconds."""
        seconds = time.perf_counter() - self._started.get(stage, time.perf_counter())
        if self._progress is not None and stage in self._tasks:
            task = self._tasks[stage]
            total = self._progress.tasks[task].total
            self._progress.update(task, total=total or 1, completed=total or 1,
                                  description=f"{stage} ({status})")
        else:
            self.stream.write(f"gate: {stage}: {status} in {seconds:.1f} s\n")
            self.stream.flush()
        return seconds

    def __enter__(self) -> StageProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def stage_progress(
    stages: Sequence[str], *, stream: IO[str] | None = None, live: bool | None = None
) -> Iterator[StageProgress]:
    """Progress for ``stages``; bars only when ``stream`` (default stderr) is a terminal."""
    out = stream if stream is not None else sys.stderr
    show = out.isatty() if live is None else live
    with StageProgress(stages, out, show) as progress:
        yield progress
