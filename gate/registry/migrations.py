"""Registry schema migrations, one engine-neutral function per version. Append only: never edit
a shipped migration; add the next version instead.

Each migration builds its own tables in SQLAlchemy Core (so SQLite and PostgreSQL get the same
schema from one definition) and runs inside the migrating transaction. Version 1 is the schema
SQLite registries shipped with before PostgreSQL support; a version-1 SQLite file migrates in place.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.engine import Connection


def _v1(conn: Connection) -> None:
    meta = MetaData()
    runs = Table(
        "runs", meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_uid", Text, nullable=False, unique=True),
        Column("recorded_at", Text, nullable=False),
        Column("model", Text, nullable=False),
        *(Column(name, Text) for name in ("spec_path", "spec_sha256", "git_commit", "owner", "tier")),
        Column("traffic_share", Float),
        Column("baseline_identity", Text),
        Column("method", Text),
        Column("bits", Integer),
        Column("group_size", Integer),
        Column("format", Text),
        Column("calibration_source", Text),
        Column("calibration_sha256", Text),
        Column("calibration_samples", Integer),
        Column("calibration_max_seq_len", Integer),
        Column("verdict", Text, nullable=False),
        Column("artifact_sha256", Text),
        Column("artifact_path", Text),
        Column("started_at", Text),
        Column("finished_at", Text),
        Column("duration_s", Float),
        Column("runtime_json", Text, nullable=False),
        Column("result_json", Text, nullable=False),
        sqlite_autoincrement=True,
    )
    Index("runs_recorded", runs.c.recorded_at.desc(), runs.c.id.desc())
    Index("runs_model_recorded", runs.c.model, runs.c.recorded_at.desc(), runs.c.id.desc())
    Index("runs_verdict_recorded", runs.c.verdict, runs.c.recorded_at.desc(), runs.c.id.desc())
    metrics = Table(
        "metrics", meta,
        Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        Column("task", Text, nullable=False),
        Column("metric", Text, nullable=False),
        *(Column(name, Float) for name in ("baseline", "quantized", "difference", "ci_low", "ci_high", "tolerance")),
        Column("tolerance_form", Text),
        Column("outcome", Text),
        Column("n", Integer),
    )
    Index("metrics_run", metrics.c.run_id)
    incidents = Table(
        "incidents", meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", Text, nullable=False),
        Column("recorded_at", Text, nullable=False),
        Column("note", Text, nullable=False),
        Column("run_id", Integer, ForeignKey("runs.id")),
        sqlite_autoincrement=True,
    )
    Index("incidents_model", incidents.c.model)
    meta.create_all(conn)


def _v2(conn: Connection) -> None:
    """Baseline results shared by every runner: one row per content key (the local cache's key)."""
    meta = MetaData()
    Table(
        "baseline_results", meta,
        Column("key", Text, primary_key=True),
        Column("component", Text, nullable=False),
        Column("payload_json", Text, nullable=False),
        Column("blob", LargeBinary),
        Column("blob_sha256", Text),
        Column("created_at", Text, nullable=False),
        Column("created_by", Text),
    )
    meta.create_all(conn)


def _v3(conn: Connection) -> None:
    """A covering index for `gate stats`: its per-model summary reads the index, not the runs'
    multi-kilobyte result JSON (SQLite keeps it inline: 1.2 s -> see docs/benchmarks/registry.md)."""
    meta = MetaData()
    runs = Table("runs", meta, Column("id", Integer), Column("model", Text), Column("recorded_at", Text),
                 Column("verdict", Text), Column("traffic_share", Float), Column("duration_s", Float))
    Index("runs_model_history", runs.c.model, runs.c.recorded_at, runs.c.id, runs.c.verdict, runs.c.traffic_share,
          runs.c.duration_s).create(conn)


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1),
    (2, _v2),
    (3, _v3),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
