"""The artifact cache key of every backend holds its name, its versions and its recipe.

``produce_artifact`` builds the key's fields and hands the key to the content cache; the test
records the fields on the way (``cache_key`` wrapped, the real key still computed) and stops
before any quantization, so each backend's key is checked in a second without running it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gate.quantize.artifact as artifact_module
from gate.cache import ContentCache, cache_key
from gate.errors import BackendError
from gate.quantize.registry import DESCRIPTORS
from tests.quantize.helpers import make_repo

SCHEMES: dict[str, dict[str, Any]] = {
    "awq": {"bits": 4, "group_size": 32, "fmt": "awq-gemm"},
    "int8": {"bits": 8, "group_size": None, "fmt": "int8-weight-only"},
    "rtn": {"bits": 4, "group_size": 32, "fmt": "rtn"},
    "gguf": {"bits": 8, "group_size": None, "fmt": "gguf-q8_0", "options": {"imatrix": False}},
    "llmcompressor": {"bits": 4, "group_size": 32, "fmt": "ct-w4a16", "options": {"algorithm": "awq"}},
}


class Stop(Exception):
    pass


def key_fields(root: Path, model: Path, monkeypatch: pytest.MonkeyPatch, method: str, **scheme: Any) -> dict[str, Any]:
    from gate.quantize import prepare_baseline, produce_artifact

    seen: list[dict[str, Any]] = []

    def recording(fields: dict[str, Any]) -> str:
        seen.append(fields)
        return cache_key(fields)

    def stop(*_args: Any, **_kw: Any) -> None:
        raise Stop

    monkeypatch.setattr(artifact_module, "cache_key", recording)
    monkeypatch.setattr(ContentCache, "get_or_build", stop)
    loaded = make_repo(root, model, method=method, samples=64, max_seq_len=32, **scheme)
    baseline = prepare_baseline(loaded, root, root / "cache")
    with pytest.raises(BackendError):  # the Stop, reported as a backend failure: nothing ran
        produce_artifact(loaded, baseline, root, root / "cache", progress=False)
    assert len(seen) == 1
    return seen[0]


def test_the_table_covers_every_registered_backend() -> None:
    assert set(SCHEMES) == set(DESCRIPTORS)


@pytest.mark.parametrize("method", sorted(SCHEMES))
def test_key_names_backend_versions_and_recipe(
    tmp_path: Path, trained_tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from gate.quantize.registry import get_quantizer
    from gate.quantize.sources import package_versions

    model = trained_tiny_llama_dir
    if method == "gguf":
        from tests.quantize.gguf_models import build_tiny_spm_llama
        from tests.quantize.test_gguf import require_llama_cpp

        require_llama_cpp()  # its build is part of the key
        model = build_tiny_spm_llama(tmp_path / "spm")
    scheme = SCHEMES[method]
    fields = key_fields(tmp_path / "repo", model, monkeypatch, method, **scheme)
    quantizer = get_quantizer(method)
    backend = fields["backend"]
    # backend and version
    assert fields["method"] == backend["alias"] == method
    assert backend["packages"] == package_versions(quantizer.packages) and backend["packages"]
    assert {"torch", "transformers"} <= {k for k, v in fields["versions"].items() if v}
    # recipe: every spec field that shapes the weights, and the code that turns them into the call
    assert (fields["bits"], fields["group_size"], fields["format"]) == (scheme["bits"], scheme["group_size"], scheme["fmt"])
    assert fields["options"] == scheme.get("options", {})
    assert fields["calibration"]["samples"] == 64 and len(fields["calibration"]["sha256"]) == 64
    assert fields["calibration"]["max_seq_len"] == 32 and fields["calibration"]["seed"] == 0
    assert len(backend["code"]) == 64
    if method == "gguf":
        from gate.quantize.llamacpp import LLAMA_CPP_VERSION

        assert backend["llama_cpp_python"] == LLAMA_CPP_VERSION and len(backend["sdist_sha256"]) == 64
    if method == "llmcompressor":
        from gate.quantize.llmc import VERSION

        assert backend["llmcompressor"] == VERSION and "env" in backend


def test_the_recipe_code_is_in_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Editing the llm-compressor worker (which builds the recipe) changes the key."""
    import gate.quantize.llmc as llmc
    from gate.quantize.descriptor import code_digest

    before = llmc.LlmCompressorBackend().cache_fields()["code"]
    assert before == code_digest(Path(llmc.__file__), llmc.WORKER)
    edited = tmp_path / "llmc_worker.py"
    edited.write_text(llmc.WORKER.read_text(encoding="utf-8").replace("symmetric=True", "symmetric=False"), encoding="utf-8")
    monkeypatch.setattr(llmc, "WORKER", edited)
    assert llmc.LlmCompressorBackend().cache_fields()["code"] != before


def test_the_algorithm_option_changes_the_key(
    tmp_path: Path, trained_tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    awq = key_fields(tmp_path / "awq", trained_tiny_llama_dir, monkeypatch, "llmcompressor",
                     **SCHEMES["llmcompressor"])
    gptq = key_fields(tmp_path / "gptq", trained_tiny_llama_dir, monkeypatch, "llmcompressor",
                      **{**SCHEMES["llmcompressor"], "options": {"algorithm": "gptq"}})
    assert cache_key(awq) != cache_key(gptq)
    assert {k for k in awq if awq[k] != gptq[k]} == {"options"}
