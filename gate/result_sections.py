"""The typed sections of the result contract (schema 2): criteria, artifact, measurements, runtime.

``gate.result`` re-exports every name here; import them from there. Everything is a frozen
pydantic model of plain fields (no ``dict[str, Any]``: a test walks the models). Stage outputs
(``FidelityResult``, ``PerformanceResult``, the quantizer's ``Artifact``, the verdict's
``MetricResult``) are converted into these at assembly time by ``gate.result_build``, so this
module imports no stage above the memory plan and stays torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, JsonValue, TypeAdapter, model_validator

from gate.frozen import Frozen as _Frozen  # the one definition of the frozen base

Evidence = dict[str, JsonValue]
"""A finding's structured evidence, rule by rule a different shape (a scan's globals, a memory
breakdown, a lockfile change): reported verbatim, so typed as JSON values rather than fifteen
per-rule models; nothing in the gate decides on it."""
_EVIDENCE: TypeAdapter[Evidence] = TypeAdapter(Evidence)


def evidence(detail: Mapping[str, object] | None) -> Evidence:
    """A rule's evidence as JSON values (raises pydantic's ``ValidationError`` on anything else, e.g. a set)."""
    return _EVIDENCE.validate_python(dict(detail or {}))


# ---- how fidelity and performance were measured (the judgement is in the criteria) ---------------


class FidelityMeasurement(_Frozen):
    """Where the fidelity criteria's token positions come from."""

    texts: str
    """The text set (task name or file)."""
    texts_sha256: str
    documents: int
    tokens: int
    confidence: float
    top_k: int
    """Baseline distribution kept as its top-k tokens plus one tail bucket; the KL is that of the
    coarsened distributions (a lower bound of the full KL)."""
    tail_mass_mean: float
    method: str
    undecided: str | None = None
    """Why the documents cannot support a decision (too few, no spread), when they cannot."""


class ServingFallback(_Frozen):
    """The runtime computed a quantized artifact on dequantized weights, not in its stored precision
    (e.g. autoawq int4 dequantized to float32 by the in-process transformers runtime on CPU): its
    accuracy is the quantized weights' (their values), but its memory and speed are the dequantized
    model's, not the serving numbers. Detected from what the load produced (the linear layers' tensors)."""

    kind: Literal["dequantized"] = "dequantized"
    runtime: str
    """The runtime that fell back (``transformers``)."""
    quant_method: str
    """``config.json``'s ``quantization_config.quant_method`` (what the artifact stores)."""
    dtype: str
    """The dtype the dense weights were computed in."""
    dense_layers: int
    """Linear layers whose tensors are all plain floating point after loading."""
    linear_layers: int
    message: str
    """One line, for reports and criteria notes."""


class ModelPerformance(_Frozen):
    """Speed and memory of one model on the machine the gate ran on."""

    device: str
    dtype: str = ""
    """Floating dtype the model computed in (float32 on CPU, float16 on CUDA); empty in results
    cached before it was recorded."""
    prompt_tokens: int
    decode_tokens: int
    prefill_ms_p50: float
    prefill_ms_p95: float
    decode_ms_per_token_p50: float
    decode_ms_per_token_p95: float
    tokens_per_s: dict[str, float]
    """Batch size (as a string key) -> generated tokens per second."""
    peak_memory_bytes: int
    memory_kind: str
    """cuda_max_allocated (GPU) or rss (CPU: peak resident set of the process while measuring)."""
    parameter_bytes: int
    """Bytes of the model's parameters and buffers as loaded."""
    disk_bytes: int
    """Size of the model directory on disk."""
    warmup: int
    repeats: int
    fallback: ServingFallback | None = None
    """Set when these figures were measured on dequantized weights (not the serving precision's)."""


class PerformanceMeasurement(_Frozen):
    """Baseline and candidate speed and memory behind the memory, throughput and cost criteria."""

    constraint: str | None
    """memory | throughput | cost (the spec's constraint kind)."""
    baseline: ModelPerformance
    candidate: ModelPerformance
    baseline_cached: bool = False
    """True when the baseline figures came from the baseline cache (same machine and stack)."""


# ---- the artifact and its provenance ------------------------------------------------------------


class ArtifactFile(_Frozen):
    path: str
    """Relative to the artifact directory."""
    sha256: str
    size: int


