"""AWQ (activation-aware weight quantization) through autoawq 0.2.9, isolated behind the interface.

autoawq is archived; everything that depends on it lives in this module, so a maintained AWQ
implementation (e.g. llm-compressor) can replace it without touching the gate. Workarounds,
each measured with torch 2.13 CPU + transformers 5.23:

- ``AwqQuantizer._compute_best_scale`` snapshots the block's weights with ``.cpu()``, which on a
  CPU tensor returns the same storage, then searches scales by mutating weights in place: the
  "restored" weights are corrupted and the model is silently broken (SmolLM2-135M perplexity
  20 -> 315,655). ``SafeAwqQuantizer`` snapshots clones instead. The gate's post-quantization
  sanity check (``sanity.py``) also catches it: the slow example test runs the unpatched quantizer.
- Calibration is passed as token ids truncated to ``max_seq_len`` (autoawq silently drops longer
  texts, and fails with an empty ``torch.cat`` when the concatenation is shorter than
  ``max_seq_len``; ``validate_calibration`` refuses that before starting).
- The clip search is ~95% of CPU run time and changed SmolLM2's perplexity by < 0.1%:
  ``quantization.options.clip_search`` (default true; CPU CI specs set it false).
- Loading on CPU: ``from_quantized`` requires intel-extension-for-pytorch, and ``WQLinear_GEMM``
  takes a triton path that crashes on CPU tensors. ``load`` dequantizes the packed int4 weights
  in fp32 into a plain transformers model instead (fp16 dequantize+matmul was ~57x slower on this
  CPU); memory is then fp32-sized, speed equals the fp32 model. On CUDA ``from_quantized`` is used.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gate.quantize.descriptor import BackendDescriptor, FormatSpec
from gate.quantize.interface import (
    ModelShape,
    Progress,
    QuantizeOutcome,
    Quantizer,
    QuantizeRequest,
    QuantizerInputError,
)

FORMATS = {"awq-gemm": "GEMM", "awq-gemv": "GEMV"}
"""Formats autoawq writes -> its ``version`` name."""

DESCRIPTOR = BackendDescriptor(
    alias="awq",
    implementation="gate.quantize.awq:AwqBackend",
    summary="AWQ W4A16 through autoawq 0.2.9 (archived; the legacy AWQ path, with the gate's CPU fix)",
    formats=(
        FormatSpec("awq-gemm", (4,), "NVIDIA GPUs, compute capability >= 7.5 (batched GEMM kernels)", algorithms=("awq",)),
        FormatSpec("awq-gemv", (4,), "NVIDIA GPUs, compute capability >= 7.5 (batch-1 GEMV kernels)", algorithms=("awq",)),
        FormatSpec("awq-marlin", (4,), "NVIDIA GPUs, compute capability >= 8.0 (Marlin kernels)", algorithms=("awq",)),
    ),
    bits=(4,),
    needs_calibration=True,
    requires=("torch", "transformers", "awq"),
    legacy=True,  # llm-compressor computes AWQ now (QG207 pins it); this path stays for specs that name it
)


def _safe_quantizer_cls() -> type:
    from awq.quantize.quantizer import AwqQuantizer

    class SafeAwqQuantizer(AwqQuantizer):
        """autoawq's quantizer with the scale search working on cloned weights (see module docs)."""

        def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs={}):  # type: ignore[no-untyped-def]  # noqa: B006
            original = module2inspect.state_dict

            def cloned_state_dict(*args: Any, **kw: Any) -> dict[str, Any]:
                return {k: v.detach().clone() for k, v in original(*args, **kw).items()}

            module2inspect.state_dict = cloned_state_dict
            try:
                return super()._compute_best_scale(x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs)
            finally:
                del module2inspect.state_dict

    return SafeAwqQuantizer


QUANTIZER_FACTORY = _safe_quantizer_cls
"""Returns the quantizer class passed to autoawq (tests swap in the upstream one to show the bug)."""


