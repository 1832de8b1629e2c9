"""`gate run` with its registry and MLflow both down: the verdict and exit code are what they would
be, stderr says what happened (URL without its password), the record waits in the queue, and
`gate registry sync` uploads it later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.registry import Registry
from tests.evaluate.repo import make_repo, spec_text
from tests.registry import pg


def test_gate_run_reports_its_verdict_and_queues_the_record(
    tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATE_REGISTRY_QUEUE", raising=False)
    repo = tmp_path / "repo"
    # A static deny (QG403: tolerance too loose) blocks before any model is loaded: a fast real run.
    spec = make_repo(repo, tiny_llama_dir, spec_text(bits=8).replace("max_drop: 10.0", "max_drop: 40.0"))
    port, mlflow_port = pg.free_port(), pg.free_port()
    code = main(["run", str(spec), "--repo-root", str(repo), "--format", "json",
                 "--registry", f"postgresql://gate:hunter2@127.0.0.1:{port}/registry",
                 "--mlflow-uri", f"http://127.0.0.1:{mlflow_port}"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == result["exit_code"] == 1 and result["verdict"]["decision"] == "fail"  # as without a registry
    queue = repo / ".gate" / "registry-queue.jsonl"
    warnings = [line for line in captured.err.splitlines() if line.startswith("gate: warning: ")]
    assert warnings[0] == (
        f"gate: warning: registry: postgresql://gate:***@127.0.0.1:{port}/registry: registry database is "
        f"unreachable: connection failed: connection to server at \"127.0.0.1\", port {port} failed: Connection "
        f"refused; the verdict stands and the record was queued to {queue}: run `gate registry sync` (same "
        "--registry / GATE_REGISTRY_URL) once the registry is back")
    assert warnings[1] == (
        f"gate: warning: mlflow: MLflow tracking server http://127.0.0.1:{mlflow_port} failed: connection refused; "
        "the run was not logged to MLflow. The verdict is unaffected: a tracking outage does not fail the merge "
        "(back-fill with `gate registry export --format mlflow`)")
    assert "hunter2" not in captured.err + captured.out
    stages = {s["stage"]: s["status"] for s in result["stages"]}
    assert (stages["registry"], stages["mlflow"]) == ("failed", "failed")

    registry = tmp_path / "back.db"
    assert main(["registry", "sync", "--queue", str(queue), "--registry", str(registry)]) == 0
    assert capsys.readouterr().out == f"synced 1 queued runs to {registry}: 1 recorded, 0 already present\n"
    (record,) = Registry(registry).list_runs()
    assert (record.model, record.verdict, record.spec_sha256) == (result["spec"]["name"], "fail",
                                                                  result["spec"]["sha256"])
