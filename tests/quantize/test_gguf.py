"""The GGUF backend: descriptors, pre-flight checks, and real llama.cpp runs on a tiny Llama.

Tests marked with ``llama_cpp`` need the build of ``scripts/build-llama-cpp.sh``; they skip with
the reason when it is absent, except under ``CI=true`` where a missing build fails them (CI
builds it first, ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from gate.errors import BackendError, InputError
from gate.quantize.gguf import DESCRIPTOR, GgufBackend, imatrix_text, tensor_overrides
from gate.quantize.interface import LinearShape, ModelShape, QuantizeRequest, QuantizerInputError
from gate.quantize.llamacpp import BUILD_SCRIPT, ENV_VAR, LLAMA_CPP_VERSION, TOOLS, build_dir, find_llama_cpp
from tests.needs import unavailable
from tests.quantize.helpers import make_repo

REPO = Path(__file__).resolve().parents[2]


def require_llama_cpp() -> None:
    try:
        find_llama_cpp()
    except BackendError as exc:
        unavailable(f"llama.cpp build missing ({exc.message}); run {BUILD_SCRIPT}")


def shape(in_features: int = 256, model_type: str = "llama") -> ModelShape:
    names = ["q_proj", "k_proj", "v_proj", "o_proj"]
    linears = [LinearShape(f"model.layers.{i}.self_attn.{n}", in_features, in_features) for i in range(2) for n in names]
    linears += [LinearShape(f"model.layers.{i}.mlp.down_proj", 2 * in_features, in_features) for i in range(2)]
    linears.append(LinearShape("lm_head", in_features, 256))
    return ModelShape(model_type=model_type, linears=tuple(linears), hidden_size=in_features, num_layers=2)


def request(fmt: str = "gguf-q4_k_m", bits: int = 4, group: int | None = None, **kw: object) -> QuantizeRequest:
    return QuantizeRequest(method="gguf", bits=bits, group_size=group, format=fmt, **kw)  # type: ignore[arg-type]


# --- descriptors: one declaration read by the registry, kernel check, plan and schema -----------------


def test_the_descriptor_feeds_formats_catalog_memory_and_schema() -> None:
    from gate.plan.catalog import load_catalog
    from gate.plan.kernels import FORMATS, bits_per_weight, formats_of, method_for
    from gate.spec.models import ModelSpec

    names = [f.name for f in DESCRIPTOR.formats]
    assert names == ["gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k", "gguf-q8_0", "gguf-iq4_xs", "gguf-iq4_nl",
                     "gguf-iq3_m", "gguf-iq3_xxs", "gguf-iq2_m"]
    assert formats_of("gguf") == names and method_for("gguf-q6_k") == "gguf"
    assert FORMATS["gguf-q8_0"].family == "gguf" and bits_per_weight("gguf-q8_0") == 8.5
    assert bits_per_weight("awq-gemm") is None and method_for("gguf") is None  # the family name stays external
    catalog = load_catalog()
    assert catalog.get("cpu-x86-avx2").has_fast_kernels("gguf-iq4_xs") and catalog.get("apple-m2").has_fast_kernels("gguf-q8_0")
    assert not catalog.get("nvidia-h100").has_fast_kernels("gguf-q4_k_m")
    enum = ModelSpec.model_json_schema()["$defs"]["Quantization"]["properties"]["method"]["enum"]
    assert "gguf" in enum


def test_memory_plan_counts_gguf_bits_per_weight_with_no_separate_scales() -> None:
    from gate.plan.checkpoint import Checkpoint, TensorInfo
    from gate.plan.checkpoint import ModelShape as CkptShape
    from gate.plan.memory import estimate

    tensors = (TensorInfo("model.layers.0.mlp.down_proj.weight", (256, 1024), 16),)
    ckpt_shape = CkptShape(architecture="LlamaForCausalLM", model_type="llama", layers=1, heads=4, kv_heads=1,
                           head_dim=64, hidden=256, vocab=None, max_context=512, tie_word_embeddings=False, dtype=None)
    ckpt = Checkpoint(source="test", location="test", tensors=tensors, shape=ckpt_shape)
    q4 = estimate(ckpt, bits=4, group_size=None, method="gguf", fmt="gguf-q4_k_m", context=1, batch=1)
    q8 = estimate(ckpt, bits=8, group_size=None, method="gguf", fmt="gguf-q8_0", context=1, batch=1)
    assert (q4.quantized_weights, q4.scales_zeros) == (int(256 * 1024 * 4.89) // 8 + 1, 0)
    assert (q8.quantized_weights, q8.scales_zeros) == (256 * 1024 * 85 // 80, 0)
    int4 = estimate(ckpt, bits=4, group_size=128, method="rtn", context=1, batch=1)
    assert int4.quantized_weights == 256 * 1024 // 2 and int4.scales_zeros > 0  # group-wise formats unchanged


# --- pre-flight checks (no llama.cpp needed) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request("gguf"), "quantization.format: gguf writes one GGUF type (gguf-q4_k_m, gguf-q5_k_m, gguf-q6_k, "
         "gguf-q8_0, gguf-iq4_xs, gguf-iq4_nl, gguf-iq3_m, gguf-iq3_xxs, gguf-iq2_m), not 'gguf'"),
        (request("gguf-q6_k", bits=4), "quantization.bits: gguf-q6_k stores 6-bit weights, not 4-bit"),
        (request(group=128), "quantization.group_size: gguf-q4_k_m has a fixed block of 256 weights; "
         "group size 128 cannot be chosen"),
        (request("gguf-iq4_xs", options={"imatrix": False}),
         "quantization.options.imatrix: gguf-iq4_xs cannot be made without an importance matrix"),
        (request(options={"tool_timeout_s": 0}), "quantization.options.tool_timeout_s: 0 is not a positive number of seconds"),
        (request(options={"threads": 2}), "quantization.options: gguf has no option 'threads'"),
    ],
)
def test_bad_requests_are_refused_before_any_tool_runs(req: QuantizeRequest, message: str) -> None:
    with pytest.raises(QuantizerInputError) as info:
        GgufBackend().validate(req, shape())
    assert info.value.message == message


def test_k_quants_accept_rows_that_llama_cpp_stores_in_a_fallback_type() -> None:
    GgufBackend().validate(request(), shape(in_features=576))  # SmolLM2's width: recorded in tensor_types


def test_keep_full_precision_maps_to_gguf_tensor_names() -> None:
    overrides = tensor_overrides(("down_proj", "lm_head"), shape(), "f32")
    assert overrides.output is True
    assert overrides.patterns == (r"^blk\.0\.ffn_down\.weight$=f32", r"^blk\.1\.ffn_down\.weight$=f32")
    with pytest.raises(QuantizerInputError) as info:
        tensor_overrides(("down_proj",), shape(model_type="no-such-arch"), "f32")
    assert info.value.message == (
        "quantization.keep_full_precision: no GGUF tensor names are known for model type 'no-such-arch'"
    )


def test_missing_build_is_a_blocking_error_naming_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "none"))
    with pytest.raises(BackendError) as info:
        find_llama_cpp()
    assert str(info.value) == (
        f"llama.cpp tools not found: {tmp_path}/none/manifest.json does not exist\n"
        f"  Hint: run scripts/build-llama-cpp.sh (builds llama.cpp {LLAMA_CPP_VERSION} once, ~20-80 min on 2 cores, "
        f"then cached), or point {ENV_VAR} at a finished build"
    )
    assert info.value.exit_code == 1


def test_a_build_missing_one_tool_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "build"
    (root / "bin").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"llama_cpp_python": LLAMA_CPP_VERSION}))
    monkeypatch.setenv(ENV_VAR, str(root))
    with pytest.raises(BackendError) as info:
        find_llama_cpp()
    assert info.value.message == f"llama.cpp tool llama-quantize not found at {root}/bin/llama-quantize"


def test_script_and_gate_pin_the_same_release() -> None:
    script = (REPO / BUILD_SCRIPT).read_text()
    assert f'VERSION="{LLAMA_CPP_VERSION}"' in script
    assert f"TARGETS=({' '.join(TOOLS)})" in script  # llama-bench too (the serving runtime's benchmark)
    assert re.search(r'SHA256="[0-9a-f]{64}"', script)
    assert build_dir().name == LLAMA_CPP_VERSION or os.environ.get(ENV_VAR)


@pytest.fixture(scope="module")
def spm_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.quantize.gguf_models import build_tiny_spm_llama

    return build_tiny_spm_llama(tmp_path_factory.mktemp("gguf") / "spm-llama")


def test_iq_types_need_calibration(tmp_path: Path, spm_llama: Path) -> None:
    from gate.quantize import prepare_baseline, produce_artifact

    loaded = make_repo(tmp_path, spm_llama, method="gguf", bits=4, group_size=None, fmt="gguf-iq4_xs", calibration=False)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(InputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    assert info.value.message == (
        "quantization.format: gguf-iq4_xs needs an importance matrix, computed from calibration data, "
        "and the spec has no `calibration` section"
    )


def test_calibration_too_short_for_the_importance_matrix(tmp_path: Path, spm_llama: Path) -> None:
    from gate.quantize import prepare_baseline, produce_artifact

    loaded = make_repo(tmp_path, spm_llama, method="gguf", bits=4, group_size=None, fmt="gguf-q4_k_m", samples=2,
                       max_seq_len=512)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    with pytest.raises(InputError) as info:
        produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    found = re.fullmatch(
        r"calibration\.samples: the calibration text has (\d+) tokens; llama-imatrix needs at least 1024 "
        r"\(two chunks of max_seq_len 512\)", info.value.message)
    assert found, info.value.message
    assert info.value.hint == f"add calibration samples, or lower calibration.max_seq_len to {int(found.group(1)) // 2} or less"
    assert str(info.value.location).endswith("spec.yaml:13:3")  # calibration.samples
    assert not list((tmp_path / "cache").glob("artifacts/*/model.gguf"))


# --- real llama.cpp runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def q4_artifact(tmp_path_factory: pytest.TempPathFactory, spm_llama: Path):  # type: ignore[no-untyped-def]
    from gate.quantize import prepare_baseline, produce_artifact

    require_llama_cpp()
    root = tmp_path_factory.mktemp("q4")
    loaded = make_repo(root, spm_llama, method="gguf", bits=4, group_size=None, fmt="gguf-q4_k_m", samples=64,
                       max_seq_len=64, keep=["lm_head"])
    baseline = prepare_baseline(loaded, root, root / "cache")
    first = produce_artifact(loaded, baseline, root, root / "cache", progress=False)
    again = produce_artifact(loaded, baseline, root, root / "cache", progress=False)
    return root, first, again


def test_q4_k_m_artifact_with_imatrix_is_complete_and_cached(q4_artifact) -> None:  # type: ignore[no-untyped-def]
    import gguf

    _, artifact, again = q4_artifact
    assert not artifact.cache_hit and again.cache_hit and again.path == artifact.path
    files = {p.name for p in artifact.path.iterdir()}
    assert {"model.gguf", "imatrix.gguf", "gguf-recipe.json", "config.json", "tokenizer.json", "tokenizer.model",
            "gate-provenance.json", "gate.lock.json"} <= files
    assert not any(name.endswith(("-f32.gguf", ".log")) for name in files)  # intermediates never reach the cache
    qconfig = json.loads((artifact.path / "config.json").read_text())["quantization_config"]
    assert qconfig["quant_method"] == "gguf" and qconfig["gguf_type"] == "Q4_K_M" and qconfig["imatrix"] == "imatrix.gguf"
    assert qconfig["llama_cpp_python"] == LLAMA_CPP_VERSION
    assert artifact.params["type"] == "Q4_K_M" and artifact.params["imatrix"] is True
    assert artifact.params["keep_full_precision"] == ["output.weight"]
    assert artifact.params["tensor_types"] == {"F32": 6, "Q4_K": 13, "Q6_K": 2}  # 5 norms + kept output; the K mix
    assert artifact.versions["llama-cpp-python (llama.cpp tree)"] == LLAMA_CPP_VERSION
    reader = gguf.GGUFReader(str(artifact.path / "model.gguf"))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_K" and types["output.weight"] == "F32"
    recipe = json.loads((artifact.path / "gguf-recipe.json").read_text())
    assert [s["tool"] for s in recipe["steps"]] == ["convert_hf_to_gguf.py", "llama-imatrix", "llama-quantize"]
    assert artifact.sanity is not None and artifact.sanity.passed and artifact.sanity.quantized_source == "reloaded"
    assert artifact.sanity.ratio < 1.5


def test_gguf_artifact_passes_the_weight_scanner(q4_artifact) -> None:  # type: ignore[no-untyped-def]
    from gate.weights import scan_paths
    from gate.weights.interface import FileFormat, FileVerdict

    _, artifact, _ = q4_artifact
    reports, _ = scan_paths([artifact.path])
    ggufs = [r for r in reports if r.format is FileFormat.gguf]
    assert {Path(r.path).name for r in ggufs} == {"model.gguf", "imatrix.gguf"}
    assert all(r.verdict is FileVerdict.ok for r in ggufs), [(r.path, r.reason) for r in ggufs]


def test_llama_cpp_serves_the_artifact_close_to_the_baseline(q4_artifact, spm_llama: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The runtime side: llama-perplexity on the same text, Q4_K_M vs the baseline converted losslessly."""
    import subprocess
    import sys

    from gate.quantize.gguf import perplexity
    from tests.tiny_models import corpus

    _, artifact, _ = q4_artifact
    tools = find_llama_cpp()
    base = tmp_path / "base-f32.gguf"
    subprocess.run([sys.executable, tools.convert_script, spm_llama, "--outfile", base, "--outtype", "f32"],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = tmp_path / "eval.txt"
    text.write_text(imatrix_text(corpus(repeat=4)), encoding="utf-8")
    base_ppl, _ = perplexity(base, text, context=64, log=tmp_path / "base.log", chunks=8)
    q4_ppl, _ = perplexity(artifact.path / "model.gguf", text, context=64, log=tmp_path / "q4.log", chunks=8)
    assert 1.0 < base_ppl < 200.0
    assert base_ppl * 0.9 < q4_ppl < base_ppl * 1.5


def build_replacing(build: Path, name: str, script: str) -> Path:
    """A llama.cpp build dir (for ``$QUANT_GATE_LLAMA_CPP_DIR``) that links every real tool, converter
    and manifest, except ``name``, which is the shell ``script``: a process boundary to fault at."""
    real = find_llama_cpp().root
    (build / "bin").mkdir(parents=True)
    for tool in real.joinpath("bin").iterdir():
        if tool.name != name:
            (build / "bin" / tool.name).symlink_to(tool)
    (build / "convert").symlink_to(real / "convert", target_is_directory=True)
    (build / "manifest.json").write_text((real / "manifest.json").read_text())
    (build / "bin" / name).write_text(script)
    (build / "bin" / name).chmod(0o755)
    return build


def test_a_perplexity_whose_result_line_was_lost_is_run_again(
    q4_artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """llama.cpp's asynchronous logger can drop the last lines at exit. The real llama-perplexity
    runs behind a wrapper that drops its "Final estimate" line on the first run, as the logger
    does: the second run's figure is returned, and it is the tool's own."""
    from gate.quantize.gguf import perplexity
    from tests.tiny_models import corpus

    _, artifact, _ = q4_artifact
    real = find_llama_cpp().root
    runs = tmp_path / "runs"
    build = build_replacing(tmp_path / "build", "llama-perplexity",
                            f"#!/bin/sh\necho run >> {runs}\n"
                            f"if [ $(wc -l < {runs}) -eq 1 ]; then\n"
                            f"  {real / 'bin' / 'llama-perplexity'} \"$@\" 2>&1 | grep -v 'Final estimate'; exit 0\nfi\n"
                            f"exec {real / 'bin' / 'llama-perplexity'} \"$@\"\n")
    text = tmp_path / "eval.txt"
    text.write_text(imatrix_text(corpus(repeat=4)), encoding="utf-8")
    direct = perplexity(artifact.path / "model.gguf", text, context=64, log=tmp_path / "direct.log", chunks=8)
    monkeypatch.setenv(ENV_VAR, str(build))
    assert perplexity(artifact.path / "model.gguf", text, context=64, log=tmp_path / "q4.log", chunks=8) == direct
    assert runs.read_text() == "run\nrun\n"


def test_iq4_xs_uses_the_importance_matrix_and_reloads(tmp_path: Path, spm_llama: Path) -> None:
    import gguf

    from gate.quantize import load_for_eval, prepare_baseline, produce_artifact

    require_llama_cpp()
    loaded = make_repo(tmp_path, spm_llama, method="gguf", bits=4, group_size=None, fmt="gguf-iq4_xs", samples=64,
                       max_seq_len=64)
    baseline = prepare_baseline(loaded, tmp_path, tmp_path / "cache")
    artifact = produce_artifact(loaded, baseline, tmp_path, tmp_path / "cache", progress=False)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(artifact.path / "model.gguf")).tensors}
    assert types["blk.1.ffn_up.weight"] == "IQ4_XS"
    assert artifact.sanity is not None and artifact.sanity.passed
    model, tokenizer = load_for_eval(artifact.path)
    assert model.config.model_type == "llama" and tokenizer("The quick brown fox")["input_ids"]


