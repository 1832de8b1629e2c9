"""Rich progress bars for long steps (layers quantized, calibration batches); silent when off."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from gate.quantize.interface import Progress


@contextlib.contextmanager
def progress_reporter(enabled: bool, title: str) -> Iterator[Progress | None]:
    """A ``progress(what, done, total)`` callback drawing one bar per ``what`` on stderr.

    Inside ``gate run`` the callback reports to the run's own progress (``gate.report.progress``),
    which draws on the real terminal while stderr goes to the library log."""
    from gate.report.progress import active

    run = active()
    if run is not None:
        yield run.update
        return
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = Console(file=sys.stderr)
    bars = RichProgress(
        TextColumn(f"[bold]{title}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def report(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = int(bars.add_task(what, total=total))
        bars.update(tasks[what], completed=done, total=total)  # type: ignore[arg-type]

    with bars:
        yield report


@contextlib.contextmanager
def library_progress(enabled: bool) -> Iterator[None]:
    """Silence transformers' own tqdm bars (loading/writing shards) when progress is off."""
    if enabled:
        yield
        return
    import warnings

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
