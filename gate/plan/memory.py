"""Memory-fit plan: will the quantized model meet its target's memory before any GPU time is spent?

Everything comes from metadata (safetensors headers, ``config.json``, GGUF tensor tables), never
from loading the model. Per component (decimal GB, 1 GB = 10**9 bytes, as hardware is sold):

* quantized weights: ``numel x bits / 8`` for the 2-D linear weights inside the decoder blocks;
  for fixed-block formats (GGUF types) ``numel x bits_per_weight / 8`` from the backend's
  descriptor (``gguf-q4_k_m`` 4.89, ``gguf-q8_0`` 8.5, ...), block scales included;
* scales/zeros: per group of ``group_size`` input columns (per output row when per-channel), a
  16-bit scale plus a zero point (packed at ``bits`` for AWQ, 16-bit for other group-wise methods,
  none for symmetric per-channel int8);
* full-precision tensors: embeddings, lm_head, norms, biases and ``keep_full_precision`` modules at
  the 16-bit serving dtype (as AutoAWQ and the gate's backends keep them);
* KV cache: ``2 x layers x kv_heads x head_dim x context x batch x 2 bytes``;
* runtime overhead (stated, not measured): a fixed runtime allowance (CUDA context and workspace
  on GPUs, the framework on CPUs) plus 10% of weights + KV cache for activations.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from gate.errors import InputError
from gate.frozen import Frozen
from gate.plan.checkpoint import Checkpoint, TensorInfo, read_gguf, read_model_dir

if TYPE_CHECKING:
    from gate.plan.catalog import HardwareCatalog
    from gate.spec.loader import LoadedSpec

GB = 1_000_000_000
SERVING_BYTES = 2
"""Bytes per element of the serving dtype (float16 / bfloat16) for KV cache and kept tensors."""
FIXED_OVERHEAD_BYTES = {"gpu": 500_000_000, "cpu": 350_000_000}
"""Runtime allowance: CUDA context + cuBLAS workspace on GPUs; on CPUs the kernels and buffers torch
loads for the first forward (measured: 0.29-0.34 GB of RSS growth on tiny models, benchmarks/memory_fit.py)."""
ACTIVATION_FRACTION = 0.10
"""Activations and allocator slack, as a fraction of weights + KV cache."""
DEFAULT_CONTEXT = 2048
DEFAULT_BATCH = 1
GROUP_CANDIDATES = (128, 64, 32)
MAX_LISTED = 5

_BLOCK = re.compile(r"(^|\.)(layers|h|blocks|block|decoder\.layers)\.\d+\.")


class PrecisionFit(Frozen):
    """The plan's total at one candidate precision."""

    bits: int
    group_size: int | None
    """None = per-channel (one scale per output row)."""
    label: str
    """e.g. ``fp16``, ``int8``, ``int4 g128``."""
    total_gb: float
    fits: bool | None
    """None when the target's memory is unknown."""


