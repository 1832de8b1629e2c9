"""Third-party output of ``gate run`` goes to a per-run log file, not the terminal.

Libraries print in every way there is: ``warnings``, ``logging``, tqdm bars, banners on import,
and C/C++ extensions writing straight to file descriptors 1 and 2 (torchao's shared-library load
messages, CUDA). Redirecting ``sys.stdout`` would miss the last kind, so the process's fds 1 and 2
are pointed at the log (``dup2``) while the heavy stages run, and the gate's own progress writes to
a duplicate of the original stderr. Everything is restored on every path, and the report is
written afterwards to the real stdout.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from gate.result import GateResult

LOG_DIR = Path(".gate/logs")
TAIL_LINES = 20


@dataclass(frozen=True)
class LibraryLog:
    """Where this run's library output went."""

    path: Path | None
    """The log file; None when it streams to the terminal (``-v``)."""

    def shown(self, repo_root: Path) -> str | None:
        """The log's path as reports show it: relative to the repository when inside it."""
        return None if self.path is None else _shown(self.path, repo_root)

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The log's last ``lines`` non-empty lines (progress-bar carriage returns folded)."""
        if self.path is None or not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        folded = [line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]
        return [line for line in folded if line][-lines:]


def new_log_path(repo_root: Path, now: dt.datetime | None = None, kind: str = "run") -> Path:
    """``<repo>/.gate/logs/<kind>-<UTC time>-<pid>.log``: one file per run, never reused."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return repo_root / LOG_DIR / f"{kind}-{stamp}-{os.getpid()}.log"


@contextmanager
def library_output(log_path: Path | None) -> Iterator[IO[str]]:
    """Send fds 1 and 2 (and ``sys.stdout``/``sys.stderr``) to ``log_path`` inside the block.

    Yields the stream the gate's own progress writes to: a duplicate of the original stderr
    (still a terminal when it was one). With ``log_path`` None nothing is redirected (``-v``) and
    it yields ``sys.stderr``.
    """
    if log_path is None:
        yield sys.stderr
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    saved_out, saved_err = os.dup(1), os.dup(2)
    old_stdout, old_stderr = sys.stdout, sys.stderr
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = os.fdopen(os.dup(log_fd), "w", buffering=1, encoding="utf-8", errors="replace")
        sys.stderr = os.fdopen(os.dup(log_fd), "w", buffering=1, encoding="utf-8", errors="replace")
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        replaced = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = old_stdout, old_stderr
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for stream in replaced:
            if stream not in (old_stdout, old_stderr):
                stream.close()
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        terminal.close()


def _flush(stream: IO[str]) -> None:
    with suppress(OSError, ValueError):
        stream.flush()


@contextmanager
def quiet(repo_root: Path, *, verbose: bool = False, command: str = "gate run") -> Iterator[LibraryLog]:
    """Inside the block: library output in a per-run log, the gate's own progress on stderr.

    ``command`` (``gate run``, ``gate revalidate``) prefixes the progress lines and names the
    log (``.gate/logs/revalidate-...``). When the block raises, the log's last lines follow so
    the cause is visible without opening it. ``verbose`` streams library output to the terminal
    instead (no log).
    """
    from gate.report.progress import run_progress

    log = LibraryLog(None if verbose else new_log_path(repo_root, kind=command.split()[-1]))
    try:
        with library_output(log.path) as terminal, run_progress(terminal, live=terminal.isatty() and not verbose,
                                                                prefix=command):
            yield log
    except BaseException:
        say_tail(log, "the run stopped", prefix=command)
        raise


def finish_quiet(log: LibraryLog, repo_root: Path, results: list[GateResult], command: str = "gate run") -> list[GateResult]:
    """After ``quiet``: each result names the log; an error result shows the log's tail; stderr names the log."""
    shown = log.shown(repo_root)
    if shown is None:
        return results
    results = [r.model_copy(update={"log": shown}) for r in results]
    if any(r.verdict.decision.value == "error" for r in results):
        say_tail(log, "a stage failed", prefix=command)
    sys.stderr.write(f"{command}: library output (warnings, progress bars, banners) is in {shown}\n")
    return results


def quiet_run(repo_root: Path, work: Callable[[], list[GateResult]], *, verbose: bool = False) -> list[GateResult]:
    """Run ``work`` (the heavy stages of ``gate run``) under ``quiet``; the results name the log."""
    with quiet(repo_root, verbose=verbose) as log:
        results = work()
    return finish_quiet(log, repo_root, results)


def _shown(path: Path, repo_root: Path) -> str:
    try:
        return path.relative_to(repo_root).as_posix()
    except ValueError:
        return str(path)


def say_tail(log: LibraryLog, why: str, prefix: str = "gate run") -> None:
    """On stderr: the log's last lines, so a library's real error shows with its cause."""
    lines = log.tail()
    if log.path is None or not lines:
        return
    sys.stderr.write(f"{prefix}: {why}; the last {len(lines)} lines of library output ({log.path}):\n")
    sys.stderr.write("".join(f"  | {line}\n" for line in lines))
    sys.stderr.flush()
