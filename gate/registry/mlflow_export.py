"""Runs logged to an MLflow tracking server, where platform teams already look.

One gate run = one MLflow run in the experiment (default ``quant-gate``), named after the model:

- parameters: method, bits, group size, format, calibration source / hash / samples / length,
  baseline identity, spec hash, git commit, and every runtime version (``runtime.torch`` …);
- metrics: per criterion of the result (``task/metric``, ``fidelity/kl``, ``memory.peak_gb``, ...)
  its baseline, candidate, change, confidence interval (``ci_low`` / ``ci_high``) and limit — task
  metrics under schema 1's names (``quantized``, ``difference``, ``tolerance``) — plus the fidelity
  measurement's size (documents, tokens, top-k, tail mass);
- tags: verdict, model, owner, tier, ``quant_gate.run_uid`` (which makes back-fill idempotent);
- artifacts: ``result.json`` (the full ``GateResult``) and ``report.md`` (the PR comment).

The tracking server is never on the merge's critical path: a server that is down, slow or refuses
us is reported as a warning and the verdict stands (``gate registry export --format mlflow``
back-fills later). The client's retries are capped so an outage costs seconds, not minutes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gate.result import Criterion, CriterionKind, StageRecord, StageStatus

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "quant-gate"
UID_TAG = "quant_gate.run_uid"
PARAM_FIELDS = ("method", "bits", "group_size", "format", "calibration_source", "calibration_sha256",
                "calibration_samples", "calibration_max_seq_len", "baseline_identity", "spec_path", "spec_sha256",
                "git_commit", "artifact_sha256")
CLIENT_DEFAULTS = {
    # mlflow's own defaults retry 7 times with exponential backoff (minutes on a dead server).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    # The client prints "View run ... at" to stdout, which holds the gate's report.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class MlflowUnavailable(Exception):
    """The tracking server could not be used; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class LoggedRun:
    run_uid: str
    mlflow_run_id: str


def shown_uri(uri: str) -> str:
    """The URI with any password masked."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def experiment_name(value: str | None) -> str:
    return value or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


def _client(uri: str) -> Any:
    for key, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowUnavailable(f"the mlflow client is not installed ({exc.name}): pip install 'quant-gate[mlflow]'") \
            from None
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # another runner created it meanwhile
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def run_contents(row: dict[str, Any]) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(params, metrics, tags) of one registry row."""
    from gate.result_v1 import read_result_json

    result = read_result_json(row["result_json"])
    params = {name: str(row[name]) for name in PARAM_FIELDS if row.get(name) is not None}
    for key, value in sorted(json.loads(row["runtime_json"]).items()):
        params[f"runtime.{key}"] = str(value)
    metrics: dict[str, float] = {}
    for c in result.criteria:
        for field, value in criterion_numbers(c).items():
            number = _finite(value)
            if number is not None:
                metrics[f"{c.name.replace('@', '/')}/{field}"] = number  # MLflow names allow no "@"
    if result.fidelity is not None:
        for field in ("documents", "tokens", "top_k", "tail_mass_mean"):
            metrics[f"fidelity/{field}"] = float(getattr(result.fidelity, field))
    if row.get("duration_s") is not None:
        metrics["gate/duration_s"] = float(row["duration_s"])
    tags = {UID_TAG: row["run_uid"], "quant_gate.verdict": row["verdict"], "quant_gate.model": row["model"],
            "mlflow.runName": row["model"]}
    for name in ("owner", "tier"):
        if row.get(name):
            tags[f"quant_gate.{name}"] = str(row[name])
    return params, metrics, tags


def criterion_numbers(c: Criterion) -> dict[str, float | int | None]:
    """A criterion's numbers under MLflow metric names; task metrics keep schema 1's names
    (``quantized``, ``difference``, ``tolerance``) so dashboards built on them keep working."""
    limit = c.limit.value if c.limit else None
    if c.kind is CriterionKind.metric:
        return {"baseline": c.baseline, "quantized": c.candidate, "difference": c.change, "ci_low": c.ci_low,
                "ci_high": c.ci_high, "tolerance": limit, "n": c.n}
    return {"baseline": c.baseline, "candidate": c.candidate, "change": c.change, "ci_low": c.ci_low,
            "ci_high": c.ci_high, "limit": limit, "n": c.n}


