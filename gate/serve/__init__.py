"""Serving runtimes: the registry (single source of truth for ``serving.runtime``).

Each runtime module declares a ``DESCRIPTOR`` (``interface.RuntimeDescriptor``): what it serves on
which hardware, its environment, its defaults. Runtime modules are torch-free at import, so the
spec schema, ``gate check`` and its rules read the descriptors without importing torch; the
implementing class is imported only when a runtime is used (``get_runtime``).
"""

from __future__ import annotations

import importlib
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gate.descriptors import load_descriptors
from gate.errors import InputError
from gate.serve.interface import (
    LOCATION_KEYS,
    HardwareKind,
    OpenRequest,
    Role,
    RuntimeDescriptor,
    RuntimeVersion,
    ServedModel,
    ServeError,
    ServingArgs,
    ServingDefaults,
)
from gate.suggest import unknown_choice_message

if TYPE_CHECKING:
    from gate.result_sections import ServingFallback
    from gate.serve.interface import Runtime
    from gate.spec.models import ModelSpec

RUNTIME_MODULES: tuple[str, ...] = (
    "gate.serve.llama_cpp",
    "gate.serve.vllm",
    "gate.serve.transformers",
)
"""Modules defining a ``DESCRIPTOR``; adding a runtime is adding its module here. Order matters
for defaults: the first runtime whose ``default_for`` matches is the default, so transformers
(``*:*``, the fallback) comes last."""


DESCRIPTORS: dict[str, RuntimeDescriptor] = load_descriptors(RUNTIME_MODULES, RuntimeDescriptor, lambda d: d.name, "runtime")
"""runtime name -> descriptor, in ``RUNTIME_MODULES`` order."""

RUNTIMES: tuple[str, ...] = tuple(DESCRIPTORS)


def descriptor(name: str) -> RuntimeDescriptor:
    found = DESCRIPTORS.get(name)
    if found is None:
        raise InputError(unknown_choice_message("runtime", name, DESCRIPTORS),
                         hint="set serving.runtime to a registered runtime")
    return found


def default_runtime(kind: HardwareKind | None, fmt: str, family: str | None) -> str:
    """The runtime a spec that declares none is served by: the first descriptor whose
    ``default_for`` matches ``<kind>:<format or family>`` (GGUF -> llama-cpp; AWQ, GPTQ,
    compressed-tensors on GPU -> vllm); transformers otherwise."""
    for d in DESCRIPTORS.values():
        for entry in d.default_for:
            want_kind, _, want_fmt = entry.partition(":")
            kind_ok = want_kind == "*" or want_kind == kind
            fmt_ok = want_fmt == "*" or want_fmt == fmt or (family is not None and want_fmt == family)
            if kind_ok and fmt_ok:
                return d.name
    return "transformers"


def default_args(name: str, kind: HardwareKind | None, fmt: str) -> ServingDefaults:
    return descriptor(name).defaults(kind, fmt)


def get_runtime(name: str) -> Runtime:
    """The runtime implementation for ``name``, imported now."""
    target = descriptor(name).implementation
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    runtime: Runtime = cls()
    return runtime


@dataclass(frozen=True)
class ServingChoice:
    """The runtime a spec is judged in and its resolved arguments."""

    runtime: str
    declared: bool
    """The spec has a ``serving`` section (False: the default for its target and format)."""
    version: str | None
    """The spec's version constraint, if any."""
    args: ServingArgs


def format_family(fmt: str) -> str | None:
    from gate.plan.kernels import FORMATS

    info = FORMATS.get(fmt)
    return info.family if info else None


def choose_serving(spec: ModelSpec, kind: HardwareKind | None) -> ServingChoice:
    """``spec.serving`` over the runtime's defaults for the target's hardware kind and the format."""
    fmt = spec.quantization.format if spec.quantization else ""
    serving = spec.serving
    name = serving.runtime if serving else default_runtime(kind, fmt, format_family(fmt))
    base = default_args(name, kind, fmt)
    given = serving.args if serving else None
    target = spec.constraint.target if spec.constraint else None

    def pick(field: str, default: object) -> object:
        value = getattr(given, field, None) if given is not None else None
        return default if value is None else value

    args = ServingArgs(
        dtype=str(pick("dtype", base.dtype)),
        max_context=pick("max_context", target.context if target else None),  # type: ignore[arg-type]
        kv_cache_dtype=str(pick("kv_cache_dtype", base.kv_cache_dtype)),
        tensor_parallel_size=int(pick("tensor_parallel_size", 1)),  # type: ignore[call-overload]
        gpu_memory_utilization=pick("gpu_memory_utilization", base.gpu_memory_utilization),  # type: ignore[arg-type]
        threads=pick("threads", base.threads),  # type: ignore[arg-type]
        batch=(target.batch if target and target.batch else 1),
        start_timeout_s=float(pick("start_timeout_s", 600.0)),  # type: ignore[arg-type]
        request_timeout_s=float(pick("request_timeout_s", 600.0)),  # type: ignore[arg-type]
    )
    return ServingChoice(runtime=name, declared=serving is not None, version=serving.version if serving else None,
                       args=args)


