"""Registry fixtures: a real PostgreSQL cluster (session-wide, one fresh database per test) and a
parametrized ``registry_url`` so engine-neutral tests run on SQLite and PostgreSQL alike.

Without PostgreSQL's server binaries the PostgreSQL cases skip with the reason, except under CI
(``CI=true``), where ``.ci/run`` installs them and their absence is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import unavailable
from tests.registry import pg

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.Cluster]:
    bin_dir = pg.server_bin()
    if bin_dir is None:
        unavailable("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    cluster = pg.start(bin_dir)
    try:
        yield cluster
    finally:
        pg.remove(cluster)


@pytest.fixture
def pg_url(pg_cluster: pg.Cluster) -> str:
    """A fresh, empty database on the shared cluster."""
    return pg_cluster.create_database(f"qg_{os.getpid()}_{next(_counter)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh registry location on each engine."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (SQLite backend, local artifact store) on a free loopback port."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow")
    port = pg.free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 180 s: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield uri
    finally:
        import contextlib

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: gunicorn/uvicorn workers too
        proc.wait()
        log.close()
