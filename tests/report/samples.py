"""Hand-built results for the report tests (exact-output goldens depend on every value here)."""

from __future__ import annotations

from pathlib import Path

from gate.evaluate.interface import ConstraintCheck, FidelityResult, ModelPerformance, PerformanceResult
from gate.quantize.artifact import Artifact
from gate.result import (
    Decision,
    Finding,
    GateResult,
    Location,
    MetricResult,
    RuntimeInfo,
    Severity,
    SpecRef,
    StageRecord,
    StageStatus,
    Verdict,
    WaiverNote,
)
from gate.result_build import artifact_record, criteria_of, fidelity_measurement, performance_measurement


def model_performance(device: str, memory: int, tps: tuple[float, float]) -> ModelPerformance:
    gpu = device == "cuda"
    return ModelPerformance(
        device=device, dtype="float16" if gpu else "float32", prompt_tokens=128, decode_tokens=16,
        prefill_ms_p50=41.5 if memory > 1e9 else 35.2, prefill_ms_p95=44.0 if memory > 1e9 else 37.9,
        decode_ms_per_token_p50=1000 / tps[0], decode_ms_per_token_p95=1100 / tps[0],
        tokens_per_s={"1": tps[0], "4": tps[1]}, peak_memory_bytes=memory,
        memory_kind="cuda_max_allocated" if gpu else "rss", parameter_bytes=int(memory * 0.8),
        disk_bytes=int(memory * 0.8), warmup=1, repeats=5,
    )


def performance(*, constraint: str, base_memory: int, quant_memory: int, base_tps: tuple[float, float],
                quant_tps: tuple[float, float], checks: list[ConstraintCheck], device: str = "cuda") -> PerformanceResult:
    """A ``PerformanceResult`` as the evaluation stage returns it."""
    return PerformanceResult(
        constraint=constraint,
        baseline=model_performance(device, base_memory, base_tps),
        quantized=model_performance(device, quant_memory, quant_tps),
        speedup={"1": quant_tps[0] / base_tps[0], "4": quant_tps[1] / base_tps[1]},
        memory_ratio=quant_memory / base_memory, checks=checks,
        passed=all(c.passed is not False for c in checks),
    )


def license_fidelity() -> FidelityResult:
    """The failed run's fidelity comparison, as the evaluation stage returns it (both limits passed)."""
    return FidelityResult(
        texts="qg_license_ppl", texts_sha256="cd" * 32, documents=12, tokens=2048, confidence=0.95,
        kl_mean=0.0213, kl_ci_low=0.019, kl_ci_high=0.0236, flip_rate=0.047, flip_ci_low=0.038,
        flip_ci_high=0.057, top_k=64, tail_mass_mean=0.004, method="cluster bootstrap over documents, 2000 resamples, seed 0",
        max_kl=0.05, max_flip_rate=0.1, passed=True, outcome="pass", kl_outcome="pass", flip_outcome="pass",
    )


