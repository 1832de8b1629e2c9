"""The run registry on SQLAlchemy Core: a SQLite file (default) or a shared PostgreSQL server.

Every ``gate run`` is one row in ``runs`` plus its per-metric rows, written in one transaction, so
a process killed mid-write leaves either the whole record or nothing, on either engine. Concurrent
writers (many runners) lose nothing: SQLite serialises them with ``BEGIN IMMEDIATE`` and a busy
timeout, PostgreSQL with its own MVCC and the unique ``run_uid``. The schema is versioned
(``migrations.py``, append-only); a database that is not a registry, is corrupt, or has a newer
schema than this gate knows is refused with a clear error and never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import InputError
from gate.registry.engine import (
    DEFAULT_DB,
    RegistryError,
    RegistryTarget,
    RegistryUnavailable,
    create,
    insert_new,
    parse_target,
    translate,
)
from gate.result import Criterion, GateResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, RowMapping

__all__ = [
    "DEFAULT_DB",
    "RUN_COLUMNS",
    "Incident",
    "ModelHistory",
    "Registry",
    "RegistryError",
    "RegistryUnavailable",
    "RunRecord",
    "run_row",
]

RUN_COLUMNS = (
    "run_uid",
    "recorded_at",
    "model",
    "spec_path",
    "spec_sha256",
    "git_commit",
    "owner",
    "tier",
    "traffic_share",
    "baseline_identity",
    "method",
    "bits",
    "group_size",
    "format",
    "calibration_source",
    "calibration_sha256",
    "calibration_samples",
    "calibration_max_seq_len",
    "verdict",
    "artifact_sha256",
    "artifact_path",
    "started_at",
    "finished_at",
    "duration_s",
    "runtime_json",
    "result_json",
)
METRIC_COLUMNS = ("task", "metric", "baseline", "quantized", "difference", "ci_low", "ci_high", "tolerance",
                  "tolerance_form", "outcome", "n")
MIGRATION_LOCK = 0x7167_7265_6769  # pg_advisory_xact_lock key: one migrator at a time fleet-wide
IMPORT_CHUNK = 1000


@dataclass(frozen=True)
class RunRecord:
    """One registered run (a row of ``runs``)."""

    id: int
    run_uid: str
    recorded_at: str
    model: str
    spec_path: str | None
    spec_sha256: str | None
    git_commit: str | None
    owner: str | None
    tier: str | None
    traffic_share: float | None
    baseline_identity: str | None
    method: str | None
    bits: int | None
    group_size: int | None
    format: str | None
    calibration_source: str | None
    calibration_sha256: str | None
    calibration_samples: int | None
    calibration_max_seq_len: int | None
    verdict: str
    artifact_sha256: str | None
    artifact_path: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    runtime_json: str
    result_json: str

    @property
    def runtime(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads(self.runtime_json)
        return loaded

    @property
    def result(self) -> dict[str, Any]:
        """The stored result document as JSON (schema 1 or 2, as it was recorded)."""
        loaded: dict[str, Any] = json.loads(self.result_json)
        return loaded

    @property
    def gate_result(self) -> GateResult:
        """The stored result as the typed contract (a schema 1 record is upgraded on reading)."""
        from gate.result_v1 import read_result_json

        return read_result_json(self.result_json)

    @property
    def metric_criteria(self) -> list[Criterion]:
        """The run's task-metric criteria (without validating the rest of the record)."""
        from gate.result_v1 import metric_criteria

        return metric_criteria(self.result)


@dataclass(frozen=True)
class ModelHistory:
    """One model's runs, summarised by the database (``gate stats`` on 100,000 runs reads 1 row
    per model, not per run)."""

    model: str
    runs: int
    first_run: str
    """recorded_at of its first run"""
    latest_verdict: str
    traffic_share: float | None
    """The newest recorded (non-null) share."""
    first_pass: str | None
    """recorded_at of its first passing run"""
    attempts: int
    """Runs up to and including the first pass (all runs when none passed)."""
    pass_duration_s: float | None




@dataclass(frozen=True)
class Incident:
    id: int
    model: str
    recorded_at: str
    note: str
    run_id: int | None


