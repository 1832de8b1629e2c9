"""Where the registry lives: a SQLite file (the default) or a shared PostgreSQL server, by URL.

``--registry`` / ``GATE_REGISTRY_URL`` take either a path (``.gate/registry.db``), a
``sqlite:///path`` URL or a ``postgresql://user:password@host:5432/db`` URL. Both engines go
through SQLAlchemy Core (the driver for PostgreSQL is psycopg 3), so every query and migration is
written once. Errors name the URL with its password masked and say what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import InputError, SourceLocation

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_DB = Path(".gate") / "registry.db"
URL_ENV = "GATE_REGISTRY_URL"
BUSY_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 10
"""PostgreSQL connect timeout unless the URL sets ``connect_timeout``: a runner never hangs on a
dead registry for long (its verdict is reported and the record queued)."""


class RegistryError(InputError):
    """The registry database cannot be used as it is (exit 2); it is never overwritten."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or refused us (network, server down, credentials).

    A ``gate run`` that meets this still reports its verdict and queues its record locally."""


@dataclass(frozen=True)
class RegistryTarget:
    """A parsed registry location."""

    url: str
    """SQLAlchemy URL, password included (never printed)."""
    shown: str
    """What errors and reports print: the path, or the URL with its password masked."""
    engine: str
    """sqlite | postgresql"""
    path: Path | None = None
    """The SQLite file (None for PostgreSQL)."""

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.shown)


def parse_target(value: str | Path | None) -> RegistryTarget:
    """A path or URL (None: ``$GATE_REGISTRY_URL``, else ``.gate/registry.db``)."""
    if value is None:
        value = os.environ.get(URL_ENV) or DEFAULT_DB
    if isinstance(value, Path):
        return RegistryTarget(url=f"sqlite:///{value}", shown=str(value), engine="sqlite", path=value)
    text = value.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        return parse_target(Path(text))
    if scheme in ("sqlite", "sqlite+pysqlite"):
        raw = text.split("://", 1)[1]
        if not raw.startswith("/") or raw == "/":
            raise InputError(f"registry URL {text!r} names no file",
                             hint="use sqlite:///relative/path.db, sqlite:////absolute/path.db or just the path")
        return parse_target(Path(raw[1:]))
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url("postgresql+psycopg://" + text.split("://", 1)[1])
        except ArgumentError as exc:
            raise InputError(f"registry URL is not a valid PostgreSQL URL: {exc}",
                             hint="use postgresql://USER:PASSWORD@HOST:5432/DATABASE") from None
        if not url.database:
            raise InputError(f"registry URL {url.render_as_string(hide_password=True)} names no database",
                             hint="append the database name, e.g. postgresql://gate@db.internal:5432/quant_gate")
        shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
        return RegistryTarget(url=url.render_as_string(hide_password=False), shown=shown, engine="postgresql")
    raise InputError(f"registry URL scheme {scheme!r} is not supported",
                     hint="use a SQLite path (.gate/registry.db) or postgresql://USER:PASSWORD@HOST:5432/DATABASE")


def create(target: RegistryTarget) -> Engine:
    """A SQLAlchemy engine for ``target`` (nothing is connected yet)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    if target.engine == "sqlite":
        engine = create_engine(target.url, poolclass=NullPool,
                               connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front, so two writers never deadlock on an upgrade
            # from a read lock; readers take none (WAL lets them read while one writes).
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine
    from sqlalchemy.engine import make_url

    url = make_url(target.url)
    connect_args: dict[str, Any] = {"application_name": "quant-gate"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    # A small pool: a process reuses its connection (a SCRAM login costs ~40 ms) and holds at most two.
    return create_engine(url, pool_size=1, max_overflow=1, pool_recycle=300, connect_args=connect_args)


def translate(exc: BaseException, target: RegistryTarget) -> RegistryError:
    """A driver error as a ``RegistryError`` naming the (masked) URL, the cause and the fix."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    detail = _first_line(str(orig), target)
    if "FATAL:" in detail:  # psycopg reports the server's refusal of a connection without a sqlstate
        detail = " ".join(detail.split("FATAL:", 1)[1].split())
        lowered = detail.lower()
        if "authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
            sqlstate = sqlstate or "28P01"
        elif lowered.startswith("database") and "does not exist" in lowered:
            sqlstate = sqlstate or "3D000"
    if target.engine == "sqlite":
        return RegistryError(
            f"registry database is unusable: {detail}",
            hint="restore it from a backup or `gate registry export` copy; the gate never overwrites it",
            location=target.location,
        )
    if sqlstate in ("28P01", "28000"):
        from sqlalchemy.engine import make_url

        user = make_url(target.url).username or "(none)"
        return RegistryUnavailable(
            f"registry database rejected the credentials of user {user!r}: {detail}",
            hint="check the user and password in the registry URL (the GATE_REGISTRY_URL secret)",
            location=target.location,
        )
    if sqlstate == "3D000":
        return RegistryUnavailable(
            f"registry database does not exist on the server: {detail}",
            hint="create it (`createdb`, owned by the registry user) or fix the database name in the URL",
            location=target.location,
        )
    if sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P"):
        return RegistryUnavailable(
            f"registry database is unreachable: {detail}",
            hint="check that the server is up and reachable from this runner (host, port, firewall); "
                 "runs recorded meanwhile are queued for `gate registry sync`",
            location=target.location,
        )
    return RegistryError(f"registry database error ({sqlstate}): {detail}",
                         hint="see the server log; the registry was left as it was", location=target.location)


def _first_line(message: str, target: RegistryTarget) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = lines[0] if lines else message.strip()
    from sqlalchemy.engine import make_url

    password = make_url(target.url).password if target.engine == "postgresql" else None
    if password:
        text = text.replace(str(password), "***")
    return text


def insert_new(engine: str, table: Any, key: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for ``engine``: writers of an existing key change nothing."""
    if engine == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
