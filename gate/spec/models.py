"""The ModelSpec document (``apiVersion: quant-gate/v1``, ``kind: ModelSpec``).

Only pure-schema checks live here (types, ranges, exactly-one-of). The practice's standards
(SCALE order, sanctioned defaults, tolerance bounds, ...) are policy rules in ``gate.policy``, so
platform teams can tune them and reviewers can waive them.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gate.quantize.registry import METHODS
from gate.serve import RUNTIMES
from gate.suggest import did_you_mean

API_VERSION = "quant-gate/v1"

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")


Int = Annotated[int, Strict()]
"""A whole number; YAML's `true` or `4.0` are refused rather than read as 1 or 4."""
Float = Annotated[float, Strict()]
"""A number (integers are fine); `true` is refused rather than read as 1.0."""
Bool = Annotated[bool, Strict()]
"""true or false; `1` or `"yes"` are refused."""

SPEC_VALUE_ERROR = "spec_value"
"""pydantic error type of the checks below; its context carries ``hint`` and ``key``."""


def invalid(message: str, hint: str, key: str | None = None) -> PydanticCustomError:
    """A validation error whose message, fix hint and (optional) offending sub-key the loader shows."""
    return PydanticCustomError(SPEC_VALUE_ERROR, "{message}", {"message": message, "hint": hint, "key": key})


