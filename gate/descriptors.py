"""The one loader behind every descriptor registry (quantizer backends, serving runtimes).

A registry names the modules that each declare a ``DESCRIPTOR``; loading imports them in order,
checks each is the registry's descriptor type and that no key is registered twice. Descriptor
modules are torch-free at import, so this runs inside ``gate check``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TypeVar

D = TypeVar("D")


def load_descriptors(modules: Iterable[str], kind: type[D], key: Callable[[D], str], what: str) -> dict[str, D]:
    """``key(descriptor) -> descriptor`` in ``modules`` order; a wrong type or a repeated key is a
    programming error (``TypeError`` naming the module), raised at import of the registry."""
    found: dict[str, D] = {}
    for name in modules:
        descriptor = importlib.import_module(name).DESCRIPTOR
        if not isinstance(descriptor, kind):
            raise TypeError(f"{name}.DESCRIPTOR is not a {kind.__name__}")
        registered = key(descriptor)
        if registered in found:
            raise TypeError(f"{name}: {what} {registered!r} is already registered")
        found[registered] = descriptor
    return found
