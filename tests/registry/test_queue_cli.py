"""An unreachable registry: the run's record is queued locally and `gate registry sync` uploads it;
`gate registry list` and `gate stats` fit the width without cutting values and print once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.registry import Registry
from gate.registry.queue import enqueue, pending, sync
from gate.registry.recording import record_or_queue
from gate.registry.store import run_row
from tests.registry import pg
from tests.registry.factory import make_result


def test_unreachable_registry_queues_the_record_and_sync_uploads_it_once(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = pg.free_port()
    down = f"postgresql://gate:{pg.PASSWORD}@127.0.0.1:{port}/reg"
    queue = tmp_path / "queue.jsonl"
    rows = [run_row(make_result("alpha")), run_row(make_result("beta"))]
    said: list[str] = []
    stages = [record_or_queue(row, down, queue, say=said.append) for row in rows]
    assert [s.status for s in stages] == ["failed", "failed"]
    assert stages[0].message == (
        f"postgresql://gate:***@127.0.0.1:{port}/reg: registry database is unreachable: connection failed: "
        f"connection to server at \"127.0.0.1\", port {port} failed: Connection refused; the verdict stands and the "
        f"record was queued to {queue}: run `gate registry sync` (same --registry / GATE_REGISTRY_URL) once the "
        "registry is back")
    assert pg.PASSWORD not in queue.read_text()  # rows hold results, not the URL
    assert pending(queue) == 2 and said == []

    # The registry is back: sync uploads both; a second sync has nothing to do.
    assert main(["registry", "sync", "--queue", str(queue), "--registry", pg_url]) == 0
    shown = pg_url.replace(pg.PASSWORD, "***")
    assert capsys.readouterr().out == f"synced 2 queued runs to {shown}: 2 recorded, 0 already present\n"
    assert pending(queue) == 0
    assert main(["registry", "sync", "--queue", str(queue), "--registry", pg_url]) == 0
    assert capsys.readouterr().out == f"nothing to sync: {queue} holds no queued runs\n"
    assert sorted(r.run_uid for r in Registry(pg_url).list_runs()) == sorted(r["run_uid"] for r in rows)


def test_sync_interrupted_after_commit_is_safe_to_repeat(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    queue = tmp_path / "q.jsonl"
    row = run_row(make_result("alpha"))
    registry.record_row(row)  # as if a sync committed and died before emptying the queue
    enqueue(queue, row)
    enqueue(queue, run_row(make_result("beta")))
    assert sync(queue, registry) == (1, 1)
    assert registry.count() == 2


def test_sync_keeps_the_queue_when_the_registry_is_still_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queue = tmp_path / "q.jsonl"
    enqueue(queue, run_row(make_result("alpha")))
    port = pg.free_port()
    assert main(["registry", "sync", "--queue", str(queue), "--registry",
                 f"postgresql://gate:pw@127.0.0.1:{port}/reg"]) == 2
    assert "registry database is unreachable" in capsys.readouterr().err
    assert pending(queue) == 1


def test_list_fits_the_width_without_cutting_timestamps_or_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.db"
    registry = Registry(db)
    registry.record(make_result("support-assistant-long-model-name"))
    recorded = registry.list_runs()[0].recorded_at[:19].replace("T", " ")
    for columns in ("80", "100", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        assert main(["registry", "list", "--registry", str(db)]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert max(len(line) for line in lines) == int(columns) if columns != "200" else 162
        assert recorded in out and "…" not in out
    monkeypatch.delenv("COLUMNS")
    assert main(["registry", "list", "--registry", str(db)]) == 0  # not a TTY: a CI log's width, nothing wraps
    lines = capsys.readouterr().out.splitlines()
    assert f"│  1 │ {recorded} │ support-assistant-long-model-name │ awq    │    4 │ pass    │ qg_reasoning/acc +0.4" in \
        lines[4]
    assert "│ qg_wikitext_local/word_perplexity +0.05" in lines[5]


def test_stats_prints_its_report_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no models/ here: shares come from the registry
    db = tmp_path / "r.db"
    Registry(db).record(make_result("chat"))
    assert main(["stats", "--registry", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.count("Validated quantized models cover") == 1
    assert out.count("Coverage (ranked by volume)") == 1
    assert "Validated quantized models cover 30.0% of inference volume (100.0% of the volume declared by 1 specs)." \
        in out


def test_list_json_on_postgres(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    Registry(pg_url).record(make_result("alpha"))
    assert main(["registry", "list", "--format", "json", "--registry", pg_url]) == 0
    assert [(r["id"], r["model"]) for r in json.loads(capsys.readouterr().out)] == [(1, "alpha")]
