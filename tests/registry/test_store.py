from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.registry import Registry, RegistryError, record_run
from gate.registry.diff import diff_runs
from gate.registry.exchange import export_csv, export_jsonl, read_jsonl
from gate.result import Decision
from tests.registry.factory import RUNTIME, make_result


def test_record_and_read_back_configuration_log(registry_url: str) -> None:
    run_id = record_run(make_result(), db_path=registry_url, git_commit="1" * 40)
    registry = Registry(registry_url)
    record = registry.get(run_id)
    assert (record.model, record.verdict, record.method, record.bits, record.group_size, record.format) == (
        "support-assistant", "pass", "awq", 4, 128, "awq-gemm")
    assert record.baseline_identity == "org/model@" + "0" * 40
    assert (record.calibration_source, record.calibration_samples, record.calibration_max_seq_len) == (
        "data/calibration/support.jsonl", 256, 512)
    assert record.calibration_sha256 == "cd" * 32
    assert record.git_commit == "1" * 40
    assert record.artifact_sha256 == "ef" * 32
    assert record.duration_s == 300.0
    assert record.runtime == RUNTIME
    assert [c.metric for c in record.metric_criteria] == ["acc", "word_perplexity"]
    assert record.gate_result.criteria == make_result().criteria
    assert registry.incomplete_runs() == 0
    if registry.path is not None:
        with sqlite3.connect(registry.path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0] == 2


def test_list_filters_newest_first(registry_url: str) -> None:
    registry = Registry(registry_url)
    a = registry.record(make_result("alpha"))
    b = registry.record(make_result("beta", Decision.failed))
    c = registry.record(make_result("alpha", Decision.failed))
    assert [r.id for r in registry.list_runs()] == [c, b, a]
    assert [r.id for r in registry.list_runs(model="alpha")] == [c, a]
    assert [r.id for r in registry.list_runs(verdict="fail")] == [c, b]
    assert [r.id for r in registry.list_runs(since="2999-01-01")] == []
    assert [r.id for r in registry.list_runs(limit=1)] == [c]


def test_missing_run_and_missing_database(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    registry.record(make_result())
    with pytest.raises(InputError) as exc:
        registry.get(99)
    assert str(exc.value) == "no run with id 99\n  Hint: `gate registry list` shows the ids"
    with pytest.raises(RegistryError) as exc2:
        Registry(tmp_path / "nope.db").list_runs()
    assert str(exc2.value) == (
        f"{tmp_path / 'nope.db'}: registry database not found\n  Hint: run `gate run` first, or pass --registry PATH"
    )


def test_corrupt_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    db.write_bytes(b"this is not a database at all" * 100)
    before = db.read_bytes()
    with pytest.raises(RegistryError) as exc:
        Registry(db).record(make_result())
    assert str(exc.value) == (
        f"{db}: registry database is unusable: file is not a database\n"
        "  Hint: restore it from a backup or `gate registry export` copy; the gate never overwrites it"
    )
    assert db.read_bytes() == before


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    Registry(db).record(make_result())
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = db.read_bytes()
    with pytest.raises(RegistryError) as exc:
        Registry(db).record(make_result())
    assert str(exc.value) == (
        f"{db}: registry schema version 99 is newer than this gate supports (3)\n"
        "  Hint: upgrade quant-gate; the database was left untouched"
    )
    assert db.read_bytes() == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(RegistryError) as exc:
        Registry(db).record(make_result())
    assert str(exc.value) == (
        f"{db}: file is a SQLite database but not a quant-gate registry\n"
        "  Hint: pass a different --registry path; the file was left untouched"
    )


KILL_LOOP = """
import sys
from gate.registry import Registry
from tests.registry.factory import make_result
registry = Registry(sys.argv[1])
registry.migrate()
print("ready", flush=True)
i = 0
while True:
    registry.record(make_result(f"killed-{i}"))
    i += 1
"""

WRITER = """
import sys
from gate.registry import Registry
from tests.registry.factory import make_result
registry = Registry(sys.argv[1])
for i in range(int(sys.argv[3])):
    registry.record(make_result(f"model-{sys.argv[2]}-{i}"))
"""


def test_concurrent_writers_lose_nothing_and_a_killed_writer_leaves_no_half_record(registry_url: str) -> None:
    """4 writer processes x 15 runs while a fifth writes in a loop and is SIGKILLed mid-run."""
    root = Path(__file__).resolve().parents[2]
    Registry(registry_url).migrate()
    victim = subprocess.Popen([sys.executable, "-c", KILL_LOOP, registry_url], stdout=subprocess.PIPE, cwd=root,
                              text=True, start_new_session=True)
    writers = []
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "ready"
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, registry_url, str(w), "15"], cwd=root)
                   for w in range(4)]
        registry = Registry(registry_url)
        deadline = time.monotonic() + 90
        while registry.count() < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # mid-run: it writes continuously
        victim.wait(30)
        assert [w.wait(120) for w in writers] == [0, 0, 0, 0]
    finally:
        for proc in (victim, *writers):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    runs = registry.list_runs(limit=None)
    models = [r.model for r in runs]
    assert sorted(m for m in models if m.startswith("model-")) == sorted(
        f"model-{w}-{i}" for w in range(4) for i in range(15))
    killed = sorted(int(m.split("-")[1]) for m in models if m.startswith("killed-"))
    assert killed == list(range(len(killed)))  # every run it committed is whole and none is missing between
    assert len(models) == len(set(models)) == 60 + len(killed)
    assert registry.incomplete_runs() == 0
    assert registry.integrity() == "ok"
    registry.record(make_result("after-kill"))
    assert registry.count() == len(models) + 1


