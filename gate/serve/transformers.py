"""The in-process runtime: plain transformers (eager), the gate's reference path.

``open`` loads the baseline or artifact with ``gate.quantize.load_for_eval`` (fp32 on CPU, fp16 on
CUDA; AWQ and GGUF artifacts are dequantized on load) and serves it from this process: tasks
through lm-eval's ``HFLM`` (``gate.evaluate.harness``), fidelity from full next-token
distributions (``gate.evaluate.fidelity``), speed and memory with ``gate.evaluate.performance``.
It serves every format the quantizer backends write, on CPU and GPU, but it is not what
production serves with: the numbers are transformers' own (``docs/serve.md``).

Where the load dequantized a quantized artifact (autoawq and gate-rtn on CPU, GGUF, compressed-tensors
that transformers decompresses), ``dequantization`` detects it from the loaded model itself (every
linear layer holding plain floating-point tensors although ``config.json`` declares a
``quantization_config``) and the served model carries it as ``fallback``: its speed and memory
figures say so, and the result's ``runtime.serving.fallback`` records it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.result_sections import ServingFallback
from gate.serve.interface import (
    OpenRequest,
    Runtime,
    RuntimeDescriptor,
    RuntimeMissingError,
    RuntimeVersion,
    ServedFormats,
    ServedModel,
)

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, ModelPerformance, TaskScores
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import TaskSource

DESCRIPTOR = RuntimeDescriptor(
    name="transformers",
    implementation="gate.serve.transformers:TransformersRuntime",
    summary="in-process transformers (eager), the reference path: every format the gate writes, dequantized "
            "where transformers has no kernel",
    serves=(ServedFormats(("*",), ("cpu", "gpu"), note="dequantized to fp32 (CPU) / fp16 (CUDA) where transformers "
                                                       "has no kernel for the format"),),
    environment="the project environment ('quant-gate[ml]')",
    version_source="the installed transformers distribution's metadata",
    default_for=("*:*",),
    args=("dtype",),
    dequantizes=(
        ServedFormats(("awq-gemm", "awq-gemv", "awq-marlin"), ("cpu",),
                      note="autoawq's kernels need CUDA: the gate dequantizes the int4 weights to float32"),
        ServedFormats(("rtn",), ("cpu", "gpu"), note="gate-rtn is the portable reference: dequantize + matmul"),
        ServedFormats(("gguf",), ("cpu", "gpu"), note="transformers' GGUF reader dequantizes every tensor"),
        ServedFormats(("ct-w4a16", "ct-w8a16", "ct-w8a8-int8", "ct-fp8"), ("cpu", "gpu"),
                      note="transformers decompresses compressed-tensors checkpoints on load"),
    ),
)


class TransformersRuntime(Runtime):
    descriptor = DESCRIPTOR

    def version(self) -> RuntimeVersion:
        try:
            found = metadata.version("transformers")
        except metadata.PackageNotFoundError:
            raise RuntimeMissingError("serving.runtime: transformers is not installed",
                                      hint="pip install 'quant-gate[ml]'") from None
        return RuntimeVersion(runtime=DESCRIPTOR.name, version=found,
                              detail={"torch": _version("torch"), "lm_eval": _version("lm_eval")})

    @contextmanager
    def open(self, request: OpenRequest) -> Iterator[ServedModel]:
        from gate.quantize import load_for_eval

        model, tokenizer = load_for_eval(request.model_dir, request.device)
        served = InProcessModel(model, tokenizer, request)
        try:
            yield served
        finally:
            served.close()


class InProcessModel(ServedModel):
    """A model loaded in this process; the evaluation stage's calls go straight to it."""

    runtime = DESCRIPTOR.name

    def __init__(self, model: Any, tokenizer: Any, request: OpenRequest) -> None:
        from gate.evaluate.harness import EvalSettings

        self.model: Any = model
        self.tokenizer: Any = tokenizer
        self.request = request
        self.dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
        self.settings = EvalSettings(batch_size=request.eval_batch_size, device=request.device,
                                     max_length=request.args.max_context, seed=request.seed)
        self.fallback: ServingFallback | None = dequantization(model, request.model_dir)

    def score(self, sources: Sequence[TaskSource], requests: Sequence[MetricRequest],
              items: Mapping[str, Sequence[int]], *, include_dir: Path) -> dict[tuple[str, str], TaskScores]:
        from gate.evaluate.harness import evaluate_tasks

        return evaluate_tasks(self.model, self.tokenizer, sources, requests, settings=self.settings,
                              include_dir=include_dir, items=items)

    def fidelity_reference(self, texts: Path, settings: FidelitySettings) -> object:
        from gate.evaluate.fidelity import build_reference, load_texts, texts_digest, token_windows

        loaded = load_texts(texts)
        windows = token_windows(self.tokenizer, loaded, settings.tokens, settings.window)
        return build_reference(self.model, windows, texts_digest(loaded), top_k=settings.top_k,
                               device=self.request.device)

    def fidelity_compare(self, reference: object, settings: FidelitySettings, *, max_kl: float | None,
                         max_flip_rate: float | None) -> FidelityResult:
        from gate.evaluate.fidelity import FidelityReference, compare

        assert isinstance(reference, FidelityReference), "the transformers runtime compares against its own reference"
        return compare(reference, self.model, settings, device=self.request.device, max_kl=max_kl,
                       max_flip_rate=max_flip_rate)

    def performance(self, settings: PerformanceSettings) -> ModelPerformance:
        from gate.evaluate.performance import measure

        measured = measure(self.model, self.tokenizer, self.request.model_dir, settings, device=self.request.device)
        return measured if self.fallback is None else measured.model_copy(update={"fallback": self.fallback})

    def close(self) -> None:
        self.model = None
        self.tokenizer = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def dequantization(model: Any, model_dir: Path) -> ServingFallback | None:
    """A ``ServingFallback`` when ``model_dir`` declares a ``quantization_config`` but every linear
    layer of the loaded ``model`` holds only plain floating-point tensors (the weights were
    dequantized on load); None for an unquantized model or one that kept quantized storage (torchao
    tensor subclasses, autoawq's packed ``qweight``, bitsandbytes ``Params4bit``, compressed-tensors'
    ``weight_packed``)."""
    import torch

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    qconfig = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(qconfig, dict):
        return None
    linear = dense = 0
    dtypes: set[str] = set()
    for module in model.modules():
        if not (isinstance(module, torch.nn.Linear) or "Linear" in type(module).__name__):
            continue
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if not tensors:
            continue
        linear += 1
        if all(type(t) in (torch.Tensor, torch.nn.Parameter) and t.dtype.is_floating_point for t in tensors):
            dense += 1
            dtypes.update(str(t.dtype).removeprefix("torch.") for t in tensors)
    if linear == 0 or dense < linear:
        return None
    method = str(qconfig.get("quant_method", "unknown"))
    dtype = ", ".join(sorted(dtypes))
    return ServingFallback(
        runtime=DESCRIPTOR.name, quant_method=method, dtype=dtype, dense_layers=dense, linear_layers=linear,
        message=f"the {method} artifact was dequantized on load: all {linear} linear layers compute from dense "
                f"{dtype} weights in the {DESCRIPTOR.name} runtime, so its memory and speed are the dequantized "
                f"model's, not the serving precision's")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
