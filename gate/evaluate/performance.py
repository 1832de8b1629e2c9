"""Speed and memory of baseline and quantized, measured the same way in one run, and the spec's
constraint checked against them.

Per model: prefill latency of a fixed prompt and per-token decode latency (p50/p95 after
warm-up, greedy decoding with the KV cache), generated tokens/s at each batch size the spec
names, peak memory (CUDA max allocated on GPU; on CPU the process's peak resident set while the
model is measured, sampled every 5 ms) and size on disk.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gate.evaluate.interface import ConstraintCheck, ModelPerformance, PerformanceResult

GB = 1e9


@dataclass(frozen=True)
class PerformanceSettings:
    prompt_tokens: int = 128
    decode_tokens: int = 16
    batch_sizes: tuple[int, ...] = (1,)
    warmup: int = 1
    repeats: int = 5

    def key(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "decode_tokens": self.decode_tokens,
                "batch_sizes": list(self.batch_sizes), "warmup": self.warmup, "repeats": self.repeats}


def directory_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class _PeakRss:
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self.stop.wait(0.005)


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, int | str]]:
    """Peak memory inside the block: CUDA max allocated, or sampled process RSS on CPU."""
    out: dict[str, int | str] = {}
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield out
        torch.cuda.synchronize()
        out.update(bytes=int(torch.cuda.max_memory_allocated()), kind="cuda_max_allocated")
        return
    sampler = _PeakRss(peak=_rss_bytes())
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        sampler.stop.set()
        thread.join()
        out.update(bytes=max(sampler.peak, _rss_bytes()), kind="rss")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _prompt(tokenizer: Any, n_tokens: int, batch: int, device: str) -> Any:
    import torch

    text = ("The quick brown fox jumps over the lazy dog while the river flows into the quiet valley. " * 64)
    ids = tokenizer(text, add_special_tokens=True)["input_ids"][:n_tokens]
    while len(ids) < n_tokens:
        ids = ids + ids[: n_tokens - len(ids)]
    return torch.tensor([ids] * batch, dtype=torch.long, device=device)


def _decode(model: Any, prompt: Any, steps: int, device: str) -> tuple[float, list[float]]:
    """Prefill then ``steps`` greedy decode steps with the KV cache; (prefill s, [step s])."""
    import torch

    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        out = model(input_ids=prompt, use_cache=True)
        _sync(device)
        prefill = time.perf_counter() - start
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(dim=-1)
        steps_s: list[float] = []
        for _ in range(steps):
            start = time.perf_counter()
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            _sync(device)
            steps_s.append(time.perf_counter() - start)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(dim=-1)
    return prefill, steps_s


def measure(model: Any, tokenizer: Any, model_dir: Path, settings: PerformanceSettings, *, device: str) -> ModelPerformance:
    """Measure one loaded model (its weights already on ``device``); reports its passes to the run's progress."""
    from gate.report.progress import report

    passes = settings.warmup + settings.repeats + len(settings.batch_sizes)
    step = "speed and memory (decode passes)"
    report(step, 0, passes)
    param_bytes = sum(int(t.numel() * t.element_size()) for t in model.parameters())
    param_bytes += sum(int(t.numel() * t.element_size()) for t in model.buffers())
    with peak_memory(device) as mem:
        prompt = _prompt(tokenizer, settings.prompt_tokens, 1, device)
        for index in range(settings.warmup):
            _decode(model, prompt, 2, device)
            report(step, index + 1, passes)
        prefills: list[float] = []
        steps: list[float] = []
        for index in range(settings.repeats):
            prefill, step_s = _decode(model, prompt, settings.decode_tokens, device)
            prefills.append(prefill)
            steps.extend(step_s)
            report(step, settings.warmup + index + 1, passes)
        throughput: dict[str, float] = {}
        for index, batch in enumerate(settings.batch_sizes):
            batch_prompt = _prompt(tokenizer, settings.prompt_tokens, batch, device)
            _decode(model, batch_prompt, 2, device)
            start = time.perf_counter()
            _, step_s = _decode(model, batch_prompt, settings.decode_tokens, device)
            elapsed = time.perf_counter() - start
            throughput[str(batch)] = batch * (settings.decode_tokens + 1) / elapsed
            report(step, settings.warmup + settings.repeats + index + 1, passes)
    ms = np.asarray(prefills) * 1000.0
    dms = np.asarray(steps) * 1000.0
    return ModelPerformance(
        device=device,
        dtype=str(getattr(model, "dtype", "")).removeprefix("torch."),
        prompt_tokens=settings.prompt_tokens,
        decode_tokens=settings.decode_tokens,
        prefill_ms_p50=float(np.percentile(ms, 50)),
        prefill_ms_p95=float(np.percentile(ms, 95)),
        decode_ms_per_token_p50=float(np.percentile(dms, 50)),
        decode_ms_per_token_p95=float(np.percentile(dms, 95)),
        tokens_per_s=throughput,
        peak_memory_bytes=int(mem["bytes"]),
        memory_kind=str(mem["kind"]),
        parameter_bytes=param_bytes,
        disk_bytes=directory_bytes(model_dir),
        warmup=settings.warmup,
        repeats=settings.repeats,
    )


