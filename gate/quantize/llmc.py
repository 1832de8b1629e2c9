"""llm-compressor (vLLM project, the maintained successor of AutoAWQ) in its own environment.

llmcompressor 0.14.0.1 needs transformers <= 5.17 and compressed-tensors 0.19.0, so it cannot share
the project's environment (transformers 5.23). ``scripts/make-llmcompressor-env.sh`` creates a
versioned venv (torch 2.13.0 CPU pinned first) under
``~/.cache/quant-gate/envs/llmcompressor-0.14.0.1`` (``$QUANT_GATE_LLMCOMPRESSOR_ENV``); the
backend runs ``llmc_worker.py`` (stdlib + llmcompressor) there as a subprocess with a JSON
request. The worker writes a compressed-tensors checkpoint (``quantization_config`` in
``config.json``) and ``recipe.yaml``; ``load`` reloads it in the project environment through
transformers' compressed-tensors support (the ``compressed-tensors`` package, which co-installs
with transformers 5.23), so the gate's sanity check and evaluation score the artifact itself.

Formats (``quantization.format``) name the compressed-tensors scheme: ``ct-w4a16`` / ``ct-w8a16``
(weight-only int, GPTQ by default or ``options.algorithm: awq``; group size or per channel),
``ct-w8a8-int8`` (SmoothQuant + GPTQ, int8 weights and activations), ``ct-fp8`` (FP8 dynamic; only
where the hardware has FP8, compute capability >= 8.9).

``options.algorithm: ct-rtn`` is the data-free choice for the int formats: llm-compressor's
``QuantizationModifier`` rounds each weight to its nearest level on min-max scales (per channel or
per group; W8A8 adds dynamic per-token int8 activations, computed at serving time), and ``oneshot``
runs without a calibration dataset, so no forward pass runs and no Hessian is solved. The name
carries the ``ct-`` prefix because ``rtn`` is already the algorithm of ``method: rtn`` (the gate's
own dequantized reference), and QG207 pins one backend per algorithm.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from gate import envs
from gate.errors import BackendError
from gate.quantize.descriptor import BackendDescriptor, FormatSpec
from gate.quantize.interface import (
    ModelShape,
    Progress,
    QuantizeOutcome,
    Quantizer,
    QuantizeRequest,
    QuantizerInputError,
)

VERSION = "0.14.0.1"
ENV_VAR = "QUANT_GATE_LLMCOMPRESSOR_ENV"
ENV_SCRIPT = "scripts/make-llmcompressor-env.sh"
"""The three mirror ``gate.envs.ENVS["llmcompressor"]`` (one mechanism for every isolated tool; a test checks)."""
WORKER = Path(__file__).with_name("llmc_worker.py")
DEFAULT_TIMEOUT_S = 7200.0
RTN = "ct-rtn"
"""The data-free algorithm (``QuantizationModifier``, no calibration pass)."""

DESCRIPTOR = BackendDescriptor(
    alias="llmcompressor",
    implementation="gate.quantize.llmc:LlmCompressorBackend",
    summary="llm-compressor 0.14 (GPTQ/AWQ W4A16, W8A16, SmoothQuant+GPTQ W8A8, data-free RTN, FP8) -> compressed-tensors",
    formats=(
        FormatSpec("ct-w4a16", (4,), "NVIDIA GPUs via vLLM (Marlin/Machete kernels); vLLM CPU (weight-only int4)",
                   family="gptq-marlin", algorithms=("gptq", "awq", RTN)),
        FormatSpec("ct-w8a16", (8,), "NVIDIA GPUs via vLLM (Marlin kernels); vLLM CPU (weight-only int8)",
                   family="gptq-marlin", algorithms=("gptq", RTN)),
        FormatSpec("ct-w8a8-int8", (8,), "NVIDIA GPUs with int8 tensor cores (cc >= 7.5) and x86 CPUs via vLLM",
                   algorithms=("smoothquant-gptq", RTN)),
        FormatSpec("ct-fp8", (8,), "NVIDIA Hopper/Ada, compute capability >= 8.9", family="fp8", algorithms=("fp8",)),
    ),
    bits=(4, 8),
    needs_calibration=True,
    requires=("torch", "transformers", "compressed_tensors"),
    environment=f"an isolated venv with llmcompressor=={VERSION} (created by {ENV_SCRIPT}); reloaded in the project "
                "environment with compressed-tensors",
    sanctioned_for=("gpu",),
)

SCHEMES = {"ct-w4a16": "w4a16", "ct-w8a16": "w8a16", "ct-w8a8-int8": "w8a8-int8", "ct-fp8": "fp8-dynamic"}
OPTIONS = ("algorithm", "tool_timeout_s", "dampening", "smoothing_strength", "batch_size")


def env_dir() -> Path:
    """The environment's directory (``gate.envs``: ``$QUANT_GATE_LLMCOMPRESSOR_ENV`` or the versioned cache)."""
    return envs.env_dir(envs.ENVS["llmcompressor"])


