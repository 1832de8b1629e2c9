"""The ``gguf`` package's format tables without the rest of the package.

``import gguf.constants`` runs ``gguf/__init__.py`` first, which imports the package's reader,
writer and quantizers and with them numpy and PyYAML: 98 ms of a 0.42 s ``gate check`` of a GGUF
spec (``python -X importtime``, 2026-12-05), for two tables. ``gguf/constants.py`` itself imports
only ``enum`` and ``typing``, so it is loaded here from the installed package's own file, under a
private module name, without executing the package. Where the whole package is already imported
(the GGUF quantize backend) its module is used instead. The enums are ``IntEnum``: members of
either copy compare and hash as their integer values, so lookups across them agree.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

_PRIVATE_NAME = "gate.weights._gguf_constants"


@cache
def constants() -> ModuleType:
    """``gguf.constants`` (``GGML_QUANT_SIZES``, ``GGMLQuantizationType``, ...)."""
    loaded = sys.modules.get("gguf.constants")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("gguf")  # locates the package; executes nothing
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("the gguf package is not installed (pip install -e .)", name="gguf")
    path = Path(next(iter(package.submodule_search_locations))) / "constants.py"
    spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot load {path}", name="gguf.constants")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PRIVATE_NAME]
        raise
    return module
