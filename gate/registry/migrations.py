"""Registry schema migrations: (version, statements). Append only; never edit a shipped one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_uid TEXT NOT NULL UNIQUE,
                recorded_at TEXT NOT NULL,
                model TEXT NOT NULL,
                spec_path TEXT,
                spec_sha256 TEXT,
                git_commit TEXT,
                owner TEXT,
                tier TEXT,
                traffic_share REAL,
                baseline_identity TEXT,
                method TEXT,
                bits INTEGER,
                group_size INTEGER,
                format TEXT,
                calibration_source TEXT,
                calibration_sha256 TEXT,
                calibration_samples INTEGER,
                calibration_max_seq_len INTEGER,
                verdict TEXT NOT NULL,
                artifact_sha256 TEXT,
                artifact_path TEXT,
                started_at TEXT,
                finished_at TEXT,
                duration_s REAL,
                runtime_json TEXT NOT NULL,
                result_json TEXT NOT NULL
            )""",
            "CREATE INDEX runs_recorded ON runs (recorded_at DESC, id DESC)",
            "CREATE INDEX runs_model_recorded ON runs (model, recorded_at DESC, id DESC)",
            "CREATE INDEX runs_verdict_recorded ON runs (verdict, recorded_at DESC, id DESC)",
            """CREATE TABLE metrics (
                run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                task TEXT NOT NULL,
                metric TEXT NOT NULL,
                baseline REAL,
                quantized REAL,
                difference REAL,
                ci_low REAL,
                ci_high REAL,
                tolerance REAL,
                tolerance_form TEXT,
                outcome TEXT,
                n INTEGER
            )""",
            "CREATE INDEX metrics_run ON metrics (run_id)",
            """CREATE TABLE incidents (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                model TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                note TEXT NOT NULL,
                run_id INTEGER REFERENCES runs (id)
            )""",
            "CREATE INDEX incidents_model ON incidents (model)",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
