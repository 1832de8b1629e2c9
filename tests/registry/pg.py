"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries, a temp data
directory, a unix socket in it and a free loopback port, password auth on TCP.

PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` system user
(created by Debian's package) through ``runuser``. ``stop()`` shuts it down (fast, then immediate,
then SIGKILL to the postmaster's process group) on every path.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

USER = "gate"
PASSWORD = "s3cret-registry"
SERVICE_USER = "postgres"


def server_bin() -> Path | None:
    """The newest installed server's bin directory (None when the server is not installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    port: int
    as_user: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str, *, password: str = PASSWORD, user: str = USER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = self._run(str(self.bin_dir / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", USER,
                        "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        for mode in ("immediate", "fast"):  # a throwaway cluster: no clean checkpoint needed
            out = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop",
                            timeout=40)
            if out.returncode == 0:
                return
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def start(bin_dir: Path) -> Cluster:
    """initdb + start on a free loopback port; raises RuntimeError with the server's words."""
    root = Path(tempfile.mkdtemp(prefix="qg-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as "
                               "(Debian's postgresql package creates it)") from None
        os.chown(root, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", SERVICE_USER, "--"]
    cluster = Cluster(bin_dir=bin_dir, root=root, port=free_port(), as_user=as_user)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    out = cluster._run(str(bin_dir / "initdb"), "-D", str(cluster.data), "-U", USER, f"--pwfile={pwfile}",
                       "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
                       "--locale=C.UTF-8")
    pwfile.unlink()
    if out.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {out.stderr.strip() or out.stdout.strip()}")
    options = (f"-c listen_addresses=127.0.0.1 -c port={cluster.port} -c unix_socket_directories={root} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
               "-c shared_buffers=64MB")
    out = cluster._run(str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-o", options, "-l", str(root / "server.log"),
                       "-w", "-t", "60", "start", timeout=90)
    if out.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {out.stderr.strip()} {log[-2000:]}")
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.psql("SELECT 1")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                cluster.stop()
                raise
            time.sleep(0.2)
    return cluster


def remove(cluster: Cluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