def test_unrecognised_bpe_tokenizer_is_a_conversion_fault_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gate.quantize import prepare_baseline, produce_artifact
    from tests.tiny_models import build_tiny_llama

    require_llama_cpp()
    model = build_tiny_llama(tmp_path / "bpe", hidden_size=256, intermediate_size=512)
    loaded = make_repo(tmp_path / "repo", model, method="gguf", bits=8, group_size=None, fmt="gguf-q8_0",
                       calibration=False)
    baseline = prepare_baseline(loaded, tmp_path / "repo", tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path / "repo", tmp_path / "cache", progress=False)
    assert info.value.message == (
        "gguf: convert_hf_to_gguf.py does not recognise the baseline's BPE pre-tokenizer "
        "(llama.cpp lists the pre-tokenizers of published models by hash)"
    )
    assert not [p for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.startswith(".")]


def test_gate_explain_names_the_backend_and_its_default_targets() -> None:
    from gate.commands.explain import explain_text

    lines = explain_text("gguf").splitlines()
    assert lines[0] == "gguf: GGUF K-quants and IQ types with llama.cpp's converter, llama-imatrix and llama-quantize"
    assert "Status: the gate's default backend for cpu targets." in lines
    assert "Group sizes: fixed by the format (blocks of 32 or 256 weights); write -1" in lines
    assert "  gguf-iq4_xs: 4-bit (4.25 bits/weight; needs calibration (importance matrix)); fast on CPUs (AVX2/AVX-512, " \
           "NEON), Apple silicon, consumer GPUs via llama.cpp" in lines


