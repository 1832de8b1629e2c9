"""Library output goes to the run's log at the file-descriptor level; the terminal keeps the gate's own lines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from gate.library_output import LibraryLog, new_log_path

NOISY = textwrap.dedent("""
    import ctypes, logging, os, sys, warnings
    from pathlib import Path
    from gate.library_output import library_output

    log = Path(sys.argv[1])
    print("before: stdout")
    with library_output(log) as terminal:
        print("lib: print to stdout")
        print("lib: print to stderr", file=sys.stderr)
        warnings.warn("lib: a deprecation banner", DeprecationWarning, stacklevel=1)
        logging.getLogger("somelib").warning("lib: a logging warning")
        os.write(1, b"lib: C code on fd 1\\n")
        os.write(2, b"lib: C code on fd 2\\n")
        ctypes.CDLL(None).puts(b"lib: libc puts")  # buffered inside libc, flushed at exit: still the log's
        ctypes.CDLL(None).fflush(None)
        sys.stderr.write("lib: tqdm 10%|#  | 1/10\\rlib: tqdm 100%|###| 10/10\\n")
        terminal.write("gate run: quantize: layers quantized 1/2\\n")
    print("after: stdout")
    print("after: stderr", file=sys.stderr)
""")


def test_every_kind_of_library_output_lands_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    proc = subprocess.run([sys.executable, "-W", "always", "-c", NOISY, str(log)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "before: stdout\nafter: stdout\n"
    assert proc.stderr == "gate run: quantize: layers quantized 1/2\nafter: stderr\n"
    text = log.read_text()
    for line in ("lib: print to stdout", "lib: print to stderr", "lib: a deprecation banner", "lib: a logging warning",
                 "lib: C code on fd 1", "lib: C code on fd 2", "lib: libc puts", "lib: tqdm 100%"):
        assert line in text
    assert "gate run:" not in text
    assert LibraryLog(log).tail(2) == ["lib: libc puts", "lib: tqdm 100%|###| 10/10"]


def test_an_exception_restores_the_terminal(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from gate.library_output import library_output
        try:
            with library_output(Path(sys.argv[1])):
                os.write(2, b"lib: cuda error: out of memory\\n")
                raise RuntimeError("boom")
        except RuntimeError as exc:
            print(f"gate: caught {exc}", file=sys.stderr)
        os.write(2, b"fd 2 is the terminal again\\n")
    """)
    log = tmp_path / "run.log"
    proc = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr == "gate: caught boom\nfd 2 is the terminal again\n"
    assert log.read_text() == "lib: cuda error: out of memory\n"


def test_log_paths_are_per_run(tmp_path: Path) -> None:
    import datetime as dt
    import os

    path = new_log_path(tmp_path, dt.datetime(2026, 12, 4, 18, 30, 5, tzinfo=dt.UTC))
    assert path == tmp_path / ".gate" / "logs" / f"run-20261204T183005Z-{os.getpid()}.log"
    assert LibraryLog(None).tail() == []


QUIET_RUN = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from gate.library_output import quiet_run
    from gate.result import Decision, GateResult, SpecRef, Verdict

    def result(decision):
        return GateResult(gate_version="0", command="run", spec=SpecRef(path="tiny.yaml"), started_at="t",
                          finished_at="t", verdict=Verdict(decision=decision, reasons=["r"]), exit_code=0)

    def work():
        os.write(2, b"lib: loading weights 100%\\n")
        os.write(2, b"lib: RuntimeError: CUDA error: device-side assert triggered\\n")
        if sys.argv[2] == "raise":
            raise RuntimeError("the backend crashed")
        return [result(Decision(sys.argv[2]))]

    try:
        (r,) = quiet_run(Path(sys.argv[1]), work, verbose=sys.argv[3] == "-v")
        print(r.log)
    except RuntimeError as exc:
        print(f"raised: {exc}")
""")


def _quiet_run(repo: Path, outcome: str, verbose: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", QUIET_RUN, str(repo), outcome, verbose or "quiet"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_libraries_error_surfaces_with_the_logs_last_lines(tmp_path: Path) -> None:
    proc = _quiet_run(tmp_path, "error")
    (log,) = (tmp_path / ".gate" / "logs").iterdir()
    assert proc.stdout == f".gate/logs/{log.name}\n"
    assert proc.stderr == (
        f"gate run: a stage failed; the last 2 lines of library output ({log}):\n"
        "  | lib: loading weights 100%\n"
        "  | lib: RuntimeError: CUDA error: device-side assert triggered\n"
        f"gate run: library output (warnings, progress bars, banners) is in .gate/logs/{log.name}\n"
    )


def test_a_crash_shows_the_logs_last_lines_and_still_raises(tmp_path: Path) -> None:
    proc = _quiet_run(tmp_path, "raise")
    (log,) = (tmp_path / ".gate" / "logs").iterdir()
    assert proc.stdout == "raised: the backend crashed\n"
    assert proc.stderr.startswith(f"gate run: the run stopped; the last 2 lines of library output ({log}):\n")


def test_a_pass_names_the_log_only(tmp_path: Path) -> None:
    proc = _quiet_run(tmp_path, "pass")
    (log,) = (tmp_path / ".gate" / "logs").iterdir()
    assert proc.stderr == f"gate run: library output (warnings, progress bars, banners) is in .gate/logs/{log.name}\n"


def test_verbose_streams_library_output_and_writes_no_log(tmp_path: Path) -> None:
    proc = _quiet_run(tmp_path, "pass", "-v")
    assert proc.stdout == "None\n"
    assert proc.stderr == "lib: loading weights 100%\nlib: RuntimeError: CUDA error: device-side assert triggered\n"
    assert not (tmp_path / ".gate").exists()