class Registry:
    """A handle on one registry (path or URL). Cheap to create; connects per operation."""

    def __init__(self, location: str | Path | RegistryTarget | None = None) -> None:
        self.target = location if isinstance(location, RegistryTarget) else parse_target(location)
        self.path = self.target.path
        self._engine: Engine | None = None
        self._checked = False

    @property
    def shown(self) -> str:
        """The path, or the URL with its password masked."""
        return self.target.shown

    # -- connection and schema -------------------------------------------------------------
    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = create(self.target)
        return self._engine

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        """A connection inside one transaction (committed on success, rolled back otherwise)."""
        from sqlalchemy.exc import DBAPIError

        if self.path is not None and not write and not self.path.exists():
            raise RegistryError("registry database not found",
                                hint="run `gate run` first, or pass --registry PATH", location=self.target.location)
        if self.path is not None and write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._get_engine().connect() as raw:
                if not self._checked:
                    self._prepare(raw, write=write)
                    self._checked = True
                conn = raw.execution_options(write=write)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            raise translate(exc, self.target) from None

    def _version(self, conn: Connection) -> int:
        from sqlalchemy import text

        from gate.registry.schema import VERSION_TABLE

        if self.target.engine == "sqlite":
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
            if version == 0 and conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one():
                raise RegistryError("file is a SQLite database but not a quant-gate registry",
                                    hint="pass a different --registry path; the file was left untouched",
                                    location=self.target.location)
            return version
        if conn.execute(text(f"SELECT to_regclass('{VERSION_TABLE}')")).scalar_one() is None:
            if conn.execute(text("SELECT to_regclass('runs')")).scalar_one() is not None:
                raise RegistryError("database has a `runs` table but no quant-gate schema version",
                                    hint="point the registry URL at a database (or schema) of its own; "
                                         "nothing was changed", location=self.target.location)
            return 0
        value = conn.execute(text(f"SELECT max(version) FROM {VERSION_TABLE}")).scalar_one()
        return int(value or 0)

    def _prepare(self, conn: Connection, *, write: bool) -> None:
        from gate.registry.migrations import MIGRATIONS, SCHEMA_VERSION

        version = self._version(conn)
        conn.rollback()  # end the implicit read transaction before migrating
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry schema version {version} is newer than this gate supports ({SCHEMA_VERSION})",
                hint="upgrade quant-gate; the database was left untouched", location=self.target.location)
        if version == SCHEMA_VERSION:
            return
        if not write:
            if version == 0 and self.target.engine == "postgresql":
                raise RegistryError("registry database has no quant-gate schema yet",
                                    hint="run `gate registry migrate` (or any `gate run`) to create it",
                                    location=self.target.location)
            raise RegistryError(
                f"registry schema version {version} is older than this gate's ({SCHEMA_VERSION})",
                hint="run any writing command (e.g. `gate registry migrate`) to upgrade it",
                location=self.target.location)
        from sqlalchemy import text

        from gate.registry.schema import VERSION_TABLE

        if self.target.engine == "sqlite":
            # Outside any transaction (SQLite refuses it inside one): straight on the driver.
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            dbapi.execute("PRAGMA journal_mode = WAL")
        with conn.execution_options(write=True).begin():
            if self.target.engine == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                conn.execute(text(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)"))
            # Re-read under the lock: another runner may have migrated meanwhile.
            current = self._version(conn)
            for target, migration in MIGRATIONS:
                if target > current:
                    migration(conn)
            if self.target.engine == "sqlite":
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
                conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version) VALUES (:v)"), {"v": SCHEMA_VERSION})

    def migrate(self) -> int:
        """Create or upgrade the schema; return the schema version."""
        with self._connect(write=True) as conn:
            return self._version(conn)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- writing ---------------------------------------------------------------------------
    def record(self, result: GateResult, *, git_commit: str | None = None, run_uid: str | None = None) -> int:
        """Store one run and its metrics atomically; return the run id."""
        return self.record_row(run_row(result, git_commit=git_commit, run_uid=run_uid))

    def record_row(self, row: dict[str, Any]) -> int:
        """Store one ``run_row`` atomically (idempotent by ``run_uid``); return its run id."""
        with self._connect(write=True) as conn:
            ids = _insert_runs(conn, self.target.engine, [row])
            if row["run_uid"] in ids:
                return ids[row["run_uid"]]
            from gate.registry.schema import runs

            return int(conn.execute(runs.select().with_only_columns(runs.c.id)
                                    .where(runs.c.run_uid == row["run_uid"])).scalar_one())

    def add_incident(self, model: str, note: str, *, run_id: int | None = None) -> int:
        from gate.registry.schema import incidents

        if not note.strip():
            raise InputError("incident note is empty", hint="describe what reached production, e.g. --note '...'")
        with self._connect(write=True) as conn:
            return int(conn.execute(incidents.insert().returning(incidents.c.id),
                                    {"model": model, "recorded_at": now(), "note": note.strip(),
                                     "run_id": run_id}).scalar_one())

    # -- reading ---------------------------------------------------------------------------
    def list_runs(
        self,
        *,
        model: str | None = None,
        verdict: str | None = None,
        since: str | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        """Newest first. ``since`` is an ISO date or timestamp (inclusive)."""
        from gate.registry.schema import runs

        query = runs.select()
        if model:
            query = query.where(runs.c.model == model)
        if verdict:
            query = query.where(runs.c.verdict == verdict)
        if since:
            query = query.where(runs.c.recorded_at >= since)
        query = query.order_by(runs.c.recorded_at.desc(), runs.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._connect(write=False) as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def get(self, run_id: int) -> RunRecord:
        from gate.registry.schema import runs

        with self._connect(write=False) as conn:
            row = conn.execute(runs.select().where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise InputError(f"no run with id {run_id}", hint="`gate registry list` shows the ids")
        return _record(row)

    def latest_per_model(self) -> list[RunRecord]:
        """The newest run of every model."""
        from sqlalchemy import func, select

        from gate.registry.schema import runs

        latest = select(func.max(runs.c.id).label("id")).group_by(runs.c.model).subquery()
        query = runs.select().join(latest, runs.c.id == latest.c.id).order_by(runs.c.model)
        with self._connect(write=False) as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def all_runs_ascending(self) -> list[RunRecord]:
        from gate.registry.schema import runs

        with self._connect(write=False) as conn:
            return [_record(r) for r in conn.execute(runs.select().order_by(runs.c.recorded_at, runs.c.id)).mappings()]

    def model_histories(self) -> list[ModelHistory]:
        """Per model: run count, first run, latest verdict and share, first pass and attempts.

        One ordered pass over the covering index ``runs_model_history`` (migration 3): window
        functions in SQL were slower on SQLite (a sort per window, 2.2 s on 100,000 runs)."""
        from sqlalchemy import select

        from gate.registry.schema import runs

        query = select(runs.c.model, runs.c.recorded_at, runs.c.verdict, runs.c.traffic_share,
                       runs.c.duration_s).order_by(runs.c.model, runs.c.recorded_at, runs.c.id)
        out: list[ModelHistory] = []
        current: list[Any] | None = None  # model, runs, first, latest, share, first_pass, attempts, duration
        with self._connect(write=False) as conn:
            for model, recorded_at, verdict, share, duration in conn.execute(query):
                if current is None or current[0] != model:
                    if current is not None:
                        out.append(ModelHistory(*current))
                    current = [model, 0, recorded_at, verdict, None, None, 0, None]
                current[1] += 1
                current[3] = verdict
                if share is not None:
                    current[4] = share
                if current[5] is None:
                    current[6] = current[1]
                    if verdict == "pass":
                        current[5], current[7] = recorded_at, duration
        if current is not None:
            out.append(ModelHistory(*current))
        return out

    def incidents(self, model: str | None = None) -> list[Incident]:
        from gate.registry.schema import incidents

        query = incidents.select().order_by(incidents.c.id)
        if model:
            query = query.where(incidents.c.model == model)
        with self._connect(write=False) as conn:
            return [Incident(r["id"], r["model"], r["recorded_at"], r["note"], r["run_id"])
                    for r in conn.execute(query).mappings()]

    def count(self) -> int:
        from sqlalchemy import func, select

        from gate.registry.schema import runs

        with self._connect(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(runs)).scalar_one())

    def incomplete_runs(self) -> int:
        """Runs whose metric rows do not match their result JSON (0 unless a write was torn)."""
        from gate.registry.schema import metrics, runs

        counts: dict[int, int] = {}
        with self._connect(write=False) as conn:
            for (run_id,) in conn.execute(metrics.select().with_only_columns(metrics.c.run_id)):
                counts[run_id] = counts.get(run_id, 0) + 1
            bad = 0
            for run_id, result_json in conn.execute(runs.select().with_only_columns(runs.c.id, runs.c.result_json)):
                bad += len(_metric_criteria(result_json)) != counts.get(run_id, 0)
        return bad

    def integrity(self) -> str:
        """SQLite's ``integrity_check``; on PostgreSQL, ``ok`` when no run is incomplete."""
        if self.target.engine == "postgresql":
            return "ok" if self.incomplete_runs() == 0 else "incomplete runs"
        with self._connect(write=False) as conn:
            return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar_one())

    # -- import ----------------------------------------------------------------------------
    def import_rows(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Insert exported rows in one transaction; rows whose ``run_uid`` already exists are
        skipped. Returns (imported, skipped)."""
        imported = 0
        with self._connect(write=True) as conn:
            for start in range(0, len(rows), IMPORT_CHUNK):
                imported += len(_insert_runs(conn, self.target.engine, rows[start:start + IMPORT_CHUNK]))
        return imported, len(rows) - imported


def _insert_runs(conn: Connection, engine: str, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert runs (skipping ``run_uid``s already present) and their metric rows, in the caller's
    transaction. Returns run_uid -> id of the inserted ones."""
    from gate.registry.schema import metrics, runs

    seen: set[str] = set()
    values = []
    for row in rows:
        if row["run_uid"] not in seen:  # a duplicate inside one batch counts as skipped
            seen.add(row["run_uid"])
            values.append({c: row.get(c) for c in RUN_COLUMNS})
    if not values:
        return {}
    statement = insert_new(engine, runs, "run_uid").returning(runs.c.id, runs.c.run_uid)
    ids = {uid: int(run_id) for run_id, uid in conn.execute(statement, values)}
    metric_rows: list[dict[str, Any]] = []
    for value in values:
        run_id = ids.get(value["run_uid"])
        if run_id is None:
            continue
        metric_rows.extend({"run_id": run_id, **metric_row(c)} for c in _metric_criteria(str(value["result_json"])))
    if metric_rows:
        conn.execute(metrics.insert(), metric_rows)
    return ids


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(row: RowMapping) -> RunRecord:
    return RunRecord(**{k: row[k] for k in ("id", *RUN_COLUMNS)})


def _metric_criteria(result_json: str) -> list[Criterion]:
    from gate.result_v1 import metric_criteria

    return metric_criteria(json.loads(result_json))


def metric_row(c: Criterion) -> dict[str, Any]:
    """The ``metrics`` table row of one task-metric criterion (column names as schema 1 named them)."""
    return {"task": c.task, "metric": c.metric, "baseline": c.baseline, "quantized": c.candidate,
            "difference": c.change, "ci_low": c.ci_low, "ci_high": c.ci_high,
            "tolerance": c.limit.value if c.limit else None,
            "tolerance_form": c.limit.form.value if c.limit else None,
            "outcome": c.outcome.value if c.outcome else None, "n": c.n}


def run_row(result: GateResult, *, git_commit: str | None = None, run_uid: str | None = None) -> dict[str, Any]:
    """The ``runs`` row of a result: the configuration log, from the spec reference and the artifact."""
    a = result.artifact
    cal = a.calibration if a else None
    duration = None
    try:
        start = dt.datetime.fromisoformat(result.started_at.replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(result.finished_at.replace("Z", "+00:00"))
        duration = (end - start).total_seconds()
    except ValueError:
        pass
    spec = result.spec
    return {
        "run_uid": run_uid or uuid.uuid4().hex,
        "recorded_at": now(),
        "model": spec.name or spec.path,
        "spec_path": spec.path,
        "spec_sha256": spec.sha256,
        "git_commit": git_commit,
        "owner": spec.owner,
        "tier": spec.tier,
        "traffic_share": spec.traffic_share,
        "baseline_identity": (a.baseline_identity if a else None) or spec.baseline,
        "method": spec.method or (a.method if a else None),
        "bits": spec.bits or (a.bits if a else None),
        "group_size": spec.group_size if spec.group_size is not None else (a.group_size if a else None),
        "format": spec.format or (a.format if a else None),
        "calibration_source": spec.calibration_source or (cal.source if cal else None),
        "calibration_sha256": (cal.sha256 if cal else None) or spec.calibration_sha256,
        "calibration_samples": (cal.samples if cal else None) or spec.calibration_samples,
        "calibration_max_seq_len": spec.calibration_max_seq_len or (cal.max_seq_len if cal else None),
        "verdict": result.verdict.decision.value,
        "artifact_sha256": a.sha256 if a else None,
        "artifact_path": a.path if a else None,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": duration,
        "runtime_json": json.dumps(result.runtime.flat(), sort_keys=True),
        "result_json": result.model_dump_json(),
    }
