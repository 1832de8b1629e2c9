"""Speed/memory measurement on a real tiny model, and the constraint checks (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.evaluate.interface import ModelPerformance
from gate.evaluate.performance import ConstraintTargets, PerformanceSettings, check_constraint, measure


def _perf(tps: float, peak_gb: float, device: str = "cpu") -> ModelPerformance:
    return ModelPerformance(device=device, prompt_tokens=8, decode_tokens=4, prefill_ms_p50=1, prefill_ms_p95=2,
                            decode_ms_per_token_p50=1, decode_ms_per_token_p95=2, tokens_per_s={"1": tps, "4": tps * 3},
                            peak_memory_bytes=int(peak_gb * 1e9), memory_kind="rss", parameter_bytes=1, disk_bytes=1,
                            warmup=1, repeats=2)


def test_measure_reports_latency_throughput_memory_and_size(tiny_llama_dir: Path) -> None:
    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(tiny_llama_dir)
    perf = measure(model, tokenizer, tiny_llama_dir, PerformanceSettings(prompt_tokens=16, decode_tokens=4,
                                                                      batch_sizes=(1, 2), repeats=2), device="cpu")
    assert perf.prefill_ms_p50 > 0 and perf.prefill_ms_p95 >= perf.prefill_ms_p50
    assert perf.decode_ms_per_token_p95 >= perf.decode_ms_per_token_p50 > 0
    assert set(perf.tokens_per_s) == {"1", "2"} and all(v > 0 for v in perf.tokens_per_s.values())
    assert perf.memory_kind == "rss" and perf.peak_memory_bytes > perf.parameter_bytes > 0
    assert perf.dtype == "float32"
    assert perf.disk_bytes == sum(p.stat().st_size for p in tiny_llama_dir.rglob("*") if p.is_file())


def test_memory_bound_spec_fails_when_the_quantized_peak_exceeds_the_target() -> None:
    result = check_constraint(_perf(10, 2.0), _perf(12, 1.5),
                              ConstraintTargets(kind="memory", hardware_kind="cpu", memory_gb=1.0), environment={})
    [check] = result.checks
    assert (check.name, check.target, check.measured, check.passed) == ("memory.peak_gb", 1.0, 1.5, False)
    assert result.passed is False
    assert result.speedup == {"1": pytest.approx(1.2), "4": pytest.approx(1.2)}
    assert result.memory_ratio == pytest.approx(0.75)


def test_throughput_bound_spec_checks_tokens_per_second_and_speedup_at_the_target_batch() -> None:
    targets = ConstraintTargets(kind="throughput", hardware_kind="cpu", tokens_per_s=30.0, min_speedup=1.1, batch=4)
    result = check_constraint(_perf(10, 1), _perf(12, 1), targets, environment={})
    names = {c.name: c.passed for c in result.checks}
    assert names == {"throughput.tokens_per_s@batch4": True, "throughput.speedup@batch4": True}
    assert result.passed is True


def test_cost_bound_spec_derives_cost_per_million_tokens() -> None:
    targets = ConstraintTargets(kind="cost", hardware_kind="cpu", hourly_cost=3.6, cost_per_million_tokens=50.0)
    result = check_constraint(_perf(10, 1), _perf(20, 1), targets, environment={})
    [check] = result.checks
    assert check.measured == pytest.approx(3.6 / (20 * 3600) * 1e6)  # 50.0 USD
    assert check.passed is True


def test_gpu_target_measured_on_cpu_is_reported_but_not_judged() -> None:
    targets = ConstraintTargets(kind="memory", hardware_kind="gpu", hardware="nvidia-l4", memory_gb=0.5)
    result = check_constraint(_perf(10, 2), _perf(12, 1), targets, environment={})
    [check] = result.checks
    assert check.passed is None
    assert check.note == "measured on cpu, target nvidia-l4 is a gpu: not judged here"
    assert result.passed is True