def failed_run() -> GateResult:
    """A `gate run` that failed: one blocking finding, a warning, a waived deny, a failed metric."""
    metrics = [
        MetricResult(task="support_qa", metric="acc", n=400, baseline=0.7325, quantized=0.7085,
                     difference=2.4, ci_low=1.1, ci_high=3.7, confidence=0.95, tolerance=1.0,
                     tolerance_form="max_drop", higher_is_better=True,
                     method="McNemar exact", p_value=0.0004, outcome=Decision.failed),
        MetricResult(task="qg_wikitext_local", metric="word_perplexity", n=64, n_total=128, baseline=18.42,
                     quantized=18.97, difference=0.02986, ci_low=0.021, ci_high=0.0387, confidence=0.95,
                     tolerance=0.05, tolerance_form="max_relative_increase", higher_is_better=False,
                     method="paired bootstrap, 10000 resamples, seed 0", outcome=Decision.passed,
                     note="stopped early: decided after 64 of 128 documents"),
    ]
    perf = performance(
        constraint="memory", base_memory=2_500_000_000, quant_memory=810_000_000, base_tps=(40.0, 131.0),
        quant_tps=(52.0, 170.3), checks=[ConstraintCheck(name="memory.peak_gb", target=20.0, measured=0.81,
                                                          passed=True)])
    fidelity = license_fidelity()
    return GateResult(
        gate_version="0.1.0",
        command="run",
        spec=SpecRef(path="models/support.yaml", name="support-assistant", sha256="ab" * 32, owner="team-support",
                     tier="critical", method="awq", bits=4),
        started_at="2026-11-23T10:00:00Z",
        finished_at="2026-11-23T10:12:30Z",
        verdict=Verdict(decision=Decision.failed, reasons=[
            "QG104 calibration.samples: 32 samples is below the minimum of 128",
            "support_qa acc: degradation 2.4 pts exceeds max_drop 1 pts",
        ]),
        exit_code=1,
        findings=[
            Finding(rule_id="QG205", slug="calibration.fresh", severity=Severity.warn,
                    message="calibration data was collected 400 days ago",
                    location=Location(path="models/support.yaml", line=31, col=3),
                    hint="re-collect calibration data from recent production traffic"),
            Finding(rule_id="QG104", slug="calibration.enough-samples", severity=Severity.deny,
                    message="calibration.samples: 32 samples is below the minimum of 128",
                    location=Location(path="models/support.yaml", line=29, col=12),
                    hint="use `samples: 128` or more (the sanctioned default is 256)"),
            Finding(rule_id="QG301", slug="weights.lockfile", severity=Severity.deny,
                    message="no lockfile for the baseline weights",
                    location=Location(path="models/support.yaml", line=10, col=3),
                    hint="run `gate lock models/support.yaml`", waived=True,
                    waiver=WaiverNote(reason="weights move to the registry next sprint", owner="team-platform",
                                      expires="2026-12-31",
                                      source=Location(path="policies/waivers.yaml", line=4, col=5))),
            Finding(rule_id="QG900", slug="info.baseline-q4", severity=Severity.info,
                    message="the baseline is already 4-bit (GGUF Q4_1) | compare with care"),
        ],
        stages=[
            StageRecord(stage="spec", status=StageStatus.ok, seconds=0.01),
            StageRecord(stage="quantize", status=StageStatus.ok, seconds=312.5, cache_hit=False),
            StageRecord(stage="evaluate", status=StageStatus.ok, seconds=420.25),
        ],
        criteria=criteria_of(metrics, fidelity, perf),
        performance=performance_measurement(perf),
        fidelity=fidelity_measurement(fidelity),
        runtime=RuntimeInfo.model_validate(
            {"python": "3.12.3", "torch": "2.13.0", "autoawq": "0.2.9", "device": "cuda", "gpu": "NVIDIA L4"}),
        artifact=artifact_record(Artifact(
            path=Path(".gate/cache/artifacts/3f2a"), cache_key="3f2a" + "0" * 60, cache_hit=False, method="awq",
            bits=4, group_size=128, format="awq-gemm",
            params={"w_bit": 4, "q_group_size": 128, "zero_point": True, "version": "GEMM"},
            versions={"autoawq": "0.2.9", "torch": "2.13.0"}, calibration=None, sanity=None,
            baseline_identity="HuggingFaceTB/SmolLM2-135M@" + "1" * 40, seconds=312.5, quantize_seconds=312.5,
            artifact_sha256="ef" * 32,
        )),
    )


def passed_check() -> GateResult:
    """A `gate check` that passed with no findings."""
    return GateResult(
        gate_version="0.1.0",
        command="check",
        spec=SpecRef(path="models/tiny.yaml", name="tiny", owner="team-platform", tier="internal", method="rtn",
                     bits=8),
        started_at="2026-11-23T09:59:00Z",
        finished_at="2026-11-23T09:59:01Z",
        verdict=Verdict(decision=Decision.passed, reasons=["all static checks passed"]),
        exit_code=0,
        stages=[StageRecord(stage="spec", status=StageStatus.ok, seconds=0.004), StageRecord(stage="policy", status=StageStatus.ok)],
    )


