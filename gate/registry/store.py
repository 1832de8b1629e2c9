"""The run registry: SQLite (stdlib), WAL mode, versioned migrations.

Every ``gate run`` is one row in ``runs`` (plus its per-metric rows) written in one transaction,
so a process killed mid-write leaves either the whole record or nothing. A database that is not
SQLite, is corrupt, or has a newer schema than this gate knows is refused with a clear error and
never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InputError, SourceLocation
from gate.registry.migrations import MIGRATIONS, SCHEMA_VERSION
from gate.result import GateResult

DEFAULT_DB = Path(".gate") / "registry.db"
BUSY_TIMEOUT_MS = 60_000

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


class RegistryError(InputError):
    """The registry database cannot be used as it is (exit 2); it is never overwritten."""


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
        loaded: dict[str, Any] = json.loads(self.result_json)
        return loaded


@dataclass(frozen=True)
class Incident:
    id: int
    model: str
    recorded_at: str
    note: str
    run_id: int | None


class Registry:
    """A handle on one registry database. Cheap to create; opens a connection per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = False

    # -- connection and schema -------------------------------------------------------------
    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        if not write and not self.path.exists():
            raise RegistryError(
                "registry database not found",
                hint="run `gate run` first, or pass --registry PATH",
                location=SourceLocation(str(self.path)),
            )
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self._checked:
                self._prepare(conn, write=write)
                self._checked = True
            yield conn
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None
        finally:
            conn.close()

    def _unusable(self, exc: sqlite3.Error) -> RegistryError:
        return RegistryError(
            f"registry database is unusable: {exc}",
            hint="restore it from a backup or `gate registry export` copy; the gate never overwrites it",
            location=SourceLocation(str(self.path)),
        )

    def _prepare(self, conn: sqlite3.Connection, *, write: bool) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"registry schema version {version} is newer than this gate supports ({SCHEMA_VERSION})",
                hint="upgrade quant-gate; the database was left untouched",
                location=SourceLocation(str(self.path)),
            )
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise RegistryError(
                    "file is a SQLite database but not a quant-gate registry",
                    hint="pass a different --registry path; the file was left untouched",
                    location=SourceLocation(str(self.path)),
                )
        if version < SCHEMA_VERSION:
            if not write:
                raise RegistryError(
                    f"registry schema version {version} is older than this gate's ({SCHEMA_VERSION})",
                    hint="run any writing command (e.g. `gate registry migrate`) to upgrade it",
                    location=SourceLocation(str(self.path)),
                )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read under the write lock: another process may have migrated meanwhile.
                current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                for target, script in MIGRATIONS:
                    if target > current:
                        for statement in script:
                            conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def migrate(self) -> int:
        """Create or upgrade the schema; return the schema version."""
        with self._connect(write=True) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing ---------------------------------------------------------------------------
    def record(self, result: GateResult, *, git_commit: str | None = None, run_uid: str | None = None) -> int:
        """Store one run and its metrics atomically; return the run id."""
        row = run_row(result, git_commit=git_commit, run_uid=run_uid)
        metrics = [
            (m.task, m.metric, m.baseline, m.quantized, m.difference, m.ci_low, m.ci_high, m.tolerance,
             m.tolerance_form, m.outcome.value, m.n)
            for m in result.metrics
        ]
        return self._insert(row, metrics)

    def _insert(self, row: dict[str, Any], metrics: Sequence[tuple[Any, ...]]) -> int:
        with self._connect(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)})",
                    [row[c] for c in RUN_COLUMNS],
                )
                run_id = int(cursor.lastrowid or 0)
                conn.executemany(
                    "INSERT INTO metrics (run_id, task, metric, baseline, quantized, difference, ci_low, ci_high,"
                    " tolerance, tolerance_form, outcome, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *m) for m in metrics],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return run_id

    def add_incident(self, model: str, note: str, *, run_id: int | None = None) -> int:
        if not note.strip():
            raise InputError("incident note is empty", hint="describe what reached production, e.g. --note '...'")
        with self._connect(write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO incidents (model, recorded_at, note, run_id) VALUES (?, ?, ?, ?)",
                (model, _now(), note.strip(), run_id),
            )
            return int(cursor.lastrowid or 0)

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
        clauses: list[str] = []
        params: list[Any] = []
        if model:
            clauses.append("model = ?")
            params.append(model)
        if verdict:
            clauses.append("verdict = ?")
            params.append(verdict)
        if since:
            clauses.append("recorded_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = " LIMIT ?" if limit is not None else ""
        if limit is not None:
            params.append(limit)
        with self._connect(write=False) as conn:
            rows = conn.execute(
                f"SELECT * FROM runs {where} ORDER BY recorded_at DESC, id DESC{tail}", params
            ).fetchall()
        return [_record(r) for r in rows]

    def get(self, run_id: int) -> RunRecord:
        with self._connect(write=False) as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"no run with id {run_id}", hint="`gate registry list` shows the ids")
        return _record(row)

    def latest_per_model(self) -> list[RunRecord]:
        """The newest run of every model."""
        with self._connect(write=False) as conn:
            rows = conn.execute(
                "SELECT r.* FROM runs r JOIN (SELECT model, max(id) AS id FROM runs GROUP BY model) l ON r.id = l.id"
                " ORDER BY r.model"
            ).fetchall()
        return [_record(r) for r in rows]

    def all_runs_ascending(self) -> list[RunRecord]:
        with self._connect(write=False) as conn:
            rows = conn.execute("SELECT * FROM runs ORDER BY recorded_at, id").fetchall()
        return [_record(r) for r in rows]

    def incidents(self, model: str | None = None) -> list[Incident]:
        with self._connect(write=False) as conn:
            if model:
                rows = conn.execute("SELECT * FROM incidents WHERE model = ? ORDER BY id", (model,)).fetchall()
            else:
                rows = conn.execute("SELECT * FROM incidents ORDER BY id").fetchall()
        return [Incident(r["id"], r["model"], r["recorded_at"], r["note"], r["run_id"]) for r in rows]

    def count(self) -> int:
        with self._connect(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])

    def integrity(self) -> str:
        with self._connect(write=False) as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- import ----------------------------------------------------------------------------
    def import_rows(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Insert exported rows; rows whose ``run_uid`` already exists are skipped.
        Returns (imported, skipped)."""
        imported = skipped = 0
        with self._connect(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    exists = conn.execute("SELECT 1 FROM runs WHERE run_uid = ?", (row["run_uid"],)).fetchone()
                    if exists:
                        skipped += 1
                        continue
                    cursor = conn.execute(
                        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)})",
                        [row.get(c) for c in RUN_COLUMNS],
                    )
                    run_id = int(cursor.lastrowid or 0)
                    result = json.loads(row["result_json"])
                    conn.executemany(
                        "INSERT INTO metrics (run_id, task, metric, baseline, quantized, difference, ci_low, ci_high,"
                        " tolerance, tolerance_form, outcome, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (run_id, m["task"], m["metric"], m["baseline"], m["quantized"], m["difference"],
                             m["ci_low"], m["ci_high"], m["tolerance"], m["tolerance_form"], m["outcome"], m["n"])
                            for m in result.get("metrics", [])
                        ],
                    )
                    imported += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return imported, skipped


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(**{k: row[k] for k in ("id", *RUN_COLUMNS)})


def _first(mapping: dict[str, Any] | None, *keys: str) -> Any:
    """The first present key among ``keys`` in ``mapping`` (dotted keys descend into dicts)."""
    if not mapping:
        return None
    for key in keys:
        current: Any = mapping
        for part in key.split("."):
            if not isinstance(current, dict) or part not in current:
                current = None
                break
            current = current[part]
        if current is not None:
            return current
    return None


def run_row(result: GateResult, *, git_commit: str | None = None, run_uid: str | None = None) -> dict[str, Any]:
    """The ``runs`` row of a result: configuration log fields pulled from its sections."""
    artifact = result.artifact or {}
    calibration = _first(artifact, "calibration") or {}
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
        "recorded_at": _now(),
        "model": spec.name or spec.path,
        "spec_path": spec.path,
        "spec_sha256": spec.sha256,
        "git_commit": git_commit,
        "owner": spec.owner,
        "tier": spec.tier,
        "traffic_share": spec.traffic_share,
        "baseline_identity": _first(artifact, "baseline_identity", "baseline.identity", "provenance.baseline_identity")
        or spec.baseline,
        "method": spec.method or _first(artifact, "method"),
        "bits": spec.bits or _first(artifact, "bits"),
        "group_size": spec.group_size if spec.group_size is not None else _first(artifact, "group_size"),
        "format": spec.format or _first(artifact, "format"),
        "calibration_source": spec.calibration_source or _first(calibration, "source"),
        "calibration_sha256": _first(calibration, "sha256") or spec.calibration_sha256,
        "calibration_samples": _first(calibration, "samples", "count") or spec.calibration_samples,
        "calibration_max_seq_len": spec.calibration_max_seq_len or _first(calibration, "max_seq_len"),
        "verdict": result.verdict.decision.value,
        "artifact_sha256": _first(artifact, "artifact_sha256"),
        "artifact_path": str(artifact["path"]) if artifact.get("path") else None,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": duration,
        "runtime_json": json.dumps(result.runtime, sort_keys=True),
        "result_json": result.model_dump_json(),
    }