@dataclass(frozen=True)
class ServingSession:
    """One run's serving runtime: checked once, then opened for the baseline and for the candidate
    (never both at once), with the same runtime and arguments for both."""

    choice: ServingChoice
    runtime: Runtime
    version: RuntimeVersion
    work_dir: Path
    """Run-scoped scratch (logs, per-document files); the caller removes it."""
    cache_dir: Path
    device: str
    eval_batch_size: int = 8
    seed: int = 0

    def open(self, model_dir: Path, role: Role, identity: str = "") -> AbstractContextManager[ServedModel]:
        return self.runtime.open(OpenRequest(model_dir=model_dir, role=role, args=self.choice.args,
                                             work_dir=self.work_dir, device=self.device, cache_dir=self.cache_dir,
                                             identity=identity, eval_batch_size=self.eval_batch_size, seed=self.seed))

    def cache_identity(self) -> dict[str, str]:
        """What baseline results depend on besides the library stack (part of their cache keys):
        the runtime, its version and arguments, and the gate's serving code (how scores are read
        from the runtime changes what they mean)."""
        return {"serving": self.choice.runtime, "serving_version": self.version.version,
                "serving_args": json.dumps(self.choice.args.key(), sort_keys=True), "serving_code": serving_code(),
                "serving_detail": json.dumps(self.kernel_detail(), sort_keys=True)}

    def kernel_detail(self) -> dict[str, str]:
        """The runtime's self-description minus where it is installed: a baseline scored with other
        kernels (vLLM's AMX ones, torch.compile) is not reused for a candidate served without them."""
        return {k: v for k, v in self.version.detail.items() if k not in LOCATION_KEYS}

    def record(self, dtype: str | None = None, fallback: ServingFallback | None = None) -> dict[str, object]:
        """The result's ``runtime.serving`` section (``gate.result.ServingRuntime`` fields); ``fallback``:
        the candidate's ``ServingFallback`` when it was computed on dequantized weights."""
        args = {k: v for k, v in self.choice.args.key().items() if v is not None}
        return {"name": self.choice.runtime, "version": self.version.version, "args": args, "dtype": dtype,
                "fallback": fallback, "detail": dict(self.version.detail)}


def serving_code() -> str:
    """sha256 over the sources of ``gate/serve/`` (part of baseline cache keys)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def start_session(spec: ModelSpec, kind: HardwareKind | None, *, work_dir: Path, cache_dir: Path, device: str,
                  eval_batch_size: int = 8, seed: int = 0) -> ServingSession:
    """Resolve the spec's runtime and check it is installed at an acceptable version."""
    choice = choose_serving(spec, kind)
    runtime = get_runtime(choice.runtime)
    version = runtime.check_version(choice.version)
    work_dir.mkdir(parents=True, exist_ok=True)
    return ServingSession(choice=choice, runtime=runtime, version=version, work_dir=work_dir, cache_dir=cache_dir,
                          device=device, eval_batch_size=eval_batch_size, seed=seed)


def installed_serving(name: str | None) -> dict[str, str]:
    """``{"serving": name, "serving_version": <installed>}`` for re-validation ({} for no runtime)."""
    if not name or name not in DESCRIPTORS:
        return {}
    try:
        version = get_runtime(name).version().version
    except ServeError:
        version = "not installed"
    return {"serving": name, "serving_version": version}


__all__ = ["DESCRIPTORS", "RUNTIMES", "ServingArgs", "ServingChoice", "ServingSession", "choose_serving", "default_args", "default_runtime", "descriptor", "format_family", "get_runtime", "installed_serving", "start_session"]
