"""A run recorded by a schema 1 gate still reads: its metric rows, its typed result, diff, listing, MLflow."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gate.registry.diff import diff_runs
from gate.registry.listing import render_runs
from gate.registry.mlflow_export import run_contents
from gate.registry.store import Registry, run_row
from gate.report.load import load_result_file
from gate.result import CriterionKind, Decision

V1_RUN = Path(__file__).resolve().parents[1] / "report" / "data" / "v1" / "run-rtn2-fail.json"


def v1_row() -> dict[str, object]:
    """The ``runs`` row a schema 1 gate wrote for this run: its result_json is the v1 document."""
    (upgraded,) = load_result_file(V1_RUN)
    return {**run_row(upgraded), "result_json": V1_RUN.read_text(encoding="utf-8"),
            "runtime_json": json.dumps(json.loads(V1_RUN.read_text(encoding="utf-8"))["runtime"], sort_keys=True)}


def test_a_v1_record_reads_back_typed(registry_url: str) -> None:
    registry = Registry(registry_url)
    try:
        old = registry.get(registry.record_row(v1_row()))
        new = registry.get(registry.record(load_result_file(V1_RUN)[0]))
        assert old.result["schema_version"] == "1.0" and json.loads(new.result_json)["schema_version"] == "2.0"
        assert registry.incomplete_runs() == 0  # the metric rows of both match their result documents
        assert [(c.name, c.outcome) for c in old.metric_criteria] == [
            ("tiny_mc/acc", Decision.passed), ("tiny_ppl/word_perplexity", Decision.failed)]
        assert old.metric_criteria == new.metric_criteria
        result = old.gate_result
        assert [c.kind for c in result.criteria].count(CriterionKind.fidelity) == 2
        assert old.runtime == new.runtime  # runtime_json stays the flat name -> version mapping
        assert (old.artifact_sha256, old.artifact_path, old.method, old.bits) == (
            new.artifact_sha256, new.artifact_path, "rtn", 2)
        assert [c for c in diff_runs(old, new) if c.section != "config"] == []  # same run, two schema versions
        listing = render_runs([old], width=160)
        assert "tiny_ppl/word_perplexity +2.07" in listing
        _, metrics, _ = run_contents(v1_row())
        assert metrics["tiny_ppl/word_perplexity/quantized"] == old.metric_criteria[1].candidate
        assert metrics["fidelity/kl/limit"] == 0.3
        assert metrics["throughput/batch1/change"] > 0
        assert all(re.fullmatch(r"[\w./ -]+", name) for name in metrics)  # MLflow's allowed characters
    finally:
        registry.dispose()
