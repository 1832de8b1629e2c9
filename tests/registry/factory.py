"""Hand-built GateResults for registry tests."""

from __future__ import annotations

from gate.result import ArtifactRecord, Decision, GateResult, MetricResult, RuntimeInfo, SpecRef, Verdict
from gate.result_build import metric_criterion

RUNTIME = {"python": "3.11.7", "torch": "2.13.0", "transformers": "5.23.0", "autoawq": "0.2.9",
           "lm_eval": "0.4.13", "device": "cpu"}


def make_result(
    name: str = "support-assistant",
    decision: Decision = Decision.passed,
    *,
    runtime: dict[str, str] | None = None,
    traffic_share: float | None = 0.3,
    drop: float = 0.4,
    started_at: str = "2026-11-01T10:00:00Z",
    finished_at: str = "2026-11-01T10:05:00Z",
    bits: int = 4,
) -> GateResult:
    metric = MetricResult(
        task="qg_reasoning", metric="acc", n=400, baseline=0.71, quantized=0.71 - drop / 100,
        difference=drop, ci_low=drop - 0.5, ci_high=drop + 0.5, confidence=0.95, tolerance=1.0,
        tolerance_form="max_drop", higher_is_better=True, method="paired bootstrap, 10000 resamples, seed 0",
        outcome=decision if decision is not Decision.error else Decision.inconclusive,
    )
    ppl = metric.model_copy(update={"task": "qg_wikitext_local", "metric": "word_perplexity", "baseline": 20.0,
                                    "quantized": 21.0, "difference": 0.05, "ci_low": 0.04, "ci_high": 0.06,
                                    "tolerance": 0.1, "tolerance_form": "max_relative_increase",
                                    "higher_is_better": False})
    return GateResult(
        gate_version="0.1.0", command="run",
        spec=SpecRef(path=f"models/{name}.yaml", name=name, sha256="ab" * 32, owner="team-support",
                     tier="critical", traffic_share=traffic_share, method="awq", bits=bits, group_size=128,
                     format="awq-gemm", baseline="org/model@" + "0" * 40,
                     calibration_source="data/calibration/support.jsonl", calibration_sha256="cd" * 32,
                     calibration_samples=256, calibration_max_seq_len=512),
        started_at=started_at, finished_at=finished_at,
        verdict=Verdict(decision=decision, reasons=[f"{decision.value} because of reasons"]),
        exit_code=0 if decision is Decision.passed else 1,
        criteria=[metric_criterion(metric), metric_criterion(ppl)],
        runtime=RuntimeInfo.model_validate(dict(runtime or RUNTIME)),
        artifact=ArtifactRecord(path=f".gate/cache/{name}", sha256="ef" * 32, cache_key="3f" * 32, cache_hit=False,
                                method="awq", bits=bits, group_size=128, format="awq-gemm",
                                baseline_identity="org/model@" + "0" * 40, seconds=1.0, quantize_seconds=1.0),
    )
