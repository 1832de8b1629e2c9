"""Weight-only int8 through torchao (``Int8WeightOnlyConfig``) via transformers' ``TorchAoConfig``.

Chosen by measurement on the CPU dev box and for GPU runners (see docs/quantize.md): torchao is
maintained by the PyTorch team, runs on CPU and CUDA with the same code, quantizes a tiny model in
about a second and a 135M model in seconds, and its artifacts save as safetensors that
``AutoModelForCausalLM.from_pretrained`` loads back without the gate. optimum-quanto (qint8 works;
qint4 JIT-compiles a C++ extension, ~78 s) and bitsandbytes (CPU only through transformers 5.x)
were the alternatives.

Per-channel scales (``group_size: -1`` or null) are the int8 default; a positive group size uses
torchao's group-wise int8. ``keep_full_precision`` maps to ``modules_to_not_convert``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gate.quantize.checks import matches
from gate.quantize.descriptor import BackendDescriptor, FormatSpec
from gate.quantize.interface import Progress, QuantizeOutcome, Quantizer, QuantizeRequest

DESCRIPTOR = BackendDescriptor(
    alias="int8",
    implementation="gate.quantize.int8:Int8Backend",
    summary="weight-only INT8 through torchao (per channel or group-wise)",
    formats=(
        FormatSpec("int8-weight-only", (8,), "NVIDIA GPUs and CPUs with strong integer units", algorithms=("int8-rtn",)),
        FormatSpec("llm-int8", (8,), "NVIDIA GPUs; CPU backend in recent bitsandbytes", algorithms=("llm-int8",)),
    ),
    bits=(8,),
    requires=("torch", "transformers", "torchao"),
    sanctioned_for=("gpu", "cpu"),
)


class Int8Backend(Quantizer):
    alias = DESCRIPTOR.alias
    supported_bits = DESCRIPTOR.bits
    supports_keep_full_precision = True
    needs_calibration = DESCRIPTOR.needs_calibration
    packages = ("torch", "transformers", "torchao")
    option_names = ()

    def quantizes(self, module: str) -> bool:
        return module.split(".")[-1] != "lm_head"  # transformers keeps the output layer in full precision

    def cache_fields(self) -> dict[str, Any]:
        from gate.quantize.descriptor import code_digest

        return {"code": code_digest(Path(__file__))}  # the code turning the spec into the library call

    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        import torch
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import AutoModelForCausalLM, TorchAoConfig

        from gate.errors import BackendError
        from gate.quantize.checks import read_model_shape
        from gate.quantize.sources import compute_dtype, package_versions

        group = request.group_size if request.group_size and request.group_size > 0 else None
        shape = read_model_shape(baseline)
        keep = sorted(
            {lin.name for lin in shape.linears if matches(lin.name, request.keep_full_precision)} | {"lm_head"}
        )
        ao_config = Int8WeightOnlyConfig(group_size=group)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = compute_dtype(device)
        config = TorchAoConfig(ao_config, modules_to_not_convert=keep)
        if progress:
            progress("layers quantized", 0, 1)
        # Quantize where the artifact will be evaluated, in that dtype (as the awq backend does):
        # fp32 on CPU, fp16 on a GPU runner (the device is part of the cache key). On CPU no
        # device_map: that is the plain library call, and accelerate's dispatch only adds work.
        placement = {"device_map": {"": device}} if device != "cpu" else {}
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(baseline), dtype=dtype, quantization_config=config, use_safetensors=True, **placement
            ).eval()
        except Exception as exc:
            raise BackendError(f"int8 (torchao) quantization failed: {type(exc).__name__}: {exc}") from None
        if progress:
            progress("layers quantized", 1, 1)
        params = {
            "library": "torchao",
            "config": "Int8WeightOnlyConfig",
            "group_size": group if group is not None else -1,
            "granularity": "per-group" if group else "per-channel",
            "modules_to_not_convert": keep,
            "activation_dtype": str(dtype).removeprefix("torch."),
            "device": device,
        }

        def write() -> None:
            # save_pretrained only reads the model (state dict, config), so it can run while the
            # gate's sanity check does a forward on the same model.
            model.save_pretrained(out_dir, safe_serialization=True)

        return QuantizeOutcome(params=params, versions=package_versions(self.packages), model=model, write=write)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from transformers import AutoModelForCausalLM

        from gate.quantize.sources import compute_dtype

        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=compute_dtype(device), use_safetensors=True, device_map=device
        )
        return model.eval()
