"""The hardware catalog: the shipped file agrees with DOMAIN.md's format x hardware table, unknown
names get "did you mean", and policy additions are validated like the built-in entries."""

from __future__ import annotations

import pytest

from gate.errors import InputError
from gate.plan.catalog import load_catalog, parse_catalog
from gate.plan.kernels import FORMATS, formats_of, method_for


def nvidia() -> list:
    return [h for h in load_catalog().entries.values() if h.vendor == "nvidia"]


def test_shipped_catalog_loads_and_names_are_sorted() -> None:
    catalog = load_catalog()
    assert catalog.names() == sorted(catalog.names())
    assert {"nvidia-l4", "nvidia-h100", "nvidia-t4", "cpu-x86-avx2", "apple-m2"} <= set(catalog.names())
    for hw in catalog.entries.values():
        assert set(hw.fast_formats) <= set(FORMATS)
        assert hw.memory_gb > 0


@pytest.mark.parametrize(("fmt", "min_cc"), [("awq-gemm", (7, 5)), ("awq-gemv", (7, 5)), ("awq-marlin", (8, 0)),
                                             ("gptq-marlin", (8, 0)), ("fp8", (8, 9))])
def test_gpu_kernels_follow_compute_capability(fmt: str, min_cc: tuple[int, int]) -> None:
    for hw in nvidia():
        assert hw.capability is not None
        if hw.capability < min_cc:
            assert not hw.has_fast_kernels(fmt), f"{hw.name} ({hw.compute_capability}) lists {fmt}"
        elif fmt != "fp8" or hw.capability >= (8, 9):
            assert hw.has_fast_kernels(fmt), f"{hw.name} ({hw.compute_capability}) misses {fmt}"


def test_cpu_targets_have_no_gpu_formats() -> None:
    gpu_only = {"awq-gemm", "awq-gemv", "awq-marlin", "gptq", "gptq-marlin", "fp8", "llm-int8"}
    for hw in load_catalog().entries.values():
        if hw.kind == "cpu":
            assert hw.isa is not None
            assert not gpu_only & set(hw.fast_formats), hw.name
            assert hw.has_fast_kernels("gguf")


def test_unknown_hardware_did_you_mean() -> None:
    with pytest.raises(InputError) as info:
        load_catalog().get("nvidia-l5")
    names = ", ".join(load_catalog().names())
    assert str(info.value) == (
        f"Unknown hardware 'nvidia-l5'. Did you mean 'nvidia-l4'? Available: {names}\n"
        "  Hint: use a catalog name, or add the target to a policy's `hardware:` section"
    )
    assert load_catalog().find("nvidia-l5") is None


def test_policy_extension_adds_and_replaces() -> None:
    base = load_catalog()
    extended = base.extended({
        "acme-npu": {"kind": "gpu", "vendor": "acme", "memory_gb": 32, "isa": "acme1", "fast_formats": ["int8-weight-only"]},
        "nvidia-l4": {"kind": "gpu", "vendor": "nvidia", "memory_gb": 20, "compute_capability": "8.9"},
    })
    assert extended.get("acme-npu").has_fast_kernels("int8-weight-only")
    assert extended.get("nvidia-l4").memory_gb == 20
    assert base.get("nvidia-l4").memory_gb == 24  # the built-in catalog is untouched


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "gpu", "vendor": "acme", "memory_gb": 8, "fast_formats": ["awk-gemm"]},
     "hardware entry 'x': fast_formats: Unknown format 'awk-gemm'. Did you mean 'awq-gemm'? Available: "
     + ", ".join(sorted(FORMATS))),
    ({"kind": "gpu", "vendor": "nvidia", "memory_gb": 8},
     "hardware entry 'x': entry: an NVIDIA GPU needs `compute_capability` (e.g. '8.9')"),
    ({"kind": "cpu", "vendor": "intel", "memory_gb": 8},
     "hardware entry 'x': entry: a CPU target needs `isa` (e.g. avx2, avx512, arm64-neon)"),
    ({"kind": "gpu", "vendor": "acme", "memory_gb": 0},
     "hardware entry 'x': memory_gb: Input should be greater than 0"),
    ({"kind": "tpu", "vendor": "g", "memory_gb": 8},
     "hardware entry 'x': kind: Input should be 'gpu' or 'cpu'"),
    ({"kind": "gpu", "vendor": "nvidia", "memory_gb": 8, "compute_capability": "9"},
     "hardware entry 'x': entry: compute_capability '9' is not MAJOR.MINOR (e.g. '8.9')"),
])
def test_bad_policy_entries(fields: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        load_catalog().extended({"x": fields}, source="policies/org.yaml")
    assert info.value.message == message
    assert str(info.value.location) == "policies/org.yaml"


def test_catalog_document_shape() -> None:
    with pytest.raises(InputError) as info:
        parse_catalog({"version": 2, "hardware": {}}, "h.yaml")
    assert str(info.value) == "h.yaml: hardware catalog version 2 is not supported\n  Hint: use `version: 1`"
    with pytest.raises(InputError) as info:
        parse_catalog({"version": 1}, "h.yaml")
    assert str(info.value) == "h.yaml: hardware catalog must be a mapping with a `hardware:` section"


def test_formats_and_methods() -> None:
    assert formats_of("awq") == ["awq-gemm", "awq-gemv", "awq-marlin"]
    assert formats_of("int8") == ["int8-weight-only", "llm-int8"]
    assert method_for("rtn") == "rtn" and method_for("gguf") is None
