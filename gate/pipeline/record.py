"""The last stage of ``gate run``: record the result in the registry and in MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.result import GateResult

if TYPE_CHECKING:
    from gate.pipeline.run import RunOptions
    from gate.pipeline.stages import Say


def record(result: GateResult, options: RunOptions, say: Say) -> GateResult:
    """Record the run in the registry (queued locally when it is unreachable) and in MLflow;
    neither can change the verdict."""
    if (options.registry_db is None or not options.record_run) and not options.mlflow_uri:
        return result
    from gate.registry.store import run_row

    row = run_row(result, git_commit=options.git_commit)  # one run_uid for the registry and MLflow
    records = []
    if options.registry_db is not None and options.record_run:
        from gate.registry.recording import record_or_queue

        queue = options.registry_queue or options.repo_root / ".gate" / "registry-queue.jsonl"
        records.append(record_or_queue(row, options.registry_db, queue, say=say))
    if options.mlflow_uri:
        from gate.registry.mlflow_export import log_to_mlflow

        records.append(log_to_mlflow(row, options.mlflow_uri, experiment=options.mlflow_experiment, say=say))
    return result.model_copy(update={"stages": [*result.stages, *records]}) if records else result