def find_env() -> Path:
    """The environment's python, or a blocking error naming the script that creates it."""
    return envs.find(envs.ENVS["llmcompressor"]).python


class LlmCompressorBackend(Quantizer):
    alias = DESCRIPTOR.alias
    supported_bits = DESCRIPTOR.bits
    supports_keep_full_precision = True
    needs_calibration = DESCRIPTOR.needs_calibration
    packages = ("torch", "transformers", "compressed-tensors")
    option_names = OPTIONS

    def validate(self, request: QuantizeRequest, shape: ModelShape) -> None:
        where = request.location
        fmt = DESCRIPTOR.format(request.format)
        if fmt is None:
            raise QuantizerInputError(
                "quantization.format", f"llmcompressor writes {', '.join(SCHEMES)}, not {request.format!r}",
                hint="e.g. format: ct-w4a16", location=where,
            )
        if request.bits not in fmt.bits:
            raise QuantizerInputError("quantization.bits", f"{fmt.name} stores {fmt.bits[0]}-bit weights, not {request.bits}-bit",
                                      hint=f"use bits: {fmt.bits[0]}", location=where)
        algorithm = request.options.get("algorithm")
        if algorithm is not None and algorithm not in fmt.algorithms:
            spelled = " (method: rtn is the gate's own reference; here the data-free algorithm is ct-rtn)" \
                if algorithm == "rtn" else ""
            raise QuantizerInputError(
                "quantization.options.algorithm", f"{algorithm!r} is not available for {fmt.name}{spelled}",
                hint=f"use one of {', '.join(fmt.algorithms)} for {fmt.name} (default {fmt.algorithms[0]}; "
                     f"{RTN} is data-free)" if RTN in fmt.algorithms else f"{fmt.name} is computed with {fmt.algorithms[0]} only",
                location=where,
            )
        if algorithm == RTN:
            given = [k for k in ("dampening", "smoothing_strength") if k in request.options]
            if given:
                raise QuantizerInputError(
                    f"quantization.options.{given[0]}", f"ct-rtn solves nothing, so {given[0]} has no effect",
                    hint=f"remove options.{given[0]}, or use the default algorithm of {fmt.name} ({fmt.algorithms[0]})",
                    location=where,
                )
        if fmt.name in ("ct-w8a8-int8", "ct-fp8") and request.group_size is not None:
            raise QuantizerInputError("quantization.group_size", f"{fmt.name} is per channel", hint="use group_size: -1",
                                      location=where)
        for name, low, high in (("dampening", 0.0, 1.0), ("smoothing_strength", 0.0, 1.0)):
            value = request.options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not low < value <= high):
                raise QuantizerInputError(
                    f"quantization.options.{name}", f"{value!r} is not a number in ({low:g}, {high:g}]",
                    hint="dampening: 0.01 (GPTQ's default fraction of the Hessian's mean diagonal); "
                         "smoothing_strength: 0.8 (SmoothQuant's default)",
                    location=where,
                )
        batch = request.options.get("batch_size")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise QuantizerInputError(
                "quantization.options.batch_size", f"{batch!r} is not a whole number >= 1",
                hint="batch_size: 1 (llm-compressor's default: one calibration sample per forward) or e.g. 16 "
                     "(fewer, larger forwards; each batch is cut to its shortest sample)",
                location=where,
            )
        if batch is not None and algorithm == RTN:
            raise QuantizerInputError("quantization.options.batch_size", "ct-rtn runs no calibration forward",
                                      hint="remove options.batch_size", location=where)
        super().validate(request, shape)

    def validate_calibration(self, request: QuantizeRequest, baseline: Path) -> None:
        """GPTQ solves with each layer's Hessian ``X Xᵀ`` (input size x input size), which has full rank
        only with at least that many calibration tokens; below it the solution rests on the dampening
        alone and the 4-bit weights are noise-fitted. Refused before the worker starts."""
        if algorithm_of(request) not in ("gptq", "smoothquant-gptq"):
            return
        from gate.quantize.checks import matches, read_model_shape
        from gate.quantize.sources import load_tokenizer

        shape = read_model_shape(baseline)
        layers = [lin for lin in shape.linears if lin.name != "lm_head" and not matches(lin.name, request.keep_full_precision)]
        if not layers:
            return
        widest = max(layers, key=lambda lin: lin.in_features)
        tokenizer = load_tokenizer(baseline)
        tokens = sum(len(tokenizer(t, truncation=True, max_length=request.max_seq_len)["input_ids"])
                     for t in request.calibration_texts)
        if tokens < widest.in_features:
            raise QuantizerInputError(
                "calibration.samples", f"the {len(request.calibration_texts)} calibration samples hold {tokens} tokens "
                f"(at most max_seq_len {request.max_seq_len} each); GPTQ needs at least {widest.in_features}, the input "
                f"size of {widest.name}, for a full-rank Hessian",
                hint="add samples (calibration.samples) or raise calibration.max_seq_len, or use options.algorithm: awq "
                     "(ct-w4a16) or ct-rtn (data-free)",
                location=request.location,
            )

    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        from gate.quantize.checks import matches, read_model_shape
        from gate.quantize.llamacpp import run_tool

        python = find_env()
        algorithm = algorithm_of(request)
        scheme = SCHEMES[request.format]
        if algorithm == RTN:
            worker_scheme = f"rtn-{scheme}"
        else:
            worker_scheme = f"{algorithm}-{scheme}" if scheme in ("w4a16", "w8a16") else scheme
        shape = read_model_shape(baseline)
        ignore = sorted({lin.name for lin in shape.linears if matches(lin.name, request.keep_full_precision)} | {"lm_head"})
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".llmc-work-", dir=out_dir.parent) as tmp:
            work = Path(tmp)
            calibration = None  # data-free: the worker runs oneshot without a dataset
            if algorithm != RTN:
                calibration = work / "calibration.json"
                calibration.write_text(json.dumps(list(request.calibration_texts)), encoding="utf-8")
            req: dict[str, Any] = {
                "baseline": str(baseline), "out_dir": str(out_dir), "scheme": worker_scheme,
                "group_size": request.group_size, "ignore": ignore,
                "calibration": None if calibration is None else str(calibration),
                "max_seq_len": request.max_seq_len, "seed": request.seed,
                **{k: request.options[k] for k in ("dampening", "smoothing_strength", "batch_size")
                   if k in request.options},
            }
            (work / "request.json").write_text(json.dumps(req), encoding="utf-8")
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
            env.pop("PYTHONPATH", None)
            try:
                ran = run_tool([python, WORKER, work / "request.json"], what=f"llmcompressor {worker_scheme}",
                               log=work / "worker.log", timeout_s=float(request.options.get("tool_timeout_s", DEFAULT_TIMEOUT_S)),
                               env=env)
                output = ran.output
            except BackendError as exc:
                output = getattr(exc, "output", "")
                report = _last_json(output)
                if report is None:
                    raise
                if report.get("kind") == "oom":
                    raise BackendError("llmcompressor: out of memory while quantizing",
                                       hint="use a machine with more memory, or lower calibration.samples / max_seq_len") from None
                trace = "\n".join("    " + str(line)[:300] for line in report.get("traceback") or [])
                raise BackendError(f"llmcompressor {worker_scheme} failed: {report.get('error')}"
                                   + (f"; the worker's last traceback lines:\n{trace}" if trace else ""),
                                   hint="the cause is in the error above; no artifact was cached") from None
        report = _last_json(output) or {}
        config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
        if "quantization_config" not in config:
            raise BackendError("llmcompressor wrote no quantization_config into config.json")
        params = {"scheme": worker_scheme, "group_size": request.group_size, "ignore": ignore,
                  "samples": 0 if algorithm == RTN else len(request.calibration_texts),
                  "max_seq_len": request.max_seq_len, "seed": request.seed,
                  "batch_size": None if algorithm == RTN else int(request.options.get("batch_size", 1)),
                  "recipe": report.get("recipe"), "device": report.get("device"), "gpu": report.get("gpu"),
                  "peak_gpu_memory_mb": report.get("peak_gpu_memory_mb")}
        versions = {f"{k} (llmcompressor env)": v for k, v in dict(report.get("versions") or {}).items()}
        return QuantizeOutcome(params=params, versions=versions)

    def cache_fields(self) -> dict[str, Any]:
        from gate.quantize.descriptor import code_digest

        lock = env_dir() / "requirements.lock"
        return {"llmcompressor": VERSION, "env": lock.read_text(encoding="utf-8") if lock.is_file() else None,
                "code": code_digest(Path(__file__), WORKER)}  # the worker builds the recipe

    def load(self, path: Path, device: str = "cpu") -> Any:
        """The compressed-tensors checkpoint through transformers (decompressed on load)."""
        from transformers import AutoModelForCausalLM

        from gate.quantize.sources import compute_dtype

        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=compute_dtype(device))
        except Exception as exc:
            raise BackendError(f"{path}: transformers cannot load the compressed-tensors artifact: {type(exc).__name__}: {exc}",
                               hint="install compressed-tensors==0.19.0 in the project environment") from None
        return model.to(device).eval()  # type: ignore[arg-type]


def algorithm_of(request: QuantizeRequest) -> str:
    return DESCRIPTOR.algorithm_of(request.format, request.options) or "gptq"


def _last_json(output: str) -> dict[str, Any] | None:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None

