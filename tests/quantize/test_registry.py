from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_each_algorithm_has_one_maintained_backend_and_autoawq_is_legacy() -> None:
    from gate.quantize.registry import ALGORITHMS, DESCRIPTORS, default_pins

    pins = dict(default_pins())
    assert pins["awq"] == "llmcompressor" and pins["gptq"] == "llmcompressor" and pins["llama.cpp"] == "gguf"
    assert set(pins) == set(ALGORITHMS)  # every algorithm has a maintained backend
    assert DESCRIPTORS["awq"].legacy and DESCRIPTORS["awq"].algorithm_of("awq-gemm", {}) == "awq"
    llmc = DESCRIPTORS["llmcompressor"]
    assert llmc.algorithm_of("ct-w4a16", {}) == "gptq" and llmc.algorithm_of("ct-w4a16", {"algorithm": "awq"}) == "awq"
    assert llmc.algorithm_of("ct-w8a8-int8", {"algorithm": "awq"}) == "smoothquant-gptq"  # the backend refuses that
    assert llmc.algorithm_of("awq-gemm", {}) is None


def test_gate_explain_says_which_backend_is_sanctioned_for_which_target() -> None:
    from gate.commands.explain import explain_text

    assert explain_text("backends") == (
        "Quantization backends: the built-in defaults (policies change them: QG202 sanctions method and bits,\n"
        "QG207 pins the backend per algorithm; `gate explain METHOD` describes one backend)\n"
        "\n"
        "Default backends per target kind:\n"
        "  gpu: int8 (int8-weight-only, llm-int8); llmcompressor (ct-w4a16, ct-w8a16, ct-w8a8-int8, ct-fp8)\n"
        "  cpu: int8 (int8-weight-only, llm-int8); gguf (gguf-q4_k_m, gguf-q5_k_m, gguf-q6_k, gguf-q8_0, gguf-iq4_xs, "
        "gguf-iq4_nl, gguf-iq3_m, gguf-iq3_xxs, gguf-iq2_m)\n"
        "\n"
        "Sanctioned backend per algorithm (QG207, every target):\n"
        "  awq: method: llmcompressor, format: ct-w4a16, options: {algorithm: awq}; legacy, warned: method: awq\n"
        "  int8-rtn: method: int8, format: int8-weight-only\n"
        "  llm-int8: method: int8, format: llm-int8\n"
        "  rtn: method: rtn, format: rtn\n"
        "  llama.cpp: method: gguf, format: gguf-q4_k_m\n"
        "  gptq: method: llmcompressor, format: ct-w4a16\n"
        "  ct-rtn: method: llmcompressor, format: ct-w4a16, options: {algorithm: ct-rtn}\n"
        "  smoothquant-gptq: method: llmcompressor, format: ct-w8a8-int8\n"
        "  fp8: method: llmcompressor, format: ct-fp8\n"
    )
    awq = explain_text("awq").splitlines()
    assert awq[2] == (
        "Status: legacy (its library is archived), kept behind its interface; awq is sanctioned in llmcompressor "
        "(format: ct-w4a16, options: {algorithm: awq}), so QG207 warns on method: awq."
    )
    llmc = explain_text("llmcompressor").splitlines()
    assert llmc[2:4] == [
        "Status: the gate's default backend for gpu targets.",
        "Sanctioned backend (QG207) for: gptq, awq, ct-rtn, smoothquant-gptq, fp8, on every target unless a policy pins another",
    ]
    assert "  ct-w4a16: 4-bit (gptq or options.algorithm: awq or options.algorithm: ct-rtn); fast on NVIDIA GPUs via vLLM (Marlin/Machete kernels); " \
           "vLLM CPU (weight-only int4)" in llmc


def test_a_policy_pin_names_a_known_algorithm_and_backend(tmp_path: Path) -> None:
    from gate.policy.loading import build_policy_set
    from gate.policy.sources import files_from_dir

    (tmp_path / "p.yaml").write_text(
        "apiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: t}\nrules:\n  - rule: QG207\n    params:\n"
        "      pins: [{algorithm: awq, target: gpu, backend: autoawq}]\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        build_policy_set(files_from_dir(tmp_path))
    assert str(info.value) == (
        f"{tmp_path}/p.yaml:7:44: rules[0].params.pins[0].backend: Unknown backend 'autoawq'. Did you mean 'awq'? "
        "Available: awq, gguf, int8, llmcompressor, rtn\n"
        "  Hint: see `gate explain QG207` and `gate policy rules` for the parameters"
    )