def test_gate_init_offers_the_gguf_type_for_the_sanctioned_bits() -> None:
    from gate.onboard.recommend import _format_for
    from gate.plan.catalog import load_catalog

    cpu = load_catalog().get("cpu-x86-avx2")
    assert _format_for("gguf", cpu, 4) == ("gguf-q4_k_m", True)
    assert _format_for("gguf", cpu, 8) == ("gguf-q8_0", True)
    assert _format_for("awq", load_catalog().get("nvidia-l4"), 4) == ("awq-gemm", True)


def test_an_architecture_the_converter_lacks_is_refused_before_any_tool_runs(tmp_path: Path, spm_llama: Path) -> None:
    import shutil

    from gate.quantize import prepare_baseline, produce_artifact

    require_llama_cpp()
    model = tmp_path / "model-src"
    shutil.copytree(spm_llama, model)
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["NoSuchForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    loaded = make_repo(tmp_path / "repo", model, method="gguf", bits=8, group_size=None, fmt="gguf-q8_0", calibration=False)
    baseline = prepare_baseline(loaded, tmp_path / "repo", tmp_path / "cache")
    with pytest.raises(InputError) as info:
        produce_artifact(loaded, baseline, tmp_path / "repo", tmp_path / "cache", progress=False)
    assert str(info.value) == (
        f"{tmp_path}/repo/spec.yaml:7:3: quantization.method: llama.cpp {LLAMA_CPP_VERSION}'s convert_hf_to_gguf.py does not support "
        "NoSuchForCausalLM\n  Hint: use int8 or rtn for this architecture, or a llama.cpp release that converts it"
    )
    assert not (tmp_path / "cache" / "artifacts").exists()


def test_a_tool_exiting_non_zero_is_a_blocking_fault_and_caches_nothing(
    tmp_path: Path, spm_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real converter runs; llama-quantize is replaced (at the process boundary) by one that fails
    the way a full disk makes it fail: the gate blocks with the tool's own last lines."""
    from gate.quantize import prepare_baseline, produce_artifact

    require_llama_cpp()
    build = build_replacing(tmp_path / "build", "llama-quantize",
                            "#!/bin/sh\necho 'main: quantizing model.gguf'\n"
                            "echo 'llama_model_quantize: failed to quantize: basic_ios::clear: iostream error' >&2\n"
                            "exit 1\n")
    monkeypatch.setenv(ENV_VAR, str(build))
    loaded = make_repo(tmp_path / "repo", spm_llama, method="gguf", bits=8, group_size=None, fmt="gguf-q8_0",
                       calibration=False)
    baseline = prepare_baseline(loaded, tmp_path / "repo", tmp_path / "cache")
    with pytest.raises(BackendError) as info:
        produce_artifact(loaded, baseline, tmp_path / "repo", tmp_path / "cache", progress=False)
    assert str(info.value) == (
        "gguf: quantizing to Q8_0: llama-quantize exited with status 1; its last output:\n"
        "    main: quantizing model.gguf\n"
        "    llama_model_quantize: failed to quantize: basic_ios::clear: iostream error\n"
        "  Hint: the cause is in the output above; no artifact was cached"
    )
    assert info.value.exit_code == 1
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir() if not p.name.endswith(".lock")] == []


def test_a_tool_killed_by_the_oom_killer_says_so(tmp_path: Path) -> None:
    from gate.quantize.llamacpp import run_tool

    with pytest.raises(BackendError) as info:
        run_tool(["sh", "-c", "echo 'loading model'; kill -9 $$"], what="gguf: computing the importance matrix",
                 log=tmp_path / "tool.log", timeout_s=30)
    assert str(info.value) == (
        "gguf: computing the importance matrix: sh was killed by SIGKILL; its last output:\n"
        "    loading model\n"
        "  Hint: SIGKILL with no error of its own is usually the kernel's out-of-memory killer: use a machine with "
        "more memory, or lower calibration.samples / max_seq_len; no artifact was cached"
    )
