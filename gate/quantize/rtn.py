"""Round-to-nearest (RTN): group-wise weight-only quantization, the correctness reference.

Small and readable on purpose. For every quantized linear ``W[out, in]`` and each group of
``group_size`` input columns (the whole row when per-channel)::

    asymmetric: scale = (max - min) / (2**bits - 1); zero = round(-min / scale)
                q = clamp(round(W / scale) + zero, 0, 2**bits - 1);  W' = (q - zero) * scale
    symmetric:  scale = max|W| / (2**(bits-1) - 1); zero = 2**(bits-1)
                q = clamp(round(W / scale) + zero, 0, 2**bits - 1)

The artifact stores the integer codes (``uint8``; two per byte at <= 4 bits), the scales and zero
points in safetensors, with ``quantization_config.quant_method = "gate-rtn"`` in config.json.
RTN is not a serving format: ``load`` dequantizes to fp32 (fast on CPU). Any bit width 2..8 is
accepted, so tests can build a deliberately broken 2-bit model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.quantize.checks import matches
from gate.quantize.descriptor import BackendDescriptor, FormatSpec
from gate.quantize.interface import Progress, QuantizeOutcome, Quantizer, QuantizeRequest, QuantizerInputError

QUANT_METHOD = "gate-rtn"
FORMAT_VERSION = 1

DESCRIPTOR = BackendDescriptor(
    alias="rtn",
    implementation="gate.quantize.rtn:RtnBackend",
    summary="round-to-nearest group-wise weights, dequantized on load: the correctness reference",
    formats=(FormatSpec("rtn", (2, 3, 4, 8), "anywhere (dequantize + matmul): a correctness reference",
                        algorithms=("rtn",)),),
    bits=(2, 3, 4, 5, 6, 7, 8),
    requires=("torch", "transformers"),
)


class RtnBackend(Quantizer):
    alias = DESCRIPTOR.alias
    supported_bits = DESCRIPTOR.bits
    supports_keep_full_precision = True
    needs_calibration = DESCRIPTOR.needs_calibration
    packages = ("torch", "transformers", "safetensors")
    option_names = ("symmetric",)

    def cache_fields(self) -> dict[str, Any]:
        from gate.quantize.descriptor import code_digest

        return {"code": code_digest(Path(__file__))}  # the code turning the spec into the library call

    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        import torch
        from safetensors.torch import save_file

        from gate.quantize.sources import load_hf_model, package_versions

        symmetric = bool(request.options.get("symmetric", False))
        model = load_hf_model(baseline)
        tied = _tied_names(model)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        linears = [
            (name, mod) for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and not matches(name, request.keep_full_precision) and name not in tied
        ]
        tensors: dict[str, torch.Tensor] = {}
        for index, (name, module) in enumerate(linears):
            codes, scales, zeros = quantize_weight(module.weight.detach().float(), request.bits, request.group_size, symmetric)
            state.pop(f"{name}.weight")
            tensors[f"{name}.qweight"] = pack(codes, request.bits)
            tensors[f"{name}.scales"] = scales.contiguous()
            tensors[f"{name}.zeros"] = zeros.contiguous()
            # What ``load`` will compute, kept in memory for the sanity check (no reload).
            module.weight.data = dequantize(codes, scales, zeros, request.group_size or -1)
            if progress:
                progress("layers quantized", index + 1, len(linears))
        for key, value in state.items():
            if key in tensors:
                continue
            if any(key == f"{t}.weight" for t in tied):
                continue  # tied: re-created from the embedding on load
            tensors[key] = value.float() if value.is_floating_point() else value
        qconfig: dict[str, Any] = {
            "quant_method": QUANT_METHOD,
            "format_version": FORMAT_VERSION,
            "bits": request.bits,
            "group_size": request.group_size if request.group_size is not None else -1,
            "symmetric": symmetric,
            "packed": request.bits <= 4,
            "modules": [name for name, _ in linears],
            "modules_to_not_convert": sorted(
                {name for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)} - {n for n, _ in linears}
            ),
        }
        config = json.loads((baseline / "config.json").read_text(encoding="utf-8"))
        config["quantization_config"] = qconfig
        params = {k: v for k, v in qconfig.items() if k not in ("modules", "quant_method", "format_version")}
        params["quantized_modules"] = len(linears)

        def write() -> None:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt", "quant_method": QUANT_METHOD})
            (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        return QuantizeOutcome(params=params, versions=package_versions(self.packages), model=model.eval(), write=write)

    def load(self, path: Path, device: str = "cpu") -> Any:
        import torch
        from safetensors.torch import load_file

        from gate.quantize.sources import model_from_state

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        qconfig = config["quantization_config"]
        group = int(qconfig["group_size"])
        tensors = load_file(str(path / "model.safetensors"))
        state: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            if key.endswith((".scales", ".zeros")):
                continue
            if key.endswith(".qweight"):
                name = key[: -len(".qweight")]
                codes = unpack(value) if qconfig["packed"] else value
                state[f"{name}.weight"] = dequantize(codes, tensors[f"{name}.scales"], tensors[f"{name}.zeros"], group)
            else:
                state[key] = value
        return model_from_state(path, state, device)


def quantize_weight(w: Any, bits: int, group_size: int | None, symmetric: bool) -> tuple[Any, Any, Any]:
    """Codes ``uint8[out, in]``, scales ``float32[out, groups]``, zeros ``uint8[out, groups]``."""
    import torch

    out_features, in_features = w.shape
    group = in_features if group_size is None or group_size <= 0 else group_size
    grouped = w.reshape(out_features, in_features // group, group)
    qmax = 2**bits - 1
    if symmetric:
        scales = grouped.abs().amax(dim=-1) / (2 ** (bits - 1) - 1 if bits > 1 else 1)
        zeros = torch.full_like(scales, float(2 ** (bits - 1)))
    else:
        lo = grouped.amin(dim=-1).clamp(max=0)
        hi = grouped.amax(dim=-1).clamp(min=0)
        scales = (hi - lo) / qmax
        zeros = torch.round(-lo / scales.clamp(min=1e-12)).clamp(0, qmax)
    scales = scales.clamp(min=1e-12)
    codes = torch.clamp(torch.round(grouped / scales[..., None]) + zeros[..., None], 0, qmax)
    return codes.reshape(out_features, in_features).to(torch.uint8), scales.float(), zeros.to(torch.uint8)


def dequantize(codes: Any, scales: Any, zeros: Any, group_size: int) -> Any:
    """fp32 weights from codes, scales and zero points."""
    out_features, in_features = codes.shape
    group = in_features if group_size <= 0 else group_size
    grouped = codes.float().reshape(out_features, in_features // group, group)
    return ((grouped - zeros.float()[..., None]) * scales.float()[..., None]).reshape(out_features, in_features)


def pack(codes: Any, bits: int) -> Any:
    """Two codes per byte at <= 4 bits (low nibble first); one per byte otherwise."""
    if bits > 4:
        return codes
    if codes.shape[1] % 2:
        raise QuantizerInputError(
            "quantization.bits", f"rtn cannot pack {bits}-bit codes of a linear with odd input size {codes.shape[1]}",
            hint="use bits: 8 for this model",
        )
    pairs = codes.reshape(codes.shape[0], -1, 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).contiguous()


def unpack(packed: Any) -> Any:
    """Inverse of ``pack`` for <= 4-bit codes."""
    import torch

    lo = packed & 0x0F
    hi = packed >> 4
    return torch.stack((lo, hi), dim=-1).reshape(packed.shape[0], -1)


def _tied_names(model: Any) -> set[str]:
    """Linear modules whose weight is the input embedding (tied lm_head): left unquantized."""
    embed = model.get_input_embeddings()
    out = model.get_output_embeddings()
    if embed is not None and out is not None and out.weight.data_ptr() == embed.weight.data_ptr():
        return {name for name, mod in model.named_modules() if mod is out}
    return set()
