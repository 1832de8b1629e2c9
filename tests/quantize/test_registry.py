from __future__ import annotations

import subprocess
import sys

import pytest

from gate.errors import InputError, MissingExtraError
from gate.quantize import registry
from gate.quantize.interface import Quantizer
from gate.quantize.registry import METHODS, get_quantizer


def test_every_alias_resolves_to_a_quantizer() -> None:
    for alias in METHODS:
        backend = get_quantizer(alias)
        assert isinstance(backend, Quantizer)
        assert backend.alias == alias


def test_unknown_alias_suggests_the_closest() -> None:
    with pytest.raises(InputError) as info:
        get_quantizer("awk")
    assert info.value.message == "Unknown method 'awk'. Did you mean 'awq'? Available: awq, gguf, int8, llmcompressor, rtn"


def test_missing_library_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.EXTRAS, "rtn", ("torch", "definitely_not_installed_pkg"))
    with pytest.raises(MissingExtraError) as info:
        get_quantizer("rtn")
    assert str(info.value) == (
        "quantization method 'rtn' needs the Python package 'definitely_not_installed_pkg', which is not installed\n"
        "  Hint: pip install 'quant-gate[ml]' (install torch first with an explicit pin, e.g. pip install torch==2.13.0)"
    )


def test_light_imports_do_not_pull_torch() -> None:
    code = (
        "import sys, gate.cli, gate.quantize, gate.quantize.registry, gate.cache, gate.example, gate.commands.example;"
        "gate.cli.build_parser();"
        "heavy = [m for m in ('torch', 'transformers', 'awq', 'torchao', 'lm_eval') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