class MemoryPlan(Frozen):
    """The memory estimate of one spec at its planned precision, with the breakdown behind it."""

    source: str
    """``path`` (safetensors directory) or ``gguf``."""
    architecture: str
    model_type: str
    parameters: int
    """All stored parameters."""
    quantized_parameters: int
    """Parameters in the linear layers that are quantized."""
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int | None
    """Longest context the model supports (``max_position_embeddings``), when the checkpoint says."""
    method: str | None
    bits: int
    group_size: int | None
    context: int
    batch: int
    device_kind: str
    """``gpu`` or ``cpu``: decides the fixed runtime allowance."""
    quantized_weights_bytes: int
    scales_zeros_bytes: int
    full_precision_bytes: int
    kv_cache_bytes: int
    runtime_overhead_bytes: int
    total_bytes: int
    weights_gb: float
    """Quantized weights + scales/zeros + full-precision tensors."""
    kv_cache_gb: float
    total_gb: float
    target_hardware: str | None
    target_memory_gb: float | None
    target_memory_source: str | None
    """``constraint`` (constraint.target.memory_gb) or ``catalog`` (the hardware entry)."""
    headroom_gb: float | None
    """Target memory minus total; negative when it does not fit."""
    fits: bool | None
    """None when the target's memory is unknown."""
    context_supported: bool | None
    """False when the planned context exceeds ``max_context``."""
    fitting_precisions: list[PrecisionFit] = Field(default_factory=list)
    largest_fitting: str | None = None
    """The highest candidate precision that fits, e.g. ``int4 g128 (5.20 GB)``; None if none or unknown."""
    indivisible_layers: list[str] = Field(default_factory=list)
    """Quantized layers whose input size is not a multiple of ``group_size`` (first few)."""
    indivisible_count: int = 0
    """How many quantized layers ``group_size`` does not divide."""
    suggested_group_size: int | None = None
    """The largest of 128, 64, 32 dividing every quantized layer (set when ``group_size`` does not)."""
    notes: list[str] = Field(default_factory=list)
    """What was assumed."""

    @property
    def label(self) -> str:
        return precision_label(self.bits, self.group_size)

    def breakdown(self) -> str:
        """``weights 3.50 GB + scales/zeros 0.11 GB + full precision 0.52 GB + KV cache 1.07 GB + overhead 0.62 GB``."""
        return (
            f"weights {human_bytes(self.quantized_weights_bytes)} + scales/zeros {human_bytes(self.scales_zeros_bytes)}"
            f" + full precision {human_bytes(self.full_precision_bytes)} + KV cache {human_bytes(self.kv_cache_bytes)}"
            f" + overhead {human_bytes(self.runtime_overhead_bytes)}"
        )

    def summary(self) -> list[str]:
        """Lines for reports: total against the target, the breakdown, and each precision's fit."""
        where = f" on {self.target_hardware}" if self.target_hardware else ""
        if self.fits is None or self.target_memory_gb is None or self.headroom_gb is None:
            head = f"memory plan: {self.label} needs {self.total_gb:.2f} GB{where} (target memory unknown)"
        else:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            head = (f"memory plan: {self.label} needs {self.total_gb:.2f} GB of {self.target_memory_gb:g} GB{where}: "
                    f"{verdict}, headroom {self.headroom_gb:.2f} GB ({self.headroom_gb / self.target_memory_gb:.0%})")
        lines = [head, f"  {self.breakdown()} (context {self.context} x batch {self.batch})"]
        if self.fitting_precisions:
            marks = {True: "fits", False: "does not fit", None: ""}
            lines.append("  precisions: " + " · ".join(
                f"{f.label} {f.total_gb:.2f} GB {marks[f.fits]}".rstrip() for f in self.fitting_precisions))
        return lines


@dataclass(frozen=True)
class Estimate:
    """Component bytes at one precision."""

    quantized_weights: int
    scales_zeros: int
    full_precision: int
    kv_cache: int
    runtime_overhead: int
    quantized_parameters: int
    indivisible_layers: tuple[str, ...]

    @property
    def weights(self) -> int:
        return self.quantized_weights + self.scales_zeros + self.full_precision

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.runtime_overhead


def human_bytes(n: float) -> str:
    """Decimal units: ``9.10 GB`` (from 0.1 GB), ``524.3 MB``, ``12.0 KB``."""
    if abs(n) >= GB // 10:
        return f"{n / GB:.2f} GB"
    if abs(n) >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{n / 1_000:.1f} KB"


def gb(n: int) -> float:
    """Bytes -> decimal GB, rounded to the byte's 1e-9 resolution minus noise."""
    return round(n / GB, 6)


def precision_label(bits: int, group_size: int | None) -> str:
    if bits >= 16:
        return "fp16"
    grouped = group_size is not None and group_size > 0
    return f"int{bits} g{group_size}" if grouped else f"int{bits}"


def is_quantizable(tensor: TensorInfo) -> bool:
    """2-D linear weights inside the decoder blocks (embeddings, lm_head, norms, biases are not)."""
    return len(tensor.shape) == 2 and tensor.name.endswith(".weight") and bool(_BLOCK.search(tensor.name))


def kept(tensor_name: str, patterns: list[str]) -> bool:
    """Whether ``keep_full_precision`` covers the tensor: a module name, a name suffix or a glob."""
    module = tensor_name.rsplit(".", 1)[0]
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatchcase(module, pattern) or fnmatch.fnmatchcase(tensor_name, pattern):
                return True
        elif module == pattern or module.endswith("." + pattern) or f".{pattern}." in f".{module}.":
            return True
    return False


def zero_point_bits(method: str | None, bits: int, group_size: int | None) -> int:
    if group_size is None or group_size <= 0:
        return 0 if bits >= 8 else 16
    return bits if method == "awq" else 16


def kv_cache_bytes(ckpt: Checkpoint, context: int, batch: int) -> int:
    shape = ckpt.shape
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * context * batch * SERVING_BYTES


