"""Serving runtimes: the registry (single source of truth for ``serving.runtime``).

Each runtime module declares a ``DESCRIPTOR`` (``interface.RuntimeDescriptor``): what it serves on
which hardware, its environment, its defaults. Runtime modules are torch-free at import, so the
spec schema, ``gate check`` and its rules read the descriptors without importing torch; the
implementing class is imported only when a runtime is used (``get_runtime``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gate.errors import InputError
from gate.serve.interface import HardwareKind, RuntimeDescriptor, ServingArgs, ServingDefaults
from gate.suggest import unknown_choice_message

if TYPE_CHECKING:
    from gate.serve.interface import Runtime

RUNTIME_MODULES: tuple[str, ...] = (
    "gate.serve.transformers",
    "gate.serve.llama_cpp",
    "gate.serve.vllm",
)
"""Modules defining a ``DESCRIPTOR``; adding a runtime is adding its module here. Order matters
for defaults: the first runtime whose ``default_for`` matches is the default."""


def _load_descriptors() -> dict[str, RuntimeDescriptor]:
    found: dict[str, RuntimeDescriptor] = {}
    for name in RUNTIME_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a runtime module not written yet; every other import error is a bug
                continue
            raise
        descriptor = module.DESCRIPTOR
        if not isinstance(descriptor, RuntimeDescriptor):
            raise TypeError(f"{name}.DESCRIPTOR is not a RuntimeDescriptor")
        if descriptor.name in found:
            raise TypeError(f"{name}: runtime {descriptor.name!r} is already registered")
        found[descriptor.name] = descriptor
    return found


DESCRIPTORS: dict[str, RuntimeDescriptor] = _load_descriptors()
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


__all__ = ["DESCRIPTORS", "RUNTIMES", "ServingArgs", "default_args", "default_runtime", "descriptor", "get_runtime"]