def test_export_import_round_trip(tmp_path: Path, registry_url: str) -> None:
    source = Registry(registry_url)
    source.record(make_result("alpha"))
    source.record(make_result("beta", Decision.failed))
    export = tmp_path / "runs.jsonl"
    export.write_text(export_jsonl(source.list_runs(limit=None)[::-1]))
    target = Registry(tmp_path / "b.db")
    assert target.import_rows(read_jsonl(export)) == (2, 0)
    assert target.import_rows(read_jsonl(export)) == (0, 2)
    assert [(r.model, r.verdict) for r in target.list_runs()] == [("beta", "fail"), ("alpha", "pass")]
    csv_text = export_csv(target.list_runs(limit=None))
    assert csv_text.splitlines()[0].startswith("id,run_uid,recorded_at,model,spec_path,spec_sha256,git_commit")
    assert "result_json" not in csv_text.splitlines()[0]


def test_import_rejects_malformed_line_and_imports_nothing(tmp_path: Path) -> None:
    source = Registry(tmp_path / "a.db")
    source.record(make_result("alpha"))
    export = tmp_path / "runs.jsonl"
    export.write_text(export_jsonl(source.list_runs()) + "{not json\n")
    with pytest.raises(InputError) as exc:
        read_jsonl(export)
    assert str(exc.value) == (
        f"{export}:2: invalid JSON: Expecting property name enclosed in double quotes\n"
        "  Hint: export again; the file was not imported"
    )


def test_diff_names_config_runtime_and_metric_changes(registry_url: str) -> None:
    registry = Registry(registry_url)
    a = registry.record(make_result())
    b = registry.record(make_result(runtime={**RUNTIME, "torch": "2.14.1"}, drop=0.9, bits=8))
    changes = {(c.section, c.key): (c.before, c.after) for c in diff_runs(registry.get(a), registry.get(b))}
    assert changes[("config", "bits")] == (4, 8)
    assert changes[("runtime", "torch")] == ("2.13.0", "2.14.1")
    assert changes[("metric", "qg_reasoning/acc")] == (
        "0.71 -> 0.706, degradation 0.4 [-0.1, 0.9] pass",
        "0.71 -> 0.701, degradation 0.9 [0.4, 1.4] pass",
    )
    assert ("config", "model") not in changes


def test_registry_cli_list_incident_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gate.cli import main

    db = tmp_path / "r.db"
    record_run(make_result("alpha"), db_path=db)
    assert main(["registry", "list", "--format", "json", "--registry", str(db)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["model"], r["verdict"]) for r in listed] == [(1, "alpha", "pass")]
    assert main(["registry", "incident", "alpha", "--note", "format errors in prod", "--registry", str(db)]) == 0
    assert capsys.readouterr().out == "recorded incident 1 for alpha\n"
    assert main(["registry", "incident", "alpha", "--note", "  ", "--registry", str(db)]) == 2
    assert "incident note is empty" in capsys.readouterr().err
    assert main(["registry", "show", "7", "--registry", str(db)]) == 2
    out = tmp_path / "x.jsonl"
    assert main(["registry", "export", "--out", str(out), "--registry", str(db)]) == 0
    assert len(out.read_text().splitlines()) == 1
