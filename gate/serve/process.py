"""A real server process: loopback, a free port, a health deadline, a log, and no survivors.

``ServerProcess`` starts a runtime's server in its own process group (``start_new_session``) bound
to 127.0.0.1, its stdout and stderr going to a log file. ``start`` retries on another free port
when the server reports the port taken (a race with another process between choosing and
binding), waits for the health URL with a deadline, and turns every way of not coming up into a
``ServeError`` that quotes the log's last lines: exited (``ServerStartError``), no answer in time
(``ServerHangError``), every port taken (``PortInUseError``). ``check_alive`` detects a server
that died mid-evaluation (``ServerDiedError``). ``stop`` ends the whole process group (SIGTERM,
then SIGKILL after a grace period) and is called on every exit path: the context manager, an
``atexit`` hook, and SIGTERM/SIGHUP handlers installed while any server runs, so neither an
exception, a ``sys.exit`` nor a CI runner cancelling the job leaves a server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from gate.serve.interface import PortInUseError, ServerDiedError, ServerHangError, ServerStartError

HOST = "127.0.0.1"
PORT_RETRIES = 3
STOP_GRACE_S = 5.0
PORT_TAKEN_MARKERS = ("address already in use", "couldn't bind", "failed to bind", "errno 98", "bind failed",
                      "port is already in use")
"""Log phrases (lower case) of a server whose port was taken between choosing and binding."""


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


# --- every running server, for atexit and signals ------------------------------------------------

_RUNNING: set[ServerProcess] = set()
_LOCK = threading.Lock()
_PREVIOUS: dict[int, Any] = {}


def _stop_all() -> None:
    with _LOCK:
        servers = list(_RUNNING)
    for server in servers:
        server.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _track(server: ServerProcess) -> None:
    with _LOCK:
        first = not _RUNNING
        _RUNNING.add(server)
    if first and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            _PREVIOUS[signum] = signal.getsignal(signum)
            signal.signal(signum, _on_signal)


def _untrack(server: ServerProcess) -> None:
    with _LOCK:
        _RUNNING.discard(server)
        last = not _RUNNING
    if last and threading.current_thread() is threading.main_thread():
        for signum, previous in list(_PREVIOUS.items()):
            signal.signal(signum, previous)
            del _PREVIOUS[signum]


atexit.register(_stop_all)


def running_servers() -> int:
    """How many servers this process has running (tests assert 0 after a failed run)."""
    with _LOCK:
        return len(_RUNNING)


# --- one server ----------------------------------------------------------------------------------


@dataclass(eq=False)
class ServerProcess:
    """One server process; ``command(port)`` builds its argv for the port it is to bind."""

    name: str
    """Shown in errors, e.g. ``llama-server``."""
    command: Callable[[int], Sequence[str]]
    log: Path
    health_path: str = "/health"
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    start_timeout_s: float = 600.0
    ports: Callable[[], int] = free_port
    """Where ports come from (tests hand in a taken one)."""
    hint: str = "the cause is in the log above"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_s: float = 0.0
    """Seconds from launch to healthy."""

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> ServerProcess:
        """Launch and wait until healthy, retrying on a taken port; a ``ServeError`` otherwise."""
        for attempt in range(PORT_RETRIES):
            port = self.ports()
            if port_taken(port):
                if attempt == PORT_RETRIES - 1:
                    raise PortInUseError(
                        f"{self.name}: port {port} on {HOST} is in use by another process "
                        f"({PORT_RETRIES} ports tried)",
                        hint="stop the process holding the port, or let the gate choose a free one",
                    )
                continue
            self.port = port
            self._launch()
            try:
                self._wait_healthy()
            except ServerStartError as exc:
                if _port_race(self.log) and attempt < PORT_RETRIES - 1:
                    continue
                if _port_race(self.log):
                    raise PortInUseError(f"{self.name}: could not bind a port on {HOST} ({PORT_RETRIES} tried)",
                                         hint="another process keeps taking the ports", log=self.log) from exc
                raise
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(a) for a in self.command(self.port)]
        with self.log.open("ab") as out:
            try:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=dict(self.env) if self.env is not None else None, cwd=self.cwd,
                                             start_new_session=True)
            except OSError as exc:
                raise ServerStartError(f"{self.name}: cannot start {argv[0]}: {exc}", hint=self.hint) from None
        _track(self)

    def _wait_healthy(self) -> None:
        started = time.monotonic()
        deadline = started + self.start_timeout_s
        while True:
            code = self.proc.poll() if self.proc is not None else None
            if code is not None:
                self.stop()
                raise ServerStartError(f"{self.name} exited with status {code} before it became healthy",
                                       hint=self.hint, log=self.log)
            if _healthy(self.base_url + self.health_path):
                self.started_s = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerHangError(
                    f"{self.name} did not become healthy within {self.start_timeout_s:.0f} s",
                    hint="raise serving.args.start_timeout_s if the machine is slow, or read the log for the cause",
                    log=self.log)
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, doing: str = "evaluating") -> None:
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is not None:
            self.stop()
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise ServerDiedError(f"{self.name} {how} while the gate was {doing} through it",
                                  hint="out of memory or a runtime crash; the cause is in the log above", log=self.log)

    def stop(self) -> None:
        """End the whole process group; idempotent."""
        proc = self.proc
        if proc is None:
            _untrack(self)
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)  # children that outlived their leader
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE_S)
        _untrack(self)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- HTTP ----------------------------------------------------------------------------------

    def post_json(self, path: str, body: Mapping[str, Any], *, timeout_s: float, doing: str) -> dict[str, Any]:
        """POST JSON and return the JSON answer; a dead server, a timeout or an HTTP error is a ``ServeError``."""
        self.check_alive(doing)
        request = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                data: dict[str, Any] = json.loads(answer.read())
                return data
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:500]
            raise ServerStartError(f"{self.name} answered {path} with HTTP {exc.code}: {detail}",
                                   hint=self.hint, log=self.log) from None
        except TimeoutError:
            self.check_alive(doing)
            self.stop()
            raise ServerHangError(f"{self.name} did not answer {path} within {timeout_s:.0f} s while {doing}",
                                  hint="raise serving.args.request_timeout_s, or read the log for the cause",
                                  log=self.log) from None
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            self.check_alive(doing)
            raise ServerDiedError(f"{self.name} stopped answering ({exc}) while the gate was {doing}",
                                  hint="the cause is in the log above", log=self.log) from None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status) == 200
    except (urllib.error.URLError, ConnectionError, OSError, ValueError):
        return False


def _port_race(log: Path) -> bool:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False
    return any(marker in text for marker in PORT_TAKEN_MARKERS)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


# --- memory of a process tree --------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident set of ``pid`` and all its descendants, bytes (0 once it is gone)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the ml extra
        return _proc_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += int(proc.memory_info().rss)
    return total


def _proc_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of ``pid``'s resident set (``VmHWM``), bytes; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@contextlib.contextmanager
def peak_tree_rss(pid_of: Callable[[], int | None], interval_s: float = 0.1) -> Iterator[dict[str, int]]:
    """Sample the process tree's RSS while the block runs; ``out['bytes']`` is the peak: the largest
    sample, or the root process's own high-water mark if that is larger (exact for a one-process
    server such as llama-server, a lower bound for vLLM's tree).

    Every 100 ms, not more often: the sampler walks the tree with psutil on the same cores as the
    server it measures. At 10 ms it slowed llama-server's measured decode of the GGUF example by 10%
    on 2 cores (60.3 vs 66.9 tokens/s, interleaved A/B, two rounds) for the same peak (271 MiB)."""
    out = {"bytes": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pid = pid_of()
            if pid is not None:
                out["bytes"] = max(out["bytes"], tree_rss(pid))
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        pid = pid_of()
        if pid is not None:
            out["bytes"] = max(out["bytes"], peak_rss(pid))
