"""The memory plan: known answers on published architectures, real tiny checkpoints (safetensors and
GGUF) read from their headers, bad inputs, and the plan's place in `gate check`."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.plan.catalog import load_catalog
from gate.plan.checkpoint import read_gguf, read_model_dir, read_safetensors_header
from gate.plan.memory import GB, MemoryPlan, build_plan, estimate, human_bytes, plan_for_spec
from gate.spec.loader import load_spec
from tests.plan.case_plans import RULE_CASES, case_plans
from tests.plan.shapes import llama3_8b, smollm2_135m

REPO = Path(__file__).resolve().parents[2]


# -- known answers -------------------------------------------------------------------------------


def test_published_parameter_counts() -> None:
    assert llama3_8b().parameters == 8_030_261_248
    assert smollm2_135m().parameters == 134_515_008


def test_llama3_8b_int4_g128_components_by_hand() -> None:
    est = estimate(llama3_8b(), bits=4, group_size=128, method="awq", context=8192, batch=4, device_kind="gpu")
    linear = 32 * (4096 * 4096 * 2 + 1024 * 4096 * 2 + 14336 * 4096 * 3)
    assert est.quantized_parameters == linear == 6_979_321_856
    assert est.quantized_weights == linear // 2  # 4 bits
    # per group of 128 inputs: a 16-bit scale and an AWQ zero point packed at 4 bits
    groups = 32 * (4096 * 32 * 2 + 1024 * 32 * 2 + 14336 * 32 * 2 + 4096 * 112)
    assert est.scales_zeros == groups * 20 // 8
    embeddings = 2 * 128256 * 4096 + 65 * 4096  # embed_tokens + lm_head + 65 norm vectors
    assert est.full_precision == embeddings * 2
    assert est.kv_cache == 2 * 32 * 8 * 128 * 8192 * 4 * 2 == 4_294_967_296
    assert est.runtime_overhead == 500_000_000 + int(0.1 * (est.weights + est.kv_cache))


def test_domain_rule_of_thumb_7b_weights() -> None:
    """DOMAIN.md: 7B at FP16 14 GB, INT8 7 GB, INT4 3.5 GB (the linear layers dominate)."""
    ckpt = llama3_8b()
    fp16 = estimate(ckpt, bits=16, group_size=None)
    int8 = estimate(ckpt, bits=8, group_size=None)
    int4 = estimate(ckpt, bits=4, group_size=128)
    assert fp16.weights == ckpt.parameters * 2
    assert int8.quantized_weights == pytest.approx(6.98e9, rel=0.01)
    assert int4.quantized_weights == pytest.approx(3.49e9, rel=0.01)
    assert int4.scales_zeros / int4.quantized_weights == pytest.approx(32 / 128 / 4, rel=0.01)  # 2x16 bits per 128


def test_keep_full_precision_moves_layers_out_of_the_quantized_set() -> None:
    ckpt = llama3_8b()
    plain = estimate(ckpt, bits=4, group_size=128)
    kept = estimate(ckpt, bits=4, group_size=128, keep_full_precision=["down_proj"])
    down = 32 * 4096 * 14336
    assert plain.quantized_parameters - kept.quantized_parameters == down
    assert kept.full_precision - plain.full_precision == down * 2
    one = estimate(ckpt, bits=4, group_size=128, keep_full_precision=["model.layers.0.mlp.*"])
    assert plain.quantized_parameters - one.quantized_parameters == 3 * 4096 * 14336


def test_plan_fit_and_largest_fitting() -> None:
    plan = build_plan(llama3_8b(), method="int8", bits=8, group_size=None, keep_full_precision=[], context=8192,
                      batch=4, target_hardware="nvidia-l4", target_memory_gb=12, target_memory_source="constraint",
                      device_kind="gpu")
    assert plan.fits is False
    assert plan.total_gb == pytest.approx(15.216812)
    assert plan.headroom_gb == pytest.approx(12 - 15.216812)
    assert [(f.label, f.fits) for f in plan.fitting_precisions] == [("fp16", False), ("int8", False), ("int4 g128", True)]
    assert plan.largest_fitting == "int4 g128 (11.62 GB)"
    assert plan.breakdown() == ("weights 6.98 GB + scales/zeros 2.8 MB + full precision 2.10 GB + KV cache 4.29 GB"
                                " + overhead 1.84 GB")


def test_unknown_target_memory_gives_fits_none() -> None:
    plan = case_plans()["memory-unknown"]
    assert plan.fits is None and plan.headroom_gb is None and plan.largest_fitting is None
    assert all(f.fits is None for f in plan.fitting_precisions)


def test_group_size_that_does_not_divide() -> None:
    plan = case_plans()["smollm2-g128"]
    assert plan.indivisible_count == 30 * 6  # every layer reading the 576-wide hidden state
    assert plan.indivisible_layers[0] == "model.layers.0.self_attn.q_proj"
    assert plan.suggested_group_size == 64


def test_plan_json_round_trip() -> None:
    plan = case_plans()["12gb-int8-too-big"]
    assert MemoryPlan.model_validate_json(plan.model_dump_json()) == plan


def test_rule_case_files_carry_the_plans_the_code_computes() -> None:
    """tests/policy/cases/QG60x.yaml were generated from case_plans(); they must not drift."""
    from ruamel.yaml import YAML

    plans = case_plans()
    for rule_id, cases in RULE_CASES.items():
        data = YAML(typ="safe", pure=True).load((REPO / "tests/policy/cases" / f"{rule_id}.yaml").read_text())
        by_name = {c["name"]: c for c in data["cases"]}
        for case in cases:
            assert by_name[case["name"]]["facts"]["plan"] == plans[case["plan"]].model_dump(mode="json"), case["name"]


def test_human_bytes() -> None:
    assert human_bytes(9.1 * GB) == "9.10 GB"
    assert human_bytes(0.1 * GB) == "0.10 GB"
    assert human_bytes(2_752_512) == "2.8 MB"
    assert human_bytes(73_728) == "73.7 KB"


# -- real checkpoints ----------------------------------------------------------------------------


def _repo_with_model(tmp_path: Path, tiny: Path) -> Path:
    shutil.copytree(tiny, tmp_path / "weights" / "tiny")
    return tmp_path


def _write_spec(root: Path, body: str, name: str = "spec.yaml") -> Path:
    path = root / "models" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


SPEC = """\
apiVersion: quant-gate/v1
kind: ModelSpec
metadata: {{name: tiny, owner: team-t, tier: internal}}
model: {{{source}}}
constraint:
  kind: memory
  statement: "fit"
  target: {{hardware: {hardware}{extra}}}