class ArtifactCalibration(_Frozen):
    """The calibration data the artifact was produced with."""

    source: str
    sha256: str
    samples: int
    available: int | None = None
    """Non-empty samples in the file."""
    field: str | None = None
    seed: int | None = None
    max_seq_len: int | None = None
    tokens_total: int | None = None
    """Tokens of the selected samples after truncation."""


class ArtifactSanity(_Frozen):
    """Baseline vs quantized perplexity on the sanity row (a broken artifact never reaches evaluation)."""

    baseline_perplexity: float
    quantized_perplexity: float
    ratio: float
    max_ratio: float
    passed: bool


class ArtifactRecord(_Frozen):
    """The quantized artifact and how it was made (provenance)."""

    path: str
    sha256: str
    """sha256 of the artifact's lockfile (identifies every file's content)."""
    cache_key: str
    cache_hit: bool
    """True when the artifact came from the cache and no quantization ran."""
    method: str
    """``quantization.method`` (the backend alias)."""
    backend: str | None = None
    """The implementation that produced it (``module:Class``)."""
    bits: int
    group_size: int | None
    format: str
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    """The exact parameters (recipe) given to the backend library."""
    versions: dict[str, str] = Field(default_factory=dict)
    """Runtime and backend library versions the artifact was produced with."""
    calibration: ArtifactCalibration | None = None
    sanity: ArtifactSanity | None = None
    baseline_identity: str
    files: list[ArtifactFile] = Field(default_factory=list)
    """Every file of the artifact with its sha256 (empty in results read from schema 1)."""
    quantization_config: dict[str, JsonValue] | None = None
    """``config.json``'s ``quantization_config`` as the library wrote it (None: none, e.g. GGUF)."""
    seconds: float
    """Wall time of this run's quantize stage (a cache hit is near zero)."""
    quantize_seconds: float
    """Wall time of the original quantization."""


# ---- the runtime --------------------------------------------------------------------------------


class Hardware(_Frozen):
    device: str = "cpu"
    """cpu | cuda"""
    cpu: str | None = None
    gpu: str | None = None
    cuda: str | None = None
    compute_capability: str | None = None
    driver: str | None = None


class ServingRuntime(_Frozen):
    """The serving runtime the models were evaluated in (``gate run`` through a served model)."""

    name: str
    """transformers | vllm | llama-cpp"""
    version: str | None = None
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """The serving arguments the gate started it with."""
    dtype: str | None = None
    """The dtype the server reports it loaded the model in."""
    quantization: str | None = None
    """The quantization method the server reports (None: it reports none)."""
    fallback: ServingFallback | None = None
    """The candidate was computed on dequantized weights (memory and speed criteria then are not the
    serving numbers: see ``docs/serve.md``)."""
    detail: dict[str, str] = Field(default_factory=dict)
    """What the runtime says of itself beyond its version: e.g. vLLM's distribution, compilation mode
    and whether its AMX kernels were on; llama.cpp's commit and how its build treats AMX; the
    library versions of the runtime's own environment."""


HARDWARE_KEYS = tuple(Hardware.model_fields)


class RuntimeInfo(_Frozen):
    """Library and hardware versions a result was produced on, and the serving runtime."""

    python: str | None = None
    platform: str | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    """Tracked package -> version (torch, transformers, lm_eval, ...)."""
    hardware: Hardware | None = None
    """None when no model ran (``gate check``)."""
    serving: ServingRuntime | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: object) -> object:
        """Schema 1 wrote one flat ``name -> version`` mapping; read it (and ``runtime_versions()``) as is."""
        if not isinstance(data, dict) or not data or any(not isinstance(v, str) for v in data.values()):
            return data
        flat = dict(data)
        hardware = {k: flat.pop(k) for k in HARDWARE_KEYS if k in flat}
        return {"python": flat.pop("python", None), "platform": flat.pop("platform", None),
                "libraries": flat, "hardware": hardware or None}

    def flat(self) -> dict[str, str]:
        """One ``name -> version`` mapping (schema 1's shape; the registry compares runs on it)."""
        out = {k: v for k, v in (("python", self.python), ("platform", self.platform)) if v is not None}
        out.update(self.libraries)
        if self.hardware is not None:
            out.update({k: v for k, v in self.hardware.model_dump().items() if v is not None})
        if self.serving is not None:
            out["serving"] = self.serving.name
            if self.serving.version is not None:
                out["serving_version"] = self.serving.version
        return out