def _unmeasured(check: ConstraintCheck, kind: str | None, declared: bool) -> ConstraintCheck:
    """A check measured on dequantized weights: not judged, or failed when it is the declared
    runtime's measure of the spec's own constraint kind."""
    if declared and kind is not None and check.name.startswith(f"{kind}."):
        return check.model_copy(update={"passed": False, "note": (
            f"{check.note}; serving.runtime is declared, so the {kind}-bound constraint cannot be judged in "
            "serving precision: blocking")})
    return check.model_copy(update={"passed": None})


@dataclass(frozen=True)
class ConstraintTargets:
    """What the spec asks of performance (from ``constraint`` and ``performance``)."""

    kind: str | None
    hardware_kind: str | None = None
    """gpu | cpu (catalog kind of the target hardware), None when unknown."""
    hardware: str | None = None
    memory_gb: float | None = None
    """The tighter of ``performance.max_memory_gb`` and (memory-bound) ``constraint.target.memory_gb``."""
    tokens_per_s: float | None = None
    min_speedup: float | None = None
    cost_per_million_tokens: float | None = None
    hourly_cost: float | None = None
    batch: int = 1


def check_constraint(
    baseline: ModelPerformance,
    quantized: ModelPerformance,
    targets: ConstraintTargets,
    *,
    environment: dict[str, str],
    baseline_cached: bool = False,
    serving_declared: bool = False,
) -> PerformanceResult:
    """Compare the two measurements and check the spec's targets.

    Figures measured on dequantized weights (``quantized.fallback``) are not the serving numbers:
    their checks are not judged, except those of the spec's own constraint kind when the spec
    declared the runtime (``serving_declared``): those fail, since the constraint the spec is bound
    by cannot be shown in the runtime it names."""
    speedup = {b: quantized.tokens_per_s[b] / baseline.tokens_per_s[b]
               for b in quantized.tokens_per_s if baseline.tokens_per_s.get(b)}
    device_kind = "gpu" if quantized.device.startswith("cuda") else "cpu"
    on_target = targets.hardware_kind is None or targets.hardware_kind == device_kind
    off_note = None if on_target else (
        f"measured on {device_kind}, target {targets.hardware} is a {targets.hardware_kind}: not judged here"
    )
    fallback = quantized.fallback
    if fallback is not None and on_target:
        off_note = f"not measured in serving precision: {fallback.message}"
    batch_key = str(targets.batch) if str(targets.batch) in quantized.tokens_per_s else next(iter(quantized.tokens_per_s))
    checks: list[ConstraintCheck] = []
    if targets.memory_gb is not None:
        measured = quantized.peak_memory_bytes / GB
        checks.append(ConstraintCheck(name="memory.peak_gb", target=targets.memory_gb, measured=measured,
                                      passed=(measured <= targets.memory_gb) if on_target else None, note=off_note))
    if targets.tokens_per_s is not None:
        tps = quantized.tokens_per_s[batch_key]
        checks.append(ConstraintCheck(name=f"throughput.tokens_per_s@batch{batch_key}", target=targets.tokens_per_s,
                                      measured=tps, passed=(tps >= targets.tokens_per_s) if on_target else None,
                                      note=off_note))
    if targets.min_speedup is not None and batch_key in speedup:
        # A ratio measured on the same machine means something even off-target, but kernels differ:
        # judge it only on the target's kind of device.
        checks.append(ConstraintCheck(name=f"throughput.speedup@batch{batch_key}", target=targets.min_speedup,
                                      measured=speedup[batch_key],
                                      passed=(speedup[batch_key] >= targets.min_speedup) if on_target else None,
                                      note=off_note))
    if targets.kind == "cost" and targets.hourly_cost is not None and targets.cost_per_million_tokens is not None:
        tps = quantized.tokens_per_s[batch_key]
        cost = targets.hourly_cost / (tps * 3600.0) * 1e6
        checks.append(ConstraintCheck(name="cost.usd_per_million_tokens", target=targets.cost_per_million_tokens,
                                      measured=cost, passed=(cost <= targets.cost_per_million_tokens) if on_target else None,
                                      note=(off_note or "hourly_cost / (tokens/s x 3600) x 1e6")))
    if fallback is not None and on_target:
        checks = [_unmeasured(c, targets.kind, serving_declared) for c in checks]
    return PerformanceResult(
        constraint=targets.kind,
        baseline=baseline,
        quantized=quantized,
        speedup=speedup,
        memory_ratio=quantized.peak_memory_bytes / baseline.peak_memory_bytes if baseline.peak_memory_bytes else float("nan"),
        checks=checks,
        passed=all(c.passed is not False for c in checks),
        environment=environment,
        baseline_cached=baseline_cached,
    )
