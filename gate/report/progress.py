"""The gate's own progress for ``gate run``: stage, step, items done / total, elapsed and an estimate.

On a terminal it draws rich bars (one line per step, the current stage on the left); in CI logs
(not a terminal) it writes plain lines: one when a step starts, at most one per ``plain_interval``
seconds while it runs, and one when it ends. Library output never reaches it: ``gate run``
sends that to a log file (``gate.library_output``) and hands this class the real terminal.

Deep code (a quantizer's layer loop, the speed-and-memory measurement, every lm-eval call through
``gate.evaluate.lm_progress.with_progress``) reports through ``report(what, done, total)``, which
forwards to the active ``RunProgress`` and is a no-op when there is none (``gate check``, tests,
library use). A step that finished and reports again (the next look's lm-eval call for the same
task) starts over as a new step, with its own elapsed time and estimate.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

Clock = Callable[[], float]
_CONTEXT = re.compile(r"[\w-]+: ")


def estimate_left(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the rate so far (None before the first item or when the total is unknown)."""
    if done <= 0 or total <= 0 or done > total:
        return None
    return elapsed / done * (total - done)


def duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class _Step:
    what: str
    total: int | None
    started: float
    done: int = 0
    last_line: float = 0.0
    task: Any = None


class RunProgress:
    """Progress of one ``gate run`` on ``stream`` (bars when ``live``, plain lines otherwise)."""

    def __init__(self, stream: IO[str], *, live: bool, prefix: str = "gate run", plain_interval: float = 15.0,
                 heartbeat: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.stream = stream
        self.live = live
        self.prefix = prefix
        self.plain_interval = plain_interval
        self.heartbeat = heartbeat
        """Plain lines: after this many quiet seconds, say what is still running and for how long."""
        self.clock = clock
        self.stage_name = ""
        self._lock = threading.Lock()
        self._last_line = clock()
        self._activity: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._steps: dict[str, _Step] = {}
        self._stage_task: Any = None
        self._bars: Any = None
        if live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bars = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"),
                TextColumn("[bold]{task.fields[stage]:<18}[/]"),
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(file=stream, highlight=False),
                transient=False,
            )

    # -- stages and messages ------------------------------------------------------------------
    def stage(self, name: str) -> None:
        """Enter a stage (quantize, evaluate-baseline, ...); closes the previous stage's steps.

        On a terminal the stage gets its own line (spinner, latest message, elapsed), so a long
        uncounted step (an lm-eval task) still shows that it is alive and for how long."""
        self._close_steps()
        self._close_stage()
        self.stage_name = name
        self._activity = None
        if self._bars is not None:
            self._stage_task = self._bars.add_task("", total=None, stage=name)

    def say(self, message: str) -> None:
        """One line of the gate's own (``gate run: quantize: ...``)."""
        own_context = _CONTEXT.match(message) is not None  # "baseline: ...", "quantize: done in 3.1 s"
        label = f"{self.stage_name}: " if self.stage_name and not own_context else ""
        if self._bars is not None:
            self._bars.console.print(f"[dim]{self.prefix}[/dim] {label}{message}", markup=True, highlight=False)
            if self._stage_task is not None:
                self._bars.update(self._stage_task, description=message.split(": ", 1)[-1][:60])
        else:
            self._line(f"{label}{message}")
            self._activity = (f"{label}{message}", self.clock())

    # -- counted steps ------------------------------------------------------------------------
    def update(self, what: str, done: int, total: int | None) -> None:
        """``what`` has ``done`` of ``total`` items done (the ``Progress`` callback of the quantizers)."""
        now = self.clock()
        step = self._steps.get(what)
        started = step is None
        if step is None:  # new, or the same step again after it finished (the next look's lm-eval call)
            step = self._steps[what] = _Step(what=what, total=total, started=now, last_line=now)
            if self._bars is not None:
                step.task = self._bars.add_task(what, total=total, stage=self.stage_name)
            else:
                self._line(f"{self._label(what)} {self._counts(done, total)}")
        step.done, step.total = done, total if total is not None else step.total
        finished = step.total is not None and done >= step.total
        if finished:
            del self._steps[what]
        if self._bars is not None:
            self._bars.update(step.task, completed=done, total=step.total)
            return
        self._activity = None if finished else (f"{self._label(what)} {self._counts(done, step.total)}", step.started)
        if finished or (not started and now - step.last_line >= self.plain_interval):
            step.last_line = now
            self._line(self._status(step, now))

    def _close_stage(self) -> None:
        if self._bars is not None and self._stage_task is not None:
            self._bars.update(self._stage_task, total=1, completed=1)
        self._stage_task = None

    def _close_steps(self) -> None:
        for step in list(self._steps.values()):
            if self._bars is not None and step.total is None:
                self._bars.update(step.task, total=max(step.done, 1), completed=max(step.done, 1))
        self._steps.clear()

    # -- plain lines ----------------------------------------------------------------------------
    def _label(self, what: str) -> str:
        return f"{self.stage_name}: {what}" if self.stage_name else what

    @staticmethod
    def _counts(done: int, total: int | None) -> str:
        return f"{done}/{total}" if total is not None else f"{done}"

    def _status(self, step: _Step, now: float) -> str:
        elapsed = now - step.started
        parts = [f"{self._label(step.what)} {self._counts(step.done, step.total)}", f"{duration(elapsed)} elapsed"]
        left = estimate_left(elapsed, step.done, step.total or 0)
        if left is not None and step.total is not None and step.done < step.total:
            parts.append(f"~{duration(left)} left")
        return " · ".join(parts)

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"{self.prefix}: {text}\n")
            self.stream.flush()
            self._last_line = self.clock()

    def _beating(self) -> None:
        """CI logs: a long uncounted step (an lm-eval task) still gets a line every ``heartbeat`` seconds."""
        while not self._stop.wait(min(1.0, self.heartbeat)):
            activity = self._activity
            now = self.clock()
            if activity is not None and now - self._last_line >= self.heartbeat:
                text, since = activity
                self._line(f"{text} · still running, {duration(now - since)} elapsed")

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self._bars is not None:
            self._bars.start()
        elif self.heartbeat > 0:
            self._beat = threading.Thread(target=self._beating, name="gate-progress", daemon=True)
            self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self._close_steps()
        self._close_stage()
        if self._bars is not None:
            self._bars.stop()


_ACTIVE: list[RunProgress] = []


def active() -> RunProgress | None:
    """The progress of the ``gate run`` in progress, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


def report(what: str, done: int, total: int | None) -> None:
    """Report a step's progress to the active run (no-op without one)."""
    progress = active()
    if progress is not None:
        progress.update(what, done, total)


@contextmanager
def run_progress(stream: IO[str], *, live: bool | None = None, **kwargs: Any) -> Iterator[RunProgress]:
    """Make a ``RunProgress`` on ``stream`` the active one (bars when ``stream`` is a terminal)."""
    show = stream.isatty() if live is None else live
    with RunProgress(stream, live=show, **kwargs) as progress, activated(progress):
        yield progress


@contextmanager
def activated(progress: RunProgress) -> Iterator[RunProgress]:
    """Make ``progress`` (already started) the one ``report`` reaches inside the block."""
    _ACTIVE.append(progress)
    try:
        yield progress
    finally:
        _ACTIVE.remove(progress)
