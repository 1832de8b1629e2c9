"""The registry's tables as the queries see them (the current schema; migrations.py builds it).

A test migrates an empty database on each engine and checks it has exactly these columns.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_uid", Text, nullable=False),
    Column("recorded_at", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("spec_path", Text),
    Column("spec_sha256", Text),
    Column("git_commit", Text),
    Column("owner", Text),
    Column("tier", Text),
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
)

metrics = Table(
    "metrics", metadata,
    Column("run_id", Integer, nullable=False),
    Column("task", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("baseline", Float),
    Column("quantized", Float),
    Column("difference", Float),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("tolerance", Float),
    Column("tolerance_form", Text),
    Column("outcome", Text),
    Column("n", Integer),
)

incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("model", Text, nullable=False),
    Column("recorded_at", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("run_id", Integer),
)

baseline_results = Table(
    "baseline_results", metadata,
    Column("key", Text, primary_key=True),
    Column("component", Text, nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("blob", LargeBinary),
    Column("blob_sha256", Text),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text),
)

VERSION_TABLE = "quant_gate_schema"
"""PostgreSQL keeps the schema version in this one-row table (SQLite in ``PRAGMA user_version``)."""
