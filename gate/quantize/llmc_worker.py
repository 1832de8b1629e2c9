"""The llm-compressor worker: runs INSIDE the isolated environment (scripts/make-llmcompressor-env.sh).

Standard library + llmcompressor only; it never imports ``gate`` (that environment does not have
it). Usage: ``python llmc_worker.py REQUEST.json``; the request says the baseline directory, the
output directory, the scheme and the calibration; the worker writes a compressed-tensors
checkpoint (weights + ``config.json`` with ``quantization_config``) and ``recipe.yaml`` into the
output directory, then prints one JSON line ``{"ok": true, "recipe": ..., "versions": ...}``.
Any failure prints ``{"ok": false, "error": ..., "kind": ...}`` and exits 1.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any


def weights(bits: int, group_size: int | None, symmetric: bool = True) -> dict[str, Any]:
    if group_size:
        return {"num_bits": bits, "type": "int", "symmetric": symmetric, "strategy": "group", "group_size": group_size}
    return {"num_bits": bits, "type": "int", "symmetric": symmetric, "strategy": "channel"}


def build_recipe(req: dict[str, Any]) -> list[Any]:
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    scheme, ignore = req["scheme"], list(req["ignore"])
    group = req.get("group_size")
    if scheme == "gptq-w4a16" or scheme == "gptq-w8a16":
        bits = 4 if scheme == "gptq-w4a16" else 8
        groups = {"group_0": {"targets": ["Linear"], "weights": weights(bits, group)}}
        return [GPTQModifier(config_groups=groups, ignore=ignore, dampening_frac=float(req.get("dampening", 0.01)))]
    if scheme == "awq-w4a16":
        from llmcompressor.modifiers.awq import AWQModifier

        # Symmetric: transformers 5.23 + compressed-tensors 0.19 cannot reload the asymmetric
        # checkpoint's packed zero points (measured: a size mismatch on load).
        groups = {"group_0": {"targets": ["Linear"], "weights": weights(4, group, symmetric=True)}}
        return [AWQModifier(config_groups=groups, ignore=ignore)]
    if scheme == "w8a8-int8":
        try:
            from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier
        except ImportError:  # older layout
            from llmcompressor.modifiers.smoothquant import SmoothQuantModifier
        return [SmoothQuantModifier(smoothing_strength=float(req.get("smoothing_strength", 0.8))),
                GPTQModifier(targets="Linear", scheme="W8A8", ignore=ignore)]
    if scheme in ("rtn-w4a16", "rtn-w8a16"):
        # Data-free: min-max scales, each weight rounded to its nearest level (no calibration pass).
        groups = {"group_0": {"targets": ["Linear"], "weights": weights(4 if scheme == "rtn-w4a16" else 8, group)}}
        return [QuantizationModifier(config_groups=groups, ignore=ignore)]
    if scheme == "rtn-w8a8-int8":
        # The W8A8 preset: int8 per-channel symmetric weights, int8 per-token dynamic activations
        # (their scales are computed at serving time, so nothing is calibrated here).
        return [QuantizationModifier(targets="Linear", scheme="W8A8", ignore=ignore)]
    if scheme == "fp8-dynamic":
        return [QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=ignore)]
    raise ValueError(f"unknown scheme {scheme!r}")


def cpu_without_pinning() -> None:
    """llmcompressor 0.14.0.1's AWQ pins its cached activations (``IntermediatesCache.pin_memory``)
    for faster host-to-device copies; on a machine without an accelerator ``Tensor.pin_memory``
    raises "Cannot access accelerator device when none is available". Without a device there is no
    copy to speed up, so pinning is skipped there (measured: AWQ then runs on CPU)."""
    import torch

    if torch.cuda.is_available() or (hasattr(torch, "accelerator") and torch.accelerator.is_available()):
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def main(path: str) -> int:
    req = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        import importlib.metadata as md

        import torch
        from datasets import Dataset
        from llmcompressor import oneshot
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(int(req["seed"]))
        baseline, out = req["baseline"], Path(req["out_dir"])
        tokenizer = AutoTokenizer.from_pretrained(baseline)
        cuda = torch.cuda.is_available()
        # On CUDA llm-compressor's sequential pipeline onloads each layer to the GPU; bf16 there (its
        # examples' dtype), fp32 on CPU (no fast bf16 matmul on the dev machines).
        model = AutoModelForCausalLM.from_pretrained(baseline, dtype=torch.bfloat16 if cuda else torch.float32)
        cpu_without_pinning()
        recipe = build_recipe(req)
        if req.get("calibration") is None:  # data-free (ct-rtn): llm-compressor's datafree pipeline
            oneshot(model=model, recipe=recipe, output_dir=None)
        else:
            texts = json.loads(Path(req["calibration"]).read_text(encoding="utf-8"))
            rows = [tokenizer(t, truncation=True, max_length=int(req["max_seq_len"]), add_special_tokens=True)
                    for t in texts]
            data = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                                      "attention_mask": [r["attention_mask"] for r in rows]})
            # batch_size > 1: llm-compressor sorts the samples by length (descending) and cuts each
            # batch to its shortest sample (its default "truncation" collator), no padding tokens.
            oneshot(model=model, dataset=data, recipe=recipe, max_seq_length=int(req["max_seq_len"]),
                    num_calibration_samples=len(rows), batch_size=int(req.get("batch_size", 1)), output_dir=None)
        model.save_pretrained(out, save_compressed=True)
        versions = {n: md.version(n) for n in ("llmcompressor", "compressed-tensors", "transformers", "torch")}
        recipe_text = (out / "recipe.yaml").read_text(encoding="utf-8") if (out / "recipe.yaml").is_file() else None
        device = {"device": "cuda" if cuda else "cpu",
                  "gpu": torch.cuda.get_device_name(0) if cuda else None,
                  "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}
        print(json.dumps({"ok": True, "versions": versions, "recipe": recipe_text, **device}))
        return 0
    except MemoryError:
        print(json.dumps({"ok": False, "kind": "oom", "error": "out of memory"}))
    except Exception as exc:  # every failure is reported to the gate as data
        kind = "oom" if type(exc).__name__ == "OutOfMemoryError" else "error"
        tb = traceback.format_exc().strip().splitlines()[-6:]
        print(json.dumps({"ok": False, "kind": kind, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