def estimate(
    ckpt: Checkpoint,
    *,
    bits: int,
    group_size: int | None,
    method: str | None = None,
    keep_full_precision: list[str] | None = None,
    context: int = DEFAULT_CONTEXT,
    batch: int = DEFAULT_BATCH,
    device_kind: str = "gpu",
    fmt: str | None = None,
) -> Estimate:
    """Component bytes of ``ckpt`` quantized to ``bits`` (16 = unquantized) at the given serving shape.

    A fixed-block format (GGUF types) stores ``bits_per_weight`` per weight with its block scales
    included: its scales/zeros component is zero and its group size is the format's block."""
    from gate.plan.kernels import bits_per_weight

    keep = keep_full_precision or []
    quant_bits = qparams = scale_bits = full = 0
    indivisible: list[str] = []
    zero_bits = zero_point_bits(method, bits, group_size)
    block_bpw = bits_per_weight(fmt) if bits < 16 else None
    for tensor in ckpt.tensors:
        if bits < 16 and is_quantizable(tensor) and not kept(tensor.name, keep):
            rows, cols = tensor.shape
            qparams += tensor.numel
            if block_bpw is not None:
                quant_bits += int(tensor.numel * block_bpw)
                continue
            quant_bits += tensor.numel * bits
            if group_size is not None and group_size > 0:
                groups = -(-cols // group_size)
                if cols % group_size:
                    indivisible.append(tensor.name.rsplit(".", 1)[0])
            else:
                groups = 1
            scale_bits += rows * groups * (16 + zero_bits)
        else:
            full += tensor.numel * SERVING_BYTES
    quantized = -(-quant_bits // 8)
    scales = -(-scale_bits // 8)
    kv = kv_cache_bytes(ckpt, context, batch)
    overhead = FIXED_OVERHEAD_BYTES.get(device_kind, FIXED_OVERHEAD_BYTES["gpu"]) + int(
        ACTIVATION_FRACTION * (quantized + scales + full + kv)
    )
    return Estimate(quantized, scales, full, kv, overhead, qparams, tuple(indivisible))


def dividing_group_size(ckpt: Checkpoint, preferred: int | None = None) -> int | None:
    """``preferred``, else the largest of 128, 64, 32, that divides every quantized layer's input size."""
    cols = {t.shape[1] for t in ckpt.tensors if is_quantizable(t)}
    for candidate in ([preferred] if preferred else []) + list(GROUP_CANDIDATES):
        if candidate and candidate > 0 and all(c % candidate == 0 for c in cols):
            return candidate
    return None


def candidate_precisions(ckpt: Checkpoint, spec_group: int | None = None) -> list[tuple[int, int | None]]:
    """fp16, int8 per-channel, int4 group-wise: the sanctioned precisions, largest first."""
    return [(16, None), (8, None), (4, dividing_group_size(ckpt, spec_group) or GROUP_CANDIDATES[-1])]


def build_plan(
    ckpt: Checkpoint,
    *,
    method: str | None,
    bits: int,
    group_size: int | None,
    keep_full_precision: list[str],
    context: int | None,
    batch: int | None,
    target_hardware: str | None,
    target_memory_gb: float | None,
    target_memory_source: str | None,
    device_kind: str,
    notes: list[str] | None = None,
    fmt: str | None = None,
) -> MemoryPlan:
    """The plan of one checkpoint at one precision against one target (pure; no I/O)."""
    notes = list(notes or [])
    max_ctx = ckpt.shape.max_context
    if context is None:
        context = min(DEFAULT_CONTEXT, max_ctx) if max_ctx else DEFAULT_CONTEXT
        notes.append(f"context not declared: planned at {context} tokens")
    if batch is None:
        batch = DEFAULT_BATCH
        notes.append(f"batch not declared: planned at batch {batch}")
    est = estimate(ckpt, bits=bits, group_size=group_size, method=method, keep_full_precision=keep_full_precision,
                   context=context, batch=batch, device_kind=device_kind, fmt=fmt)
    limit = int(target_memory_gb * GB) if target_memory_gb is not None else None
    fits = None if limit is None else est.total <= limit
    spec_group = group_size if bits == 4 else None
    fitting: list[PrecisionFit] = []
    for cand_bits, cand_group in candidate_precisions(ckpt, spec_group):
        cand = estimate(ckpt, bits=cand_bits, group_size=cand_group, method=method if cand_bits == bits else None,
                        keep_full_precision=keep_full_precision, context=context, batch=batch, device_kind=device_kind)
        fitting.append(PrecisionFit(
            bits=cand_bits, group_size=cand_group, label=precision_label(cand_bits, cand_group),
            total_gb=gb(cand.total), fits=None if limit is None else cand.total <= limit,
        ))
    largest = next((f"{f.label} ({f.total_gb:.2f} GB)" for f in fitting if f.fits), None)
    notes.append(
        f"runtime overhead = {human_bytes(FIXED_OVERHEAD_BYTES.get(device_kind, FIXED_OVERHEAD_BYTES['gpu']))} fixed "
        f"({device_kind}) + {ACTIVATION_FRACTION:.0%} of weights and KV cache for activations"
    )
    notes.append("linear layers in the decoder blocks are quantized; embeddings, lm_head, norms and biases stay 16-bit")
    return MemoryPlan(
        source=ckpt.source,
        architecture=ckpt.shape.architecture,
        model_type=ckpt.shape.model_type,
        parameters=ckpt.parameters,
        quantized_parameters=est.quantized_parameters,
        layers=ckpt.shape.layers,
        kv_heads=ckpt.shape.kv_heads,
        head_dim=ckpt.shape.head_dim,
        max_context=max_ctx,
        method=method,
        bits=bits,
        group_size=group_size,
        context=context,
        batch=batch,
        device_kind=device_kind,
        quantized_weights_bytes=est.quantized_weights,
        scales_zeros_bytes=est.scales_zeros,
        full_precision_bytes=est.full_precision,
        kv_cache_bytes=est.kv_cache,
        runtime_overhead_bytes=est.runtime_overhead,
        total_bytes=est.total,
        weights_gb=gb(est.weights),
        kv_cache_gb=gb(est.kv_cache),
        total_gb=gb(est.total),
        target_hardware=target_hardware,
        target_memory_gb=target_memory_gb,
        target_memory_source=target_memory_source,
        headroom_gb=None if limit is None else gb(limit - est.total),
        fits=fits,
        context_supported=None if max_ctx is None else context <= max_ctx,
        fitting_precisions=fitting,
        largest_fitting=largest,
        indivisible_layers=list(dict.fromkeys(est.indivisible_layers))[:MAX_LISTED],
        indivisible_count=len(set(est.indivisible_layers)),
        suggested_group_size=dividing_group_size(ckpt) if est.indivisible_layers else None,
        notes=notes,
    )


def read_checkpoint(loaded: LoadedSpec, repo_root: Path) -> Checkpoint | None:
    """The spec's baseline checkpoint from metadata; None when it is not available locally."""
    source = loaded.spec.model
    if source.kind == "hub":
        return None
    rel = source.path if source.kind == "path" else source.gguf
    assert rel is not None
    key = "path" if source.kind == "path" else "gguf"
    root = repo_root.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise InputError(
            f"model.{key}: {rel!r} points outside the repository",
            hint="keep model files inside the repository (or use `hub:` with a pinned revision)",
            location=loaded.source_map.locate(("model", key)),
        )
    if not target.exists():
        return None
    try:
        if source.kind == "path":
            return read_model_dir(target, rel)
        return read_gguf(target, rel)
    except InputError as exc:
        if exc.location is None:
            exc.location = loaded.source_map.locate(("model", key))
        raise


def plan_for_spec(loaded: LoadedSpec, catalog: HardwareCatalog, weights: Any, repo_root: Path) -> MemoryPlan | None:
    """The memory plan of a spec (``gate check``), or None when its weights are not available locally.

    ``weights`` (the weight scan) is accepted for the pipeline's uniform call; the plan reads the
    checkpoint's headers itself because it needs shapes, not hashes.
    """
    ckpt = read_checkpoint(loaded, repo_root)
    if ckpt is None:
        return None
    spec = loaded.spec
    notes: list[str] = []
    q = spec.quantization
    if q is None:
        notes.append("no quantization section: planned at 16 bits")
    target = spec.constraint.target if spec.constraint else None
    hardware = catalog.find(target.hardware) if target else None
    memory_gb, memory_source = None, None
    if target is not None and target.memory_gb is not None:
        memory_gb, memory_source = target.memory_gb, "constraint"
    elif hardware is not None:
        memory_gb, memory_source = hardware.memory_gb, "catalog"
    if hardware is None:
        notes.append("target hardware unknown to the catalog: GPU runtime allowance assumed")
    return build_plan(
        ckpt,
        method=q.method if q else None,
        bits=q.bits if q else 16,
        group_size=q.group_size if q else None,
        keep_full_precision=list(q.keep_full_precision) if q else [],
        context=target.context if target else None,
        batch=target.batch if target else None,
        target_hardware=target.hardware if target else None,
        target_memory_gb=memory_gb,
        target_memory_source=memory_source,
        device_kind=hardware.kind if hardware else "gpu",
        notes=notes,
        fmt=q.format if q else None,
    )
