"""ServerProcess against a real server process (a stdlib HTTP server with a child of its own):
health deadline, log tail in errors, death mid-evaluation, port in use, and no survivors."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from gate.serve.interface import PortInUseError, ServerDiedError, ServerHangError, ServerStartError
from gate.serve.process import HOST, ServerProcess, free_port, running_servers

SERVER = r'''
import http.server, json, os, subprocess, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
print("server starting", flush=True)
for i in range(25):
    print(f"loading layer {i}", flush=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[3], "w").write(f"{os.getpid()} {child.pid}")
if mode == "crash":
    print("error: unsupported quantization type 42", flush=True)
    sys.exit(3)
if mode == "hang":
    time.sleep(600)
if mode == "race" and not os.path.exists(sys.argv[3] + ".raced"):
    open(sys.argv[3] + ".raced", "w").close()
    print("error: couldn't bind HTTP server socket: Address already in use", flush=True)
    sys.exit(1)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers(); self.wfile.write(b"{}")
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("sleep"):
            time.sleep(body["sleep"])
        self.send_response(200); self.end_headers(); self.wfile.write(json.dumps({"echo": body}).encode())
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _server(tmp_path: Path, mode: str, **kw: object) -> ServerProcess:
    script = tmp_path / "server.py"
    script.write_text(SERVER, encoding="utf-8")
    pids = tmp_path / "pids"
    return ServerProcess(name="toy-server", command=lambda port: [sys.executable, str(script), str(port), mode, str(pids)],
                         log=tmp_path / "server.log", **kw)  # type: ignore[arg-type]


def _pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def _gone(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_serves_on_loopback_and_leaves_no_process(tmp_path: Path) -> None:
    with _server(tmp_path, "ok", start_timeout_s=30) as server:
        assert server.base_url.startswith(f"http://{HOST}:")
        assert server.post_json("/v1/x", {"a": 1}, timeout_s=10, doing="testing") == {"echo": {"a": 1}}
        leader, child = _pids(tmp_path)
        assert running_servers() == 1
    assert _gone(leader) and _gone(child)
    assert running_servers() == 0


def test_exit_before_healthy_quotes_the_log(tmp_path: Path) -> None:
    server = _server(tmp_path, "crash", start_timeout_s=30)
    with pytest.raises(ServerStartError) as caught:
        server.start()
    lines = [f"    loading layer {i}" for i in range(6, 25)] + ["    error: unsupported quantization type 42"]
    assert caught.value.message == (f"toy-server exited with status 3 before it became healthy; last lines of "
                                    f"{tmp_path / 'server.log'}:\n" + "\n".join(lines))
    assert _gone(_pids(tmp_path)[1])  # the child of a crashed server is stopped with its group
    assert running_servers() == 0


def test_hang_hits_the_deadline_and_stops_the_group(tmp_path: Path) -> None:
    server = _server(tmp_path, "hang", start_timeout_s=1.5)
    with pytest.raises(ServerHangError) as caught:
        server.start()
    assert caught.value.cause == "toy-server did not become healthy within 2 s"
    assert all(_gone(pid) for pid in _pids(tmp_path))
    assert running_servers() == 0


def test_request_past_its_deadline_is_a_hang(tmp_path: Path) -> None:
    with _server(tmp_path, "ok", start_timeout_s=30) as server, pytest.raises(ServerHangError) as caught:
        server.post_json("/v1/x", {"sleep": 5}, timeout_s=0.5, doing="scoring qg_x")
    assert caught.value.cause == "toy-server did not answer /v1/x within 0 s while scoring qg_x"
    assert all(_gone(pid) for pid in _pids(tmp_path))


def test_death_mid_evaluation_is_detected(tmp_path: Path) -> None:
    with _server(tmp_path, "ok", start_timeout_s=30) as server:
        leader, child = _pids(tmp_path)
        os.kill(leader, signal.SIGKILL)
        assert server.proc is not None and server.proc.wait(timeout=10) == -signal.SIGKILL
        with pytest.raises(ServerDiedError) as caught:
            server.post_json("/v1/x", {}, timeout_s=5, doing="scoring qg_x")
        assert caught.value.cause == "toy-server killed by signal 9 while the gate was scoring qg_x through it"
        assert _gone(child)
    assert running_servers() == 0


def test_port_in_use_is_refused_after_retries(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = _server(tmp_path, "ok", start_timeout_s=30, ports=lambda: taken)
        with pytest.raises(PortInUseError) as caught:
            server.start()
    assert caught.value.message == f"toy-server: port {taken} on 127.0.0.1 is in use by another process (3 ports tried)"
    assert not (tmp_path / "pids").exists()  # nothing was launched on a taken port


def test_lost_port_race_retries_on_another_port(tmp_path: Path) -> None:
    ports = iter([free_port(), free_port(), free_port()])
    with _server(tmp_path, "race", start_timeout_s=30, ports=lambda: next(ports)) as server:
        assert server.alive()
    assert "Address already in use" in (tmp_path / "server.log").read_text()


def test_peak_memory_includes_a_spike_between_samples() -> None:
    """The root process's kernel high-water mark (VmHWM) is part of the peak: a spike the 100 ms
    sampler never sees (here: 300 MB touched and freed before the block) is still reported."""
    import subprocess

    from gate.serve.process import peak_tree_rss, tree_rss

    code = ("import sys, time\nb = bytearray(300 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
            "del b\nprint('freed', flush=True)\ntime.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "freed\n"
        now = tree_rss(child.pid)
        with peak_tree_rss(lambda: child.pid) as peak:
            time.sleep(0.3)
        assert now < 100 * 2**20 < 300 * 2**20 <= peak["bytes"]
    finally:
        child.kill()
        child.wait()
