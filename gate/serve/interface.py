"""Serving runtimes: what a runtime declares about itself, and the contract a served model keeps.

Every runtime module (``transformers.py``, ``vllm.py``, ``llama_cpp.py``) defines one module-level
``DESCRIPTOR`` (plain data, torch-free, like ``gate/quantize/descriptor.py``); the registry
(``gate/serve/__init__.py``), the spec's ``serving.runtime`` enum and its default, the static
runtime x format x hardware rule and ``gate explain`` read those descriptors. The implementing
class is imported only when a runtime is used.

A runtime *opens* a model (baseline or candidate, never both at once) and hands back a
``ServedModel``: the evaluation stage asks it for per-item task scores (``TaskScores`` keyed by
doc id, so the paired comparison keeps its pairing), a fidelity reference (baseline) or a
comparison against one (candidate), and its speed and memory. Faults are ``ServeError``s
(``BackendError``: they block) whose message ends with the server log's last lines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gate.errors import BackendError, InputError

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, ModelPerformance, TaskScores
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import TaskSource

HardwareKind = Literal["cpu", "gpu"]
Role = Literal["baseline", "candidate"]

LOG_TAIL_LINES = 20
"""Lines of a server's log an error quotes."""


# --- errors --------------------------------------------------------------------------------------


def log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty ``lines`` of a log file, indented for an error message ('' when none)."""
    if log is None:
        return ""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line[:300] for line in kept)


class ServeError(BackendError):
    """A serving runtime failed; blocks (exit 1). The message ends with the log's last lines."""

    def __init__(self, message: str, *, hint: str | None = None, log: Path | None = None) -> None:
        self.log = log
        tail = log_tail(log)
        full = f"{message}; last lines of {log}:\n{tail}" if tail else message
        super().__init__(full, hint=hint)
        self.cause = message
        """The message without the log tail (one line)."""


class RuntimeMissingError(ServeError):
    """The runtime (its executable or environment) is not installed, or is the wrong version."""


class PortInUseError(ServeError):
    """Every port tried was taken by another process."""


class ServerStartError(ServeError):
    """The server exited before it became healthy (bad model, unsupported quantization, OOM...)."""


class ServerHangError(ServeError):
    """The server did not become healthy, or did not answer, within its deadline."""


class ServerDiedError(ServeError):
    """The server process exited while the gate was evaluating through it."""


class MissingLogprobsError(ServeError):
    """The runtime cannot return the log-probabilities a task needs."""


class DtypeFallbackError(ServeError):
    """The runtime silently computes in another dtype, or on dequantized weights, than declared."""


class RuntimeInputError(InputError):
    """The spec asks a runtime for something it cannot do (exit 2)."""


# --- descriptors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedFormats:
    """One group of quantization formats a runtime serves, and where."""

    formats: tuple[str, ...]
    """``quantization.format`` names, or a family (``gguf`` covers every ``gguf-*`` type); ``*``: any."""
    hardware: tuple[HardwareKind, ...]
    """Hardware kinds it serves them on."""
    min_compute_capability: float | None = None
    """GPUs below this compute capability have no kernels for them (None: any GPU the runtime runs on)."""
    note: str = ""

    def covers(self, fmt: str, family: str | None) -> bool:
        return "*" in self.formats or fmt in self.formats or (family is not None and family in self.formats)


@dataclass(frozen=True)
class ServingDefaults:
    """Serving arguments a runtime picks when the spec does not set them."""

    dtype: str = "auto"
    """Compute dtype of unquantized tensors: auto (the runtime's choice for the hardware), float32,
    float16, bfloat16."""
    kv_cache_dtype: str = "auto"
    threads: int | None = None
    """CPU threads (None: every core)."""
    gpu_memory_utilization: float | None = None


@dataclass(frozen=True)
class RuntimeDescriptor:
    """One serving runtime: what it serves, on which hardware, from which environment."""

    name: str
    """``serving.runtime``."""
    implementation: str
    """``module:Class`` implementing ``Runtime`` (imported on use)."""
    summary: str
    serves: tuple[ServedFormats, ...]
    """What it serves; a format outside every group is refused statically (QG208)."""
    environment: str
    """Where the runtime runs, in words (``gate explain`` shows it)."""
    version_source: str
    """How the gate finds its version, in words."""
    default_for: tuple[str, ...] = ()
    """``<hardware kind>:<format or family>`` pairs this runtime is the default for, e.g.
    ``cpu:gguf``; ``*`` matches anything (checked in ``default_runtime`` order)."""
    defaults: Callable[[HardwareKind | None, str], ServingDefaults] = field(
        default=lambda _kind, _fmt: ServingDefaults())
    """Serving defaults derived from the target's hardware kind and the format."""
    args: tuple[str, ...] = ()
    """``serving.args`` fields the runtime honours; setting another is refused (QG208)."""
    kv_cache_dtypes: tuple[str, ...] = ()
    """``serving.args.kv_cache_dtype`` values it has (empty: it takes none but ``auto``)."""
    catalog_kernels: tuple[HardwareKind, ...] = ()
    """Hardware kinds on which it serves a format only where the hardware catalog lists fast kernels
    for it (vLLM: its quantization kernels per compute capability are what the catalog records)."""
    loglikelihood: bool = True
    """It returns prompt log-probabilities (multiple-choice and perplexity tasks through lm-eval)."""
    loglikelihood_note: str = ""
    """Why not, when it does not (quoted by the rule and the error)."""
    dequantizes: tuple[ServedFormats, ...] = ()
    """Formats it serves only by dequantizing the weights on load, and where (its memory and speed
    there are the dequantized model's: QG209 warns statically; the run detects it and records it)."""

    def dequantized(self, fmt: str, family: str | None, kind: HardwareKind) -> ServedFormats | None:
        """The group naming ``fmt`` as served dequantized on ``kind`` hardware, or None."""
        return next((g for g in self.dequantizes if g.covers(fmt, family) and kind in g.hardware), None)

    def serving(self, fmt: str, family: str | None, kind: HardwareKind) -> ServedFormats | None:
        """The group serving ``fmt`` on ``kind`` hardware, or None."""
        return next((g for g in self.serves if g.covers(fmt, family) and kind in g.hardware), None)