quantization: {{method: awq, bits: 4, group_size: {group}, format: awq-gemm{keep}}}
"""


def spec_text(source: str = "path: weights/tiny", hardware: str = "nvidia-l4", extra: str = ", memory_gb: 1, context: 256, batch: 2",
              group: int = 64, keep: str = "") -> str:
    return SPEC.format(source=source, hardware=hardware, extra=extra, group=group, keep=keep)


def test_tiny_llama_headers_match_the_model(tiny_llama_dir: Path) -> None:
    import torch
    from safetensors import safe_open

    ckpt = read_model_dir(tiny_llama_dir, "tiny")
    with safe_open(str(tiny_llama_dir / "model.safetensors"), "pt") as fh:
        expected = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    assert {t.name: t.shape for t in ckpt.tensors} == expected
    assert all(t.bits == 32 for t in ckpt.tensors)
    assert ckpt.parameters == sum(torch.Size(s).numel() for s in expected.values())
    shape = ckpt.shape
    assert (shape.architecture, shape.layers, shape.heads, shape.kv_heads, shape.head_dim, shape.vocab, shape.max_context) == (
        "LlamaForCausalLM", 2, 4, 2, 16, 384, 512)


def test_plan_for_spec_on_a_real_directory(tmp_path: Path, tiny_llama_dir: Path) -> None:
    root = _repo_with_model(tmp_path, tiny_llama_dir)
    loaded = load_spec(_write_spec(root, spec_text()))
    plan = plan_for_spec(loaded, load_catalog(), None, root)
    assert plan is not None
    assert plan.source == "path" and plan.parameters == 123_200
    assert plan.quantized_parameters == 2 * (64 * 64 * 2 + 32 * 64 * 2 + 128 * 64 * 3)
    assert plan.kv_cache_bytes == 2 * 2 * 2 * 16 * 256 * 2 * 2
    assert (plan.target_memory_gb, plan.target_memory_source, plan.fits, plan.context_supported) == (1, "constraint", True, True)
    assert plan.device_kind == "gpu"
    assert plan.notes[0].startswith("runtime overhead = 0.50 GB fixed (gpu)")


def test_catalog_memory_and_assumed_serving_shape(tmp_path: Path, tiny_llama_dir: Path) -> None:
    root = _repo_with_model(tmp_path, tiny_llama_dir)
    loaded = load_spec(_write_spec(root, spec_text(hardware="cpu-x86-avx2", extra="")))
    plan = plan_for_spec(loaded, load_catalog(), None, root)
    assert plan is not None
    assert (plan.target_memory_gb, plan.target_memory_source, plan.device_kind) == (16, "catalog", "cpu")
    assert (plan.context, plan.batch) == (512, 1)
    assert plan.notes[:2] == ["context not declared: planned at 512 tokens", "batch not declared: planned at batch 1"]


def test_hub_and_missing_weights_give_no_plan(tmp_path: Path) -> None:
    hub = spec_text(source="hub: org/m, revision: " + "a" * 40)
    assert plan_for_spec(load_spec(_write_spec(tmp_path, hub, "hub.yaml")), load_catalog(), None, tmp_path) is None
    assert plan_for_spec(load_spec(_write_spec(tmp_path, spec_text(), "missing.yaml")), load_catalog(), None, tmp_path) is None


def test_context_beyond_the_model(tmp_path: Path, tiny_llama_dir: Path) -> None:
    root = _repo_with_model(tmp_path, tiny_llama_dir)
    loaded = load_spec(_write_spec(root, spec_text(extra=", memory_gb: 1, context: 4096, batch: 1")))
    plan = plan_for_spec(loaded, load_catalog(), None, root)
    assert plan is not None and plan.context_supported is False and plan.max_context == 512


def _gguf(path: Path, *, kv: int | None = 2, tokens: int = 0) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    if tokens:
        writer.add_token_list([f"tok{i}" for i in range(tokens)])
    writer.add_block_count(1)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    if kv is not None:
        writer.add_head_count_kv(kv)
    writer.add_context_length(1024)
    writer.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float16))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float32))
    writer.add_tensor("blk.0.attn_k.weight", np.zeros((32, 64), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((64, 128), dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.zeros((64,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_tensor_table_and_metadata(tmp_path: Path) -> None:
    ckpt = read_gguf(_gguf(tmp_path / "m.gguf"), "m.gguf")
    assert {t.name: t.shape for t in ckpt.tensors} == {
        "model.embed_tokens.weight": (100, 64),
        "model.layers.0.self_attn.q_proj.weight": (64, 64),
        "model.layers.0.self_attn.k_proj.weight": (32, 64),
        "model.layers.0.mlp.down_proj.weight": (64, 128),
        "model.layers.0.input_layernorm.weight": (64,),
    }
    s = ckpt.shape
    assert (s.architecture, s.layers, s.heads, s.kv_heads, s.head_dim, s.vocab, s.max_context, s.tie_word_embeddings) == (
        "gguf:llama", 1, 4, 2, 16, 100, 1024, True)
    est = estimate(ckpt, bits=4, group_size=64, keep_full_precision=["down_proj"])
    assert est.quantized_parameters == 64 * 64 + 32 * 64


def test_gguf_without_kv_heads_means_full_attention(tmp_path: Path) -> None:
    assert read_gguf(_gguf(tmp_path / "m.gguf", kv=None), "m.gguf").shape.kv_heads == 4


def test_gguf_spec_plan(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    _gguf(tmp_path / "weights" / "m.gguf")
    loaded = load_spec(_write_spec(tmp_path, spec_text(source="gguf: weights/m.gguf")))
    plan = plan_for_spec(loaded, load_catalog(), None, tmp_path)
    assert plan is not None and plan.source == "gguf" and plan.max_context == 1024


# -- bad input -----------------------------------------------------------------------------------


def test_directory_without_config(tmp_path: Path, tiny_llama_dir: Path) -> None:
    root = _repo_with_model(tmp_path, tiny_llama_dir)
    (root / "weights/tiny/config.json").unlink()
    spec = _write_spec(root, spec_text())
    with pytest.raises(InputError) as info:
        plan_for_spec(load_spec(spec), load_catalog(), None, root)
    assert str(info.value) == (
        f"{spec}:4:9: weights/tiny: model directory has no config.json\n"
        "  Hint: save the model with `save_pretrained(DIR)` so config.json sits next to the weights"
    )


def test_directory_with_only_pickle_weights(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"\x80\x02")
    with pytest.raises(InputError) as info:
        read_model_dir(model, "m")
    assert str(info.value) == (
        "m: model directory has no *.safetensors weights (found pytorch_model.bin: pickle weights are never loaded)\n"
        "  Hint: convert the checkpoint with `save_pretrained(DIR, safe_serialization=True)`"
    )


def test_config_without_layer_count(tmp_path: Path, tiny_llama_dir: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_llama_dir, model)
    config = json.loads((model / "config.json").read_text())
    del config["num_hidden_layers"]
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError) as info:
        read_model_dir(model, "m")
    assert str(info.value) == (
        "m/config.json: cannot read the number of layers: none of num_hidden_layers, n_layer, "
        "num_layers, n_layers is a positive integer\n"
        "  Hint: add `num_hidden_layers` to config.json (the plan reads it to size the KV cache)"
    )


def test_truncated_safetensors_header(tmp_path: Path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(InputError) as info:
        read_safetensors_header(bad, "x.safetensors")
    assert info.value.message == "x.safetensors: header length 1000 is beyond the end of the 10-byte file"
    bad.write_bytes(struct.pack("<Q", 2) + b"{]")
    with pytest.raises(InputError, match=r"^x.safetensors: header is not valid JSON: Expecting property name"):
        read_safetensors_header(bad, "x.safetensors")


def test_model_path_outside_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    loaded = load_spec(_write_spec(root, spec_text(source="path: ../elsewhere")))
    with pytest.raises(InputError) as info:
        plan_for_spec(loaded, load_catalog(), None, root)
    assert info.value.message == "model.path: '../elsewhere' points outside the repository"


def test_plan_stage_imports_no_torch(tmp_path: Path, tiny_llama_dir: Path) -> None:
    root = _repo_with_model(tmp_path, tiny_llama_dir)
    spec = _write_spec(root, spec_text())
    code = (
        "import sys; from pathlib import Path\n"
        "from gate.plan.catalog import load_catalog\nfrom gate.plan.memory import plan_for_spec\n"
        "from gate.spec.loader import load_spec\n"
        f"p = plan_for_spec(load_spec(Path({str(spec)!r})), load_catalog(), None, Path({str(root)!r}))\n"
        "assert p is not None and p.fits\n"
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr


def test_gguf_bad_magic_and_truncation(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(InputError) as info:
        read_gguf(bad, "x.gguf")
    assert str(info.value) == "x.gguf: not a GGUF file (bad magic)\n  Hint: re-download the file and check its sha256"
    good = _gguf(tmp_path / "m.gguf").read_bytes()
    bad.write_bytes(good[:200])
    with pytest.raises(InputError) as info:
        read_gguf(bad, "x.gguf")
    assert info.value.message == "x.gguf: GGUF header is truncated"
    with_vocab = _gguf(tmp_path / "v.gguf", tokens=1000).read_bytes()
    assert read_gguf(tmp_path / "v.gguf", "v.gguf").shape.layers == 1  # the vocabulary array is skipped
    bad.write_bytes(with_vocab[:5000])  # cut inside the token list
    with pytest.raises(InputError) as info:
        read_gguf(bad, "x.gguf")
    assert info.value.message == "x.gguf: GGUF header is truncated"


@pytest.mark.skipif(not (REPO / "weights/SmolLM2-135M-Instruct.Q4_1.gguf").is_file(), reason="run `gate example fetch`")
def test_smollm2_gguf_matches_the_published_architecture() -> None:
    ckpt = read_gguf(REPO / "weights/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")
    published = smollm2_135m()
    assert ckpt.parameters == published.parameters == 134_515_008
    assert {t.name: t.shape for t in ckpt.tensors} == {t.name: t.shape for t in published.tensors}
    s = ckpt.shape
    assert (s.layers, s.heads, s.kv_heads, s.head_dim, s.vocab, s.max_context, s.tie_word_embeddings) == (
        30, 9, 3, 64, 49152, 8192, True)


def test_summary_lines_for_reports() -> None:
    assert case_plans()["12gb-int8-too-big"].summary() == [
        "memory plan: int8 needs 15.22 GB of 12 GB on nvidia-l4: DOES NOT FIT, headroom -3.22 GB (-27%)",
        "  weights 6.98 GB + scales/zeros 2.8 MB + full precision 2.10 GB + KV cache 4.29 GB + overhead 1.84 GB"
        " (context 8192 x batch 4)",
        "  precisions: fp16 22.89 GB does not fit · int8 15.22 GB does not fit · int4 g128 11.62 GB fits",
    ]
    assert case_plans()["memory-unknown"].summary()[0] == (
        "memory plan: int4 g128 needs 11.53 GB on acme-npu (target memory unknown)")
