from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import SourceLocation
from gate.quantize.checks import read_model_shape
from gate.quantize.interface import LinearShape, ModelShape, QuantizeRequest, QuantizerInputError
from gate.quantize.registry import get_quantizer

WHERE = SourceLocation("spec.yaml", 6, 3)
SMOL_LIKE = ModelShape(
    model_type="llama",
    linears=(
        LinearShape("model.layers.0.self_attn.q_proj", 576, 576),
        LinearShape("model.layers.0.mlp.down_proj", 1536, 576),
        LinearShape("lm_head", 576, 49152),
    ),
    hidden_size=576,
    num_layers=1,
)


def request(**kw: object) -> QuantizeRequest:
    base: dict[str, object] = {"method": "awq", "bits": 4, "group_size": 64, "format": "awq-gemm", "location": WHERE}
    base.update(kw)
    return QuantizeRequest(**base)  # type: ignore[arg-type]


def test_shape_is_read_from_safetensors_headers(tiny_llama_dir: Path) -> None:
    shape = read_model_shape(tiny_llama_dir)
    names = {lin.name: (lin.in_features, lin.out_features) for lin in shape.linears}
    assert shape.model_type == "llama"
    assert shape.hidden_size == 64
    assert names["model.layers.0.mlp.down_proj"] == (128, 64)
    assert names["model.layers.1.self_attn.k_proj"] == (64, 32)
    assert names["lm_head"] == (64, 384)
    assert len(shape.linears) == 2 * 7 + 1


def test_group_size_must_divide_every_input_size() -> None:
    with pytest.raises(QuantizerInputError) as info:
        get_quantizer("awq").validate(request(group_size=128), SMOL_LIKE)
    assert str(info.value) == (
        "spec.yaml:6:3: quantization.group_size: 128 does not divide the input size 576 of "
        "model.layers.0.self_attn.q_proj\n"
        "  Hint: use group_size: 64 (or -1 for per-channel where the method allows it)"
    )
    get_quantizer("awq").validate(request(group_size=64), SMOL_LIKE)


def test_unsupported_bits_are_refused_before_starting() -> None:
    with pytest.raises(QuantizerInputError) as info:
        get_quantizer("awq").validate(request(bits=3), SMOL_LIKE)
    assert info.value.message == "quantization.bits: awq does not support 3-bit weights (supported: 4)"
    with pytest.raises(QuantizerInputError) as info:
        get_quantizer("int8").validate(request(method="int8", bits=4, group_size=None, format="int8"), SMOL_LIKE)
    assert info.value.message == "quantization.bits: int8 does not support 4-bit weights (supported: 8)"


def test_awq_refuses_per_channel_and_unknown_format_and_options() -> None:
    awq = get_quantizer("awq")
    with pytest.raises(QuantizerInputError) as info:
        awq.validate(request(group_size=None), SMOL_LIKE)
    assert info.value.message == "quantization.group_size: awq needs a positive group size (per-channel is not supported)"
    with pytest.raises(QuantizerInputError) as info:
        awq.validate(request(format="gguf-q4"), SMOL_LIKE)
    assert info.value.message == "quantization.format: awq writes awq-gemm, awq-gemv, not 'gguf-q4'"
    with pytest.raises(QuantizerInputError) as info:
        awq.validate(request(options={"clip_serch": False}), SMOL_LIKE)
    assert str(info.value) == (
        "spec.yaml:6:3: quantization.options: awq has no option 'clip_serch'\n"
        "  Hint: options awq understands: clip_search, zero_point, duo_scaling, sanity_max_ratio"
    )


def test_keep_full_precision_must_name_a_layer() -> None:
    with pytest.raises(QuantizerInputError) as info:
        get_quantizer("rtn").validate(request(method="rtn", keep_full_precision=("lm_haed",)), SMOL_LIKE)
    assert info.value.message == "quantization.keep_full_precision: 'lm_haed' matches no linear layer of the model"
    # a kept layer is exempt from the group-size check
    get_quantizer("rtn").validate(
        request(method="rtn", group_size=192, keep_full_precision=("lm_head",)), SMOL_LIKE
    )


def test_rtn_accepts_low_bits_for_deliberately_broken_models() -> None:
    get_quantizer("rtn").validate(request(method="rtn", bits=2), SMOL_LIKE)