class _Strict(BaseModel):
    """Base of every spec section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)


class Tier(StrEnum):
    """How much a model matters; policies scope rules and tolerance bounds by tier."""

    critical = "critical"
    standard = "standard"
    internal = "internal"


class ConstraintKind(StrEnum):
    """The bottleneck named in SCALE stage 1."""

    memory = "memory"
    throughput = "throughput"
    cost = "cost"


class Metadata(_Strict):
    name: str = Field(
        description="Unique model name: lowercase letters, digits, '.', '_' and '-'.",
        json_schema_extra={"pattern": NAME.pattern},
    )
    owner: str = Field(description="Owning team (e.g. team-support); reviewers and waivers refer to it.")
    tier: Tier = Field(description="critical | standard | internal; policies scope rules by tier.")
    traffic_share: Float | None = Field(
        default=None, ge=0.0, le=1.0, description="Fraction of the org's inference volume (adoption metrics)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels policies can match on.")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not NAME.match(value):
            raise invalid(
                f"{value!r} is not a valid name",
                "use 1-64 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
            )
        return value


class ModelSource(_Strict):
    """Where the full-precision baseline comes from: exactly one of path, gguf, hub."""

    path: str | None = Field(default=None, description="Local Hugging Face directory (safetensors), relative to the repo.")
    gguf: str | None = Field(default=None, description="Local GGUF file, dequantized on load.")
    hub: str | None = Field(default=None, description="Hugging Face Hub id (org/name); needs a pinned revision.")
    revision: str | None = Field(default=None, description="40-hex commit of the hub repo (never a branch).")
    lockfile: str | None = Field(default=None, description="Committed sha256 lockfile of the baseline's files.")
    trust_remote_code: Bool = Field(default=False, description="Must stay false: remote code is denied.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSource:
        given = [k for k in ("path", "gguf", "hub") if getattr(self, k) is not None]
        if not given:
            raise invalid("no model source given", "add exactly one of `path`, `gguf` or `hub`")
        if len(given) > 1:
            raise invalid(
                f"{' and '.join(f'`{k}`' for k in given)} are both given; a model has exactly one source",
                "keep one of `path`, `gguf` or `hub`",
                key=given[-1],
            )
        if self.revision is not None and self.hub is None:
            raise invalid(
                "`revision` only applies to a `hub` source",
                f"remove `revision`; the `{given[0]}` source is pinned by its `lockfile`",
                key="revision",
            )
        return self

    @property
    def kind(self) -> Literal["path", "gguf", "hub"]:
        if self.path is not None:
            return "path"
        if self.gguf is not None:
            return "gguf"
        return "hub"


class Target(_Strict):
    """The deployment target the constraint is about."""

    hardware: str = Field(description="Hardware catalog name, e.g. nvidia-l4, nvidia-h100, cpu-x86-avx2.")
    memory_gb: Float | None = Field(default=None, gt=0, description="Memory available to the model, GB.")
    context: Int | None = Field(default=None, gt=0, description="Serving context length in tokens.")
    batch: Int | None = Field(default=None, gt=0, description="Concurrent sequences at serving time.")
    tokens_per_s: Float | None = Field(default=None, gt=0, description="Throughput target (throughput-bound specs).")
    cost_per_million_tokens: Float | None = Field(
        default=None, gt=0, description="Cost ceiling in USD per million generated tokens (cost-bound specs)."
    )
    hourly_cost: Float | None = Field(default=None, gt=0, description="Price of the target per hour in USD (cost-bound specs).")


class Constraint(_Strict):
    kind: ConstraintKind = Field(description="memory | throughput | cost")
    statement: str = Field(description="The bottleneck in one sentence.")
    target: Target = Field(description="The deployment target the constraint is about.")


class Quantization(_Strict):
    method: str = Field(
        description=f"Quantizer alias from the registry ({', '.join(METHODS)}).",
        json_schema_extra={"enum": list(sorted(METHODS))},  # editors complete it; the validator explains misses
    )
    bits: Int = Field(ge=1, le=16, description="Weight bit width.")
    group_size: Int | None = Field(default=None, description="Group size for group-wise scales; -1 or null = per channel.")
    format: str = Field(description="Serialized format, e.g. awq-gemm, int8-weight-only, rtn, gguf-q4_k_m.")
    keep_full_precision: list[str] = Field(default_factory=list, description="Module names kept unquantized (mixed precision).")
    justification: str | None = Field(default=None, description="Why this deviates from the sanctioned defaults.")
    qat_plan: str | None = Field(default=None, description="Quantization-aware training plan; required below 4 bits.")
    options: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Backend options (e.g. awq clip_search: false)."
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            options = ", ".join(sorted(METHODS))
            guess = did_you_mean(value, METHODS)
            raise invalid(
                f"unknown method {value!r}",
                (f"did you mean {guess!r}? " if guess else "") + f"Available: {options}",
            )
        return value

    @field_validator("group_size")
    @classmethod
    def _group_size(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value <= 0:
            raise invalid(f"{value} is not a group size", "use a positive integer such as 128, or -1 for per-channel scales")
        return value


class Calibration(_Strict):
    source: str = Field(description="Local JSONL or text file (or a dataset id on runners with internet).")
    sha256: str | None = Field(
        default=None,
        description="sha256 of the calibration file, verified before use.",
        json_schema_extra={"pattern": HEX64.pattern},
    )
    samples: Int = Field(gt=0, description="Number of calibration samples.")
    max_seq_len: Int | None = Field(default=None, gt=0, description="Maximum sequence length in tokens.")
    field: str = Field(default="text", description="JSONL field holding the text.")
    collected: dt.date | None = Field(default=None, description="When the data was collected (freshness).")
    seed: Int = Field(default=0, description="Seed for sample selection.")

    @field_validator("sha256")
    @classmethod
    def _hex64(cls, value: str | None) -> str | None:
        if value is not None and not HEX64.match(value):
            raise invalid(
                f"{_short(value)} is not a sha256",
                "give 64 lowercase hex digits, as printed by `sha256sum FILE`",
            )
        return value


class MetricTolerance(_Strict):
    """One metric and its tolerance. Exactly one tolerance form, which also fixes the direction."""

    task: str = Field(description="lm-eval task name (shipped suite or standard task).")
    metric: str = Field(description="Metric reported by the task, e.g. acc, exact_match, word_perplexity.")
    max_drop: Float | None = Field(default=None, ge=0, description="Higher is better; max absolute drop in points (acc 0.73 = 73 points).")
    max_relative_drop: Float | None = Field(default=None, ge=0, le=1, description="Higher is better; max drop as a fraction of baseline.")
    max_increase: Float | None = Field(default=None, ge=0, description="Lower is better; max absolute increase.")
    max_relative_increase: Float | None = Field(default=None, ge=0, description="Lower is better; max increase as a fraction of baseline.")
    limit: Int | None = Field(default=None, gt=0, description="Evaluate at most this many items.")

    @model_validator(mode="after")
    def _one_form(self) -> MetricTolerance:
        forms = [k for k in TOLERANCE_FORMS if getattr(self, k) is not None]
        if not forms:
            raise invalid(f"no tolerance given for {self.metric!r}", TOLERANCE_HINT)
        if len(forms) > 1:
            raise invalid(
                f"{' and '.join(f'`{k}`' for k in forms)} are both given; a metric has exactly one tolerance",
                "keep one; the form also fixes the direction (drop: higher is better, increase: lower is better)",
                key=forms[-1],
            )
        return self

    @property
    def tolerance_form(self) -> str:
        return next(k for k in TOLERANCE_FORMS if getattr(self, k) is not None)

    @property
    def tolerance(self) -> float:
        value = getattr(self, self.tolerance_form)
        assert value is not None
        return float(value)

    @property
    def higher_is_better(self) -> bool:
        return self.tolerance_form in ("max_drop", "max_relative_drop")


TOLERANCE_FORMS = ("max_drop", "max_relative_drop", "max_increase", "max_relative_increase")
TOLERANCE_HINT = (
    "add one of `max_drop` or `max_relative_drop` (higher is better), "
    "`max_increase` or `max_relative_increase` (lower is better)"
)


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


class StressSuite(StrEnum):
    reasoning = "reasoning"
    instructions = "instructions"
    long_context = "long_context"
    instructions_gen = "instructions_gen"


class Fidelity(_Strict):
    max_kl: Float | None = Field(default=None, ge=0, description="Max mean KL(baseline || quantized) per token, nats.")
    max_flip_rate: Float | None = Field(default=None, ge=0, le=1, description="Max fraction of top-1 next-token flips.")
    texts: str | None = Field(default=None, description="Text set for fidelity (default: the shipped corpus).")
    tokens: Int | None = Field(default=None, gt=0, description="Number of token positions to compare.")


class Quality(_Strict):
    confidence: Float | None = Field(default=None, gt=0.5, lt=1.0, description="Confidence level of the intervals, e.g. 0.95.")
    metrics: list[MetricTolerance] = Field(
        default_factory=list, description="Task metrics, each with its tolerance against the baseline."
    )
    stress: list[StressSuite] = Field(default_factory=list, description="Stress suites: reasoning, instructions, long_context, instructions_gen.")
    fidelity: Fidelity | None = Field(default=None, description="Next-token agreement with the baseline (KL, top-1 flips).")
    sequential: Bool = Field(default=True, description="Stop evaluating once the verdict is decided.")


class Performance(_Strict):
    min_speedup: Float | None = Field(default=None, gt=0, description="Quantized tokens/s over baseline tokens/s.")
    max_memory_gb: Float | None = Field(default=None, gt=0, description="Peak memory of the quantized model.")
    batch_sizes: list[Int] = Field(default_factory=list, description="Batch sizes to measure (default: the target's batch).")


class Rollout(_Strict):
    flag: str | None = Field(default=None, description="Feature flag that routes traffic to the quantized model.")
    traffic_slice: Float | None = Field(default=None, gt=0, le=1, description="Initial fraction of traffic.")
    rollback: Literal["baseline"] | None = Field(default=None, description="Rollback target: the archived full-precision baseline.")


KV_CACHE_DTYPES = ("auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "fp8", "fp8_e4m3",
                   "fp8_e5m2")
"""KV-cache types across the runtimes (llama.cpp's cache types, vLLM's fp8 variants); QG207 checks
that the chosen runtime has the one named."""


class ServingArguments(_Strict):
    """How the runtime serves the model; unset fields take the runtime's default for the target."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = Field(
        default=None, description="Compute dtype of unquantized tensors; for llama-cpp the GGUF type the baseline is "
                                  "served in. auto: the runtime's choice for the hardware (the baseline's own precision).")
    max_context: Int | None = Field(default=None, gt=0, description="Longest sequence the server accepts, tokens "
                                                                    "(default: the target's context).")
    kv_cache_dtype: str | None = Field(default=None, description=f"KV-cache type: {', '.join(KV_CACHE_DTYPES)}.",
                                       json_schema_extra={"enum": list(KV_CACHE_DTYPES)})
    tensor_parallel_size: Int | None = Field(default=None, ge=1, description="GPUs one model is split across (vllm).")
    gpu_memory_utilization: Float | None = Field(default=None, gt=0, le=1,
                                                 description="Fraction of GPU memory the runtime may take (vllm).")
    threads: Int | None = Field(default=None, gt=0, description="CPU threads (llama-cpp; default: every core).")
    start_timeout_s: Float | None = Field(default=None, gt=0, description="Deadline for the server to become healthy "
                                                                          "(default 600 s).")
    request_timeout_s: Float | None = Field(default=None, gt=0, description="Deadline for one request or tool run "
                                                                            "before the server counts as hung (default 600 s).")

    @field_validator("kv_cache_dtype")
    @classmethod
    def _kv(cls, value: str | None) -> str | None:
        if value is not None and value not in KV_CACHE_DTYPES:
            guess = did_you_mean(value, KV_CACHE_DTYPES)
            raise invalid(f"unknown KV-cache type {value!r}",
                          (f"did you mean {guess!r}? " if guess else "") + f"Available: {', '.join(KV_CACHE_DTYPES)}")
        return value


