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

from tests.registry import pg

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.Cluster]:
    bin_dir = pg.server_bin()
    if bin_dir is None:
        reason = "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL registry tests (.ci/run installs the package)")
        pytest.skip(reason)
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
