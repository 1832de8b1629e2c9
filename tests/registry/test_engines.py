"""Registry locations and faults: URLs, masked passwords, schema versions on both engines, an
unreachable server, rejected credentials, a missing database, a foreign database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from gate.errors import InputError
from gate.registry import Registry, RegistryError, RegistryUnavailable
from gate.registry.engine import parse_target
from gate.registry.migrations import MIGRATIONS
from gate.registry.schema import metadata
from tests.registry import pg
from tests.registry.factory import make_result


def test_paths_and_urls_select_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_target(str(tmp_path / "r.db")).path == tmp_path / "r.db"
    assert parse_target("sqlite:///rel/r.db").path == Path("rel/r.db")
    assert parse_target("sqlite:////abs/r.db").path == Path("/abs/r.db")
    target = parse_target("postgresql://gate:hunter2@db.internal:5433/registry")
    assert (target.engine, target.shown) == ("postgresql", "postgresql://gate:***@db.internal:5433/registry")
    assert "hunter2" in target.url and "hunter2" not in target.shown
    monkeypatch.setenv("GATE_REGISTRY_URL", "postgres://gate@db/reg")
    assert parse_target(None).shown == "postgresql://gate@db/reg"
    monkeypatch.delenv("GATE_REGISTRY_URL")
    assert parse_target(None).path == Path(".gate/registry.db")
    with pytest.raises(InputError) as exc:
        parse_target("mysql://gate@db/reg")
    assert str(exc.value) == ("registry URL scheme 'mysql' is not supported\n  Hint: use a SQLite path "
                              "(.gate/registry.db) or postgresql://USER:PASSWORD@HOST:5432/DATABASE")
    with pytest.raises(InputError) as exc:
        parse_target("postgresql://gate:pw@db:5432")
    assert str(exc.value) == ("registry URL postgresql+psycopg://gate:***@db:5432 names no database\n  Hint: append "
                              "the database name, e.g. postgresql://gate@db.internal:5432/quant_gate")


def test_migrations_build_the_queried_schema_on_both_engines(registry_url: str) -> None:
    registry = Registry(registry_url)
    assert registry.migrate() == MIGRATIONS[-1][0] == 3
    engine = create_engine(registry.target.url)
    try:
        found = inspect(engine)
        for table in metadata.sorted_tables:
            assert [c["name"] for c in found.get_columns(table.name)] == [c.name for c in table.columns], table.name
        assert {i["name"] for i in found.get_indexes("runs")} >= {"runs_recorded", "runs_model_recorded",
                                                                   "runs_verdict_recorded", "runs_model_history"}
    finally:
        engine.dispose()
    assert Registry(registry_url).migrate() == 3  # idempotent


def test_a_version_1_sqlite_registry_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        MIGRATIONS[0][1](conn)
        conn.exec_driver_sql("PRAGMA user_version = 1")
    engine.dispose()
    with pytest.raises(RegistryError) as exc:
        Registry(db).list_runs()
    assert str(exc.value) == (f"{db}: registry schema version 1 is older than this gate's (3)\n"
                              "  Hint: run any writing command (e.g. `gate registry migrate`) to upgrade it")
    registry = Registry(db)
    run_id = registry.record(make_result())
    assert registry.get(run_id).model == "support-assistant"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM baseline_results").fetchone()[0] == 0


def test_postgres_newer_schema_is_refused_and_left_untouched(pg_url: str, pg_cluster: pg.Cluster) -> None:
    Registry(pg_url).record(make_result())
    database = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("UPDATE quant_gate_schema SET version = 99", database)
    with pytest.raises(RegistryError) as exc:
        Registry(pg_url).record(make_result())
    shown = pg_url.replace(pg.PASSWORD, "***")
    assert str(exc.value) == (f"{shown}: registry schema version 99 is newer than this gate supports (3)\n"
                              "  Hint: upgrade quant-gate; the database was left untouched")
    assert pg_cluster.psql("SELECT count(*) FROM runs", database).strip() == "1"


def test_postgres_database_of_another_application_is_refused(pg_url: str, pg_cluster: pg.Cluster) -> None:
    database = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("CREATE TABLE runs (name text)", database)
    with pytest.raises(RegistryError) as exc:
        Registry(pg_url).record(make_result())
    assert str(exc.value) == (
        f"{pg_url.replace(pg.PASSWORD, '***')}: database has a `runs` table but no quant-gate schema version\n"
        "  Hint: point the registry URL at a database (or schema) of its own; nothing was changed")
    assert pg_cluster.psql("SELECT to_regclass('quant_gate_schema') IS NULL", database).strip() == "t"


def test_postgres_empty_database_is_not_read_as_a_registry(pg_url: str) -> None:
    with pytest.raises(RegistryError) as exc:
        Registry(pg_url).list_runs()
    assert str(exc.value) == (f"{pg_url.replace(pg.PASSWORD, '***')}: registry database has no quant-gate schema "
                              "yet\n  Hint: run `gate registry migrate` (or any `gate run`) to create it")


def test_rejected_credentials_name_the_user_and_never_the_password(pg_cluster: pg.Cluster, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    url = pg_cluster.url(database, password="wrong-password")
    with pytest.raises(RegistryUnavailable) as exc:
        Registry(url).record(make_result())
    assert str(exc.value) == (
        f"postgresql://gate:***@127.0.0.1:{pg_cluster.port}/{database}: registry database rejected the credentials "
        "of user 'gate': password authentication failed for user \"gate\"\n"
        "  Hint: check the user and password in the registry URL (the GATE_REGISTRY_URL secret)")
    assert "wrong-password" not in str(exc.value)


def test_unreachable_server_and_missing_database(pg_cluster: pg.Cluster) -> None:
    port = pg.free_port()  # nothing listens there
    with pytest.raises(RegistryUnavailable) as exc:
        Registry(f"postgresql://gate:{pg.PASSWORD}@127.0.0.1:{port}/reg").record(make_result())
    assert str(exc.value) == (
        f"postgresql://gate:***@127.0.0.1:{port}/reg: registry database is unreachable: connection failed: "
        f"connection to server at \"127.0.0.1\", port {port} failed: Connection refused\n"
        "  Hint: check that the server is up and reachable from this runner (host, port, firewall); "
        "runs recorded meanwhile are queued for `gate registry sync`")
    with pytest.raises(RegistryUnavailable) as exc:
        Registry(pg_cluster.url("no_such_db")).list_runs()
    assert str(exc.value) == (
        f"postgresql://gate:***@127.0.0.1:{pg_cluster.port}/no_such_db: registry database does not exist on the "
        "server: database \"no_such_db\" does not exist\n"
        "  Hint: create it (`createdb`, owned by the registry user) or fix the database name in the URL")


def test_two_engines_hold_the_same_records(tmp_path: Path, pg_url: str) -> None:
    """Export from SQLite, import into PostgreSQL (the migration path to a shared registry)."""
    from gate.registry.exchange import export_jsonl, read_jsonl

    local = Registry(tmp_path / "r.db")
    local.record(make_result("alpha"))
    local.record(make_result("beta"))
    path = tmp_path / "runs.jsonl"
    path.write_text(export_jsonl(local.list_runs(limit=None)[::-1]))
    shared = Registry(pg_url)
    assert shared.import_rows(read_jsonl(path)) == (2, 0)
    assert [(r.run_uid, r.model) for r in shared.list_runs()] == [(r.run_uid, r.model) for r in local.list_runs()]
    with create_engine(shared.target.url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar_one() == 4