class Serving(_Strict):
    """The runtime the model is judged in: the one that will serve it (default from target and format)."""

    runtime: str = Field(description=f"Serving runtime ({', '.join(RUNTIMES)}). Default when the section is absent: "
                                     "llama-cpp for GGUF, vllm for AWQ/GPTQ/compressed-tensors on GPU, else transformers.",
                         json_schema_extra={"enum": list(RUNTIMES)})
    version: str | None = Field(default=None, description="PEP 440 version constraint of the runtime, e.g. '>=0.3.36'; "
                                                          "the run records the version it used either way.")
    args: ServingArguments = Field(default_factory=ServingArguments, description="Serving arguments.")

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in RUNTIMES:
            guess = did_you_mean(value, RUNTIMES)
            raise invalid(f"unknown runtime {value!r}",
                          (f"did you mean {guess!r}? " if guess else "") + f"Available: {', '.join(RUNTIMES)}")
        return value

    @field_validator("version")
    @classmethod
    def _specifier(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise invalid(f"{_short(value)} is not a version constraint",
                          "write a PEP 440 specifier such as '>=0.3.36' or '==0.32.0'") from None
        return value


class ModelSpec(_Strict):
    """One model's quantization decision, following the SCALE sequence."""

    apiVersion: Literal["quant-gate/v1"] = Field(description="Schema version; only quant-gate/v1.")
    kind: Literal["ModelSpec"] = Field(description="Document type; always ModelSpec.")
    metadata: Metadata = Field(description="Who owns the model and how much it matters.")
    model: ModelSource = Field(description="The full-precision baseline: exactly one of path, gguf, hub.")
    constraint: Constraint | None = Field(default=None, description="SCALE stage 1; denied by policy when missing.")
    quantization: Quantization | None = Field(default=None, description="SCALE stage 2; denied by policy when missing.")
    calibration: Calibration | None = Field(default=None, description="SCALE stage 3; denied by policy when missing.")
    quality: Quality | None = Field(default=None, description="SCALE stage 4: tolerances declared before measuring.")
    performance: Performance | None = Field(default=None, description="Speed and memory requirements of the quantized model.")
    serving: Serving | None = Field(default=None, description="The runtime the model is judged and served in (default "
                                                              "from the target hardware and the format).")
    rollout: Rollout | None = Field(default=None, description="SCALE stage 5.")