class AwqBackend(Quantizer):
    alias = DESCRIPTOR.alias
    supported_bits = DESCRIPTOR.bits
    supports_keep_full_precision = True
    needs_calibration = DESCRIPTOR.needs_calibration
    packages = ("torch", "transformers", "autoawq")
    option_names = ("clip_search", "zero_point", "duo_scaling")

    def quantizes(self, module: str) -> bool:
        return module.split(".")[-1] != "lm_head"  # autoawq quantizes decoder blocks only

    def validate(self, request: QuantizeRequest, shape: ModelShape) -> None:
        super().validate(request, shape)
        if request.group_size is None:
            raise QuantizerInputError(
                "quantization.group_size", "awq needs a positive group size (per-channel is not supported)",
                hint="use group_size: 128 (or 64/32 when 128 does not divide the layer sizes)",
                location=request.location,
            )
        fmt = request.format
        if fmt not in FORMATS:
            raise QuantizerInputError(
                "quantization.format", f"awq writes {', '.join(FORMATS)}, not {fmt!r}",
                hint="use format: awq-gemm",
                location=request.location,
            )
        from awq.models.auto import AWQ_CAUSAL_LM_MODEL_MAP

        if shape.model_type not in AWQ_CAUSAL_LM_MODEL_MAP:
            raise QuantizerInputError(
                "quantization.method", f"autoawq does not support model type {shape.model_type!r}",
                hint="use int8 or rtn for this architecture",
                location=request.location,
            )

    def validate_calibration(self, request: QuantizeRequest, baseline: Path) -> None:
        from gate.quantize.sources import load_tokenizer

        tokens = sum(len(ids) for ids in _token_ids(load_tokenizer(baseline), request))
        if tokens < request.max_seq_len:
            raise QuantizerInputError(
                "calibration.samples", f"the {len(request.calibration_texts)} calibration samples hold {tokens} tokens, "
                f"fewer than max_seq_len {request.max_seq_len}; autoawq needs at least one full block",
                hint="add samples (calibration.samples) or lower calibration.max_seq_len",
                location=request.location,
            )

    def cache_fields(self) -> dict[str, Any]:
        from gate.quantize.descriptor import code_digest

        return {"code": code_digest(Path(__file__))}  # the code turning the spec into the library call

    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        import torch
        from awq import AutoAWQForCausalLM

        from gate.quantize.sources import load_tokenizer, package_versions

        cuda = torch.cuda.is_available()
        dtype = torch.float16 if cuda else torch.float32
        tokenizer = load_tokenizer(baseline)
        calib = _token_ids(tokenizer, request)
        quant_config = {
            "zero_point": bool(request.options.get("zero_point", True)),
            "q_group_size": int(request.group_size or 128),
            "w_bit": request.bits,
            "version": FORMATS[request.format],
        }
        if request.keep_full_precision:
            quant_config["modules_to_not_convert"] = list(request.keep_full_precision)
        kwargs = {
            "apply_clip": bool(request.options.get("clip_search", True)),
            "duo_scaling": bool(request.options.get("duo_scaling", True)),
            "max_calib_samples": len(calib),
            "max_calib_seq_len": request.max_seq_len,
        }
        model = AutoAWQForCausalLM.from_pretrained(
            str(baseline), safetensors=True, device_map={"": "cuda:0" if cuda else "cpu"}, torch_dtype=dtype
        )
        with _awq_progress(progress):
            model.quantize(tokenizer, quant_config=quant_config, calib_data=calib, quantizer_cls=QUANTIZER_FACTORY(), **kwargs)
        model.save_quantized(str(out_dir), safetensors=True)
        params = {
            "library": "autoawq",
            "quant_config": quant_config,
            **kwargs,
            "calibration_blocks": sum(len(ids) for ids in calib) // request.max_seq_len,
            "compute_dtype": str(dtype).removeprefix("torch."),
            "quantizer": "SafeAwqQuantizer (scale search on cloned weights)",
        }
        return QuantizeOutcome(params=params, versions=package_versions(self.packages))

    def load(self, path: Path, device: str = "cpu") -> Any:
        if device.startswith("cuda"):
            from awq import AutoAWQForCausalLM

            return AutoAWQForCausalLM.from_quantized(str(path), fuse_layers=False, device_map={"": device}).model.eval()
        return _load_dequantized(path, device)


def _token_ids(tokenizer: Any, request: QuantizeRequest) -> list[list[int]]:
    """Calibration texts as token ids, each truncated to ``max_seq_len`` (none dropped)."""
    out = []
    for text in request.calibration_texts:
        ids = tokenizer.encode(text.strip())[: request.max_seq_len]
        if ids:
            out.append([int(i) for i in ids])
    return out


@contextlib.contextmanager
def _awq_progress(progress: Progress | None) -> Iterator[None]:
    """Route autoawq's per-block tqdm loop to our progress callback (and silence it)."""
    import awq.quantize.quantizer as quantizer_module

    original = quantizer_module.tqdm

    def tracked(iterable: Any, desc: str = "", **_: Any) -> Iterator[Any]:
        items = list(iterable)
        what = "blocks quantized" if desc == "AWQ" else "blocks packed"
        for index, item in enumerate(items):
            yield item
            if progress:
                progress(what, index + 1, len(items))

    quantizer_module.tqdm = tracked
    try:
        yield
    finally:
        quantizer_module.tqdm = original


def _load_dequantized(path: Path, device: str) -> Any:
    """A plain fp32 transformers model with the packed AWQ GEMM weights dequantized in fp32."""
    import torch
    from awq.utils.packing_utils import reverse_awq_order, unpack_awq
    from safetensors.torch import load_file

    from gate.errors import BackendError
    from gate.quantize.sources import model_from_state

    qconfig = json.loads((path / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    if str(qconfig.get("version", "gemm")).lower() != "gemm":
        raise BackendError(
            f"{path}: AWQ {qconfig.get('version')} artifacts load only on CUDA",
            hint="use format: awq-gemm for artifacts evaluated on CPU",
        )
    bits, group = int(qconfig["bits"]), int(qconfig["group_size"])
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    state: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.endswith((".qzeros", ".scales")):
            continue
        if key.endswith(".qweight"):
            name = key[: -len(".qweight")]
            iweight, izeros = unpack_awq(value, tensors[f"{name}.qzeros"], bits)
            iweight, izeros = reverse_awq_order(iweight, izeros, bits)
            mask = 2**bits - 1
            iweight = torch.bitwise_and(iweight, mask).float()
            izeros = torch.bitwise_and(izeros, mask).float().repeat_interleave(group, dim=0)
            scales = tensors[f"{name}.scales"].float().repeat_interleave(group, dim=0)
            state[f"{name}.weight"] = ((iweight - izeros) * scales).t().contiguous()
        else:
            state[key] = value.float() if value.is_floating_point() else value
    return model_from_state(path, state, device)