# --- what a runtime is asked to do ---------------------------------------------------------------


@dataclass(frozen=True)
class ServingArgs:
    """The resolved serving arguments of one run (spec values over the runtime's defaults)."""

    dtype: str = "auto"
    max_context: int | None = None
    kv_cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    threads: int | None = None
    batch: int = 1
    """Concurrent sequences (the target's batch)."""
    start_timeout_s: float = 600.0
    """How long a server may take to become healthy."""
    request_timeout_s: float = 600.0
    """How long one request (or one tool run) may take before the server counts as hung."""

    def key(self) -> dict[str, object]:
        """What changes results (part of the baseline cache key); deadlines do not."""
        return {"dtype": self.dtype, "max_context": self.max_context, "kv_cache_dtype": self.kv_cache_dtype,
                "tensor_parallel_size": self.tensor_parallel_size, "threads": self.threads, "batch": self.batch}


@dataclass(frozen=True)
class OpenRequest:
    """What a runtime needs to serve one model."""

    model_dir: Path
    """A baseline or artifact directory (``config.json``, weights, tokenizer)."""
    role: Role
    args: ServingArgs
    work_dir: Path
    """Scratch space for logs and converted files; the caller removes it."""
    device: str = "cpu"
    cache_dir: Path | None = None
    """The gate's cache (a runtime may cache conversions there, e.g. the baseline's GGUF)."""
    identity: str = ""
    """The model's content identity (the baseline's, from ``prepare_baseline``); keys cached conversions."""
    eval_batch_size: int = 8
    """lm-eval's batch size (``gate run --batch-size``)."""
    seed: int = 0


LOCATION_KEYS = ("environment", "root")
"""``RuntimeVersion.detail`` keys that say where a runtime is installed, not what it computes."""


@dataclass(frozen=True)
class RuntimeVersion:
    """The runtime's identity, recorded in the result's runtime section."""

    runtime: str
    version: str
    """The runtime's own version string (e.g. ``0.3.36 (llama.cpp b1234)``)."""
    detail: Mapping[str, str] = field(default_factory=dict)
    """Further identity (executable path, commit, build flags)."""


# --- the served model ----------------------------------------------------------------------------


class ServedModel(ABC):
    """One model opened by a runtime: what the evaluation stage calls."""

    runtime: str
    """The runtime's name (``transformers``, ``vllm``, ``llama-cpp``)."""
    dtype: str
    """The dtype it computes in, as the runtime reports it."""

    @abstractmethod
    def score(
        self,
        sources: Sequence[TaskSource],
        requests: Sequence[MetricRequest],
        items: Mapping[str, Sequence[int]],
        *,
        include_dir: Path,
    ) -> dict[tuple[str, str], TaskScores]:
        """Per-item scores of the requested (task, metric)s on the given doc ids, keyed by doc id."""

    @abstractmethod
    def fidelity_reference(self, texts: Path, settings: FidelitySettings) -> object:
        """Baseline side: what ``fidelity_compare`` needs (runtime-specific; cacheable when it is a
        ``gate.evaluate.fidelity.FidelityReference``)."""

    @abstractmethod
    def fidelity_compare(self, reference: object, settings: FidelitySettings, *, max_kl: float | None,
                         max_flip_rate: float | None) -> FidelityResult:
        """Candidate side: KL and top-1 flips against the baseline's reference."""

    @abstractmethod
    def performance(self, settings: PerformanceSettings) -> ModelPerformance:
        """Speed and memory of this model inside the runtime."""

    def check_alive(self) -> None:  # noqa: B027 - in-process models have nothing to check
        """Raise ``ServerDiedError`` when the model's server has exited."""


class Runtime(ABC):
    """A serving runtime: finds its environment, opens one model at a time."""

    descriptor: RuntimeDescriptor

    @abstractmethod
    def version(self) -> RuntimeVersion:
        """The installed runtime's identity; ``RuntimeMissingError`` when it is not installed."""

    @abstractmethod
    def open(self, request: OpenRequest) -> AbstractContextManager[ServedModel]:
        """Serve one model; leaving the context stops it (and its whole process group)."""

    def check_version(self, constraint: str | None) -> RuntimeVersion:
        """The installed version, refused when it does not satisfy the spec's ``serving.version``."""
        found = self.version()
        if constraint and not version_satisfies(found.version, constraint):
            raise RuntimeMissingError(
                f"serving.version: {self.descriptor.name} {found.version} is installed; the spec asks for {constraint}",
                hint=f"install a {self.descriptor.name} release matching {constraint} ({self.descriptor.environment}), "
                     "or change serving.version",
            )
        return found


def version_satisfies(version: str, constraint: str) -> bool:
    """PEP 440 specifier check on the version's leading release (``0.3.36 (commit x)`` -> 0.3.36)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    head = version.split()[0] if version.split() else version
    try:
        return Version(head) in SpecifierSet(constraint)
    except (InvalidSpecifier, InvalidVersion):
        return False