def error_check(path: str = "models/broken.yaml") -> GateResult:
    """A `gate check` that could not load its spec."""
    return GateResult(
        gate_version="0.1.0",
        command="check",
        spec=SpecRef(path=path),
        started_at="2026-11-23T09:58:00Z",
        finished_at="2026-11-23T09:58:00Z",
        verdict=Verdict(decision=Decision.error, reasons=[f"{path}:3:1: quantization.bits: required key is missing"]),
        exit_code=2,
        findings=[Finding(rule_id="QG000", slug="spec.invalid", severity=Severity.deny, stage="spec",
                          message="quantization.bits: required key is missing",
                          location=Location(path=path, line=3, col=1), hint="add `bits` under `quantization`")],
        stages=[StageRecord(stage="spec", status=StageStatus.failed, message="quantization.bits: required key is missing")],
        error=f"{path}:3:1: quantization.bits: required key is missing\n  Hint: add `bits` under `quantization`",
    )


def inconclusive_run() -> GateResult:
    """A memory-bound `gate run` on a CPU target: inconclusive metric, memory went up (QG702), a waiver expiring soon."""
    metrics = [
        MetricResult(task="qg_support_mc", metric="acc", n=300, baseline=0.62, quantized=0.612,
                     difference=0.8, ci_low=-0.4, ci_high=2.0, confidence=0.95, tolerance=1.0,
                     tolerance_form="max_drop", higher_is_better=True, method="McNemar exact",
                     outcome=Decision.inconclusive),
    ]
    perf = performance(
        constraint="memory", base_memory=1_290_000_000, quant_memory=1_510_000_000, base_tps=(22.0, 61.0),
        quant_tps=(9.0, 25.0), device="cpu",
        checks=[ConstraintCheck(name="memory.peak_gb", target=4.0, measured=1.51, passed=True)])
    return GateResult(
        gate_version="0.1.0",
        command="run",
        spec=SpecRef(path="models/int8.yaml", name="smollm2-int8", owner="team-edge", tier="standard", method="int8",
                     bits=8),
        started_at="2026-11-23T11:00:00Z",
        finished_at="2026-11-23T11:09:00Z",
        verdict=Verdict(decision=Decision.inconclusive, reasons=[
            "qg_support_mc/acc: drop 0.80 points [95% bounds -0.40, 2.00] > tolerance 1.00 not excluded → INCONCLUSIVE",
            "inconclusive blocks by default (fail-closed): evaluate more items, or a policy may set inconclusive: allow",
        ]),
        exit_code=1,
        findings=[
            Finding(rule_id="QG205", slug="calibration.fresh", severity=Severity.deny,
                    message="calibration data was collected 200 days ago",
                    location=Location(path="models/int8.yaml", line=22, col=3), waived=True,
                    waiver=WaiverNote(reason="fresh traffic sample lands with the next release", owner="team-edge",
                                      expires="2026-11-29",
                                      source=Location(path="policies/waivers.yaml", line=9, col=5))),
            Finding(rule_id="QG702", slug="constraint.memory-reduced", severity=Severity.warn, stage="performance",
                    message="constraint.kind: memory-bound, but the quantized model's peak memory went up: 1.29 GB -> "
                            "1.51 GB (1.17x, rss on cpu)",
                    location=Location(path="models/int8.yaml", line=9, col=9),
                    hint="this quantization does not save memory here: choose a format with kernels that keep the "
                         "weights compressed on the target, or state the real constraint"),
        ],
        criteria=criteria_of(metrics, None, perf),
        performance=performance_measurement(perf),
        runtime=RuntimeInfo.model_validate({"python": "3.12.3", "torch": "2.13.0", "device": "cpu"}),
    )