def _millis(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _report(result_json: str) -> str | None:
    from pydantic import ValidationError

    from gate.report import ReportContext, render
    from gate.report.interface import ReportFormat
    from gate.result_v1 import read_result_json

    try:
        result = read_result_json(result_json)
    except (ValidationError, ValueError):
        return None  # a record this gate cannot read: result.json still has everything
    return render([result], ReportFormat.markdown, ReportContext(color=False))


def _log(client: Any, experiment_id: str, row: dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    params, metrics, tags = run_contents(row)
    start = _millis(row.get("started_at")) or int(time.time() * 1000)
    run = client.create_run(experiment_id, start_time=start, tags=tags)
    run_id = str(run.info.run_id)
    param_items = [Param(k, v[:6000]) for k, v in params.items()]
    metric_items = [Metric(k, v, start, 0) for k, v in metrics.items()]
    for i in range(0, max(len(param_items), len(metric_items), 1), 100):
        client.log_batch(run_id, metrics=metric_items[i:i + 100], params=param_items[i:i + 100],
                         tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
    client.log_text(run_id, json.dumps(json.loads(row["result_json"]), indent=2) + "\n", "result.json")
    report = _report(row["result_json"])
    if report is not None:
        client.log_text(run_id, report, "report.md")
    status = "FINISHED" if row["verdict"] == "pass" else "FAILED"
    client.set_terminated(run_id, status=status, end_time=_millis(row.get("finished_at")))
    return run_id


def _reason(exc: BaseException, uri: str) -> str:
    """One short line: the OS's words for a connection failure, else the client's, password masked."""
    import re

    text = " ".join(str(exc).split())
    password = urlsplit(uri).password
    if password:
        text = text.replace(password, "***")
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".").lower()
    if "timed out" in text.lower():
        return "timed out"
    return text if len(text) <= 300 else text[:297] + "..."


def log_rows(rows: Iterable[dict[str, Any]], uri: str, *, experiment: str | None = None,
             skip_logged: bool = True) -> tuple[list[LoggedRun], int]:
    """Log registry rows as MLflow runs; rows whose ``run_uid`` is already in the experiment are
    skipped. Returns (logged, skipped); raises ``MlflowUnavailable`` on any tracking failure."""
    client = _client(uri)
    try:
        experiment_id = _experiment_id(client, experiment_name(experiment))
        logged_uids = _logged_uids(client, experiment_id) if skip_logged else set()
        logged: list[LoggedRun] = []
        skipped = 0
        for row in rows:
            if row["run_uid"] in logged_uids:
                skipped += 1
                continue
            logged.append(LoggedRun(row["run_uid"], _log(client, experiment_id, row)))
            logged_uids.add(row["run_uid"])
    except MlflowUnavailable:
        raise
    except Exception as exc:  # the client raises MlflowException, requests' errors and more
        raise MlflowUnavailable(f"MLflow tracking server {shown_uri(uri)} failed: {_reason(exc, uri)}") from None
    return logged, skipped


def _logged_uids(client: Any, experiment_id: str) -> set[str]:
    uids: set[str] = set()
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        uids.update(str(r.data.tags[UID_TAG]) for r in page if UID_TAG in r.data.tags)
        token = page.token
        if not token:
            return uids


def log_to_mlflow(row: dict[str, Any], uri: str, *, experiment: str | None = None,
                  say: Callable[[str], None]) -> StageRecord:
    """``gate run``'s MLflow step: never raises; an outage is a failed stage with the reason."""
    start = time.perf_counter()
    try:
        logged, _ = log_rows([row], uri, experiment=experiment, skip_logged=False)
    except MlflowUnavailable as exc:
        return StageRecord(stage="mlflow", status=StageStatus.failed, seconds=time.perf_counter() - start,
                           message=f"{exc}; the run was not logged to MLflow. The verdict is unaffected: a tracking "
                                   "outage does not fail the merge (back-fill with `gate registry export --format "
                                   "mlflow`)")
    say(f"mlflow: logged run {logged[0].mlflow_run_id}")
    return StageRecord(stage="mlflow", status=StageStatus.ok, seconds=time.perf_counter() - start,
                       message=f"MLflow run {logged[0].mlflow_run_id} in {shown_uri(uri)}, experiment "
                               f"{experiment_name(experiment)!r}")
