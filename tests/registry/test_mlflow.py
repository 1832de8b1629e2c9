"""MLflow export against a real `mlflow server`: parameters, metrics with intervals, verdict, the
JSON result and report as artifacts; idempotent back-fill; a tracking outage never fails a run."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from gate.cli import main
from gate.registry import Registry
from gate.registry.mlflow_export import UID_TAG, log_to_mlflow
from gate.registry.store import run_row
from gate.result import Decision
from tests.registry import pg
from tests.registry.factory import make_result


def _runs(uri: str, experiment: str) -> list:  # type: ignore[type-arg]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id], order_by=["attributes.start_time"]))


def test_a_run_is_logged_with_params_metrics_verdict_and_artifacts(mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    experiment = f"qg-{uuid.uuid4().hex[:8]}"
    row = run_row(make_result("chat", Decision.failed), git_commit="1" * 40)
    said: list[str] = []
    stage = log_to_mlflow(row, mlflow_server, experiment=experiment, say=said.append)
    assert stage.status == "ok", stage.message
    (run,) = _runs(mlflow_server, experiment)
    assert stage.message == f"MLflow run {run.info.run_id} in {mlflow_server}, experiment {experiment!r}"
    assert said == [f"mlflow: logged run {run.info.run_id}"]
    params = run.data.params
    assert (params["method"], params["bits"], params["group_size"], params["format"]) == ("awq", "4", "128", "awq-gemm")
    assert params["calibration_sha256"] == "cd" * 32 and params["git_commit"] == "1" * 40
    assert (params["runtime.torch"], params["runtime.transformers"]) == ("2.13.0", "5.23.0")
    metrics = run.data.metrics
    assert {k: round(v, 6) for k, v in metrics.items() if k.startswith("qg_reasoning/acc/")} == {
        "qg_reasoning/acc/baseline": 0.71, "qg_reasoning/acc/quantized": 0.706, "qg_reasoning/acc/difference": 0.4,
        "qg_reasoning/acc/ci_low": -0.1, "qg_reasoning/acc/ci_high": 0.9, "qg_reasoning/acc/tolerance": 1.0,
        "qg_reasoning/acc/n": 400.0}
    tags = run.data.tags
    assert (tags["quant_gate.verdict"], tags["quant_gate.model"], tags[UID_TAG]) == ("fail", "chat", row["run_uid"])
    assert run.info.status == "FAILED" and run.info.run_name == "chat"
    client = MlflowClient(mlflow_server)
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["report.md", "result.json"]
    local = Path(client.download_artifacts(run.info.run_id, "result.json"))
    assert json.loads(local.read_text())["verdict"]["decision"] == "fail"
    report = Path(client.download_artifacts(run.info.run_id, "report.md")).read_text()
    assert "chat" in report


def test_export_back_fills_history_once(mlflow_server: str, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(pg_url)
    for name in ("alpha", "beta", "gamma"):
        registry.record(make_result(name))
    experiment = f"qg-{uuid.uuid4().hex[:8]}"
    args = ["registry", "export", "--format", "mlflow", "--mlflow-uri", mlflow_server, "--mlflow-experiment",
            experiment, "--registry", pg_url]
    assert main(args) == 0
    assert capsys.readouterr().out == (f"exported 3 runs to MLflow at {mlflow_server} (experiment {experiment!r}), "
                                       "skipped 0 already there\n")
    registry.record(make_result("delta"))
    assert main(args) == 0
    assert capsys.readouterr().out == (f"exported 1 runs to MLflow at {mlflow_server} (experiment {experiment!r}), "
                                       "skipped 3 already there\n")
    assert sorted(r.info.run_name for r in _runs(mlflow_server, experiment)) == ["alpha", "beta", "delta", "gamma"]


def test_tracking_outage_is_a_warning_not_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = pg.free_port()  # nothing listens there
    stage = log_to_mlflow(run_row(make_result()), f"http://user:hunter2@127.0.0.1:{port}", say=lambda _m: None)
    assert stage.status == "failed"
    assert stage.message is not None
    assert stage.message == (f"MLflow tracking server http://user:***@127.0.0.1:{port} failed: connection refused; "
                             "the run was not logged to MLflow. The verdict is unaffected: a tracking outage does not "
                             "fail the merge (back-fill with `gate registry export --format mlflow`)")
    assert "hunter2" not in stage.message
    db = tmp_path / "r.db"
    Registry(db).record(make_result())
    assert main(["registry", "export", "--format", "mlflow", "--mlflow-uri", f"http://127.0.0.1:{port}",
                 "--registry", str(db)]) == 2
    assert capsys.readouterr().err.endswith(
        f"MLflow tracking server http://127.0.0.1:{port} failed: connection refused\n"
        "  Hint: check the URI and that the server is up; runs already logged are skipped when you retry\n")


def test_export_to_mlflow_needs_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "r.db"
    Registry(db).record(make_result())
    assert main(["registry", "export", "--format", "mlflow", "--registry", str(db)]) == 2
    assert "--format mlflow needs a tracking server\n  Hint: pass --mlflow-uri http://mlflow.internal:5000 or set " \
           "MLFLOW_TRACKING_URI" in capsys.readouterr().err
