"""Memory plan vs reality: the static estimate (headers + config only) against the bytes of the
tensors a real model holds (CPU, or CUDA when present).

Compared like with like: the plan's weights (quantized + scales/zeros + full-precision tensors) and
KV cache against the measured bytes of the loaded model's parameters/buffers and of the
``past_key_values`` after a forward over ``context x batch`` tokens. Formats measured:

* fp16: the model cast to float16;
* AWQ int4 (GEMM format): every decoder linear replaced by autoawq's ``WQLinear_GEMM`` packed
  buffers (qweight/qzeros/scales), lm_head and embeddings kept fp16;
* int8 weight-only (torchao): the decoder linears quantized with ``Int8WeightOnlyConfig``.

Also reported: the plan's total (with its stated runtime overhead) against the peak RSS growth of a
fresh process loading the fp16 model and running the forward (measured from after ``import
torch, transformers``), which is what an RSS-based evaluation stage sees on CPU.

Run: ``.venv/bin/python benchmarks/memory_fit.py`` (about a minute on 2 CPU cores); SmolLM2 is
included when ``weights/SmolLM2-135M-Instruct.Q4_1.gguf`` exists (``gate example fetch``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gate.plan.checkpoint import Checkpoint, read_gguf, read_model_dir  # noqa: E402
from gate.plan.memory import build_plan, human_bytes, is_quantizable  # noqa: E402

SMOLLM2 = REPO / "weights" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def tensor_bytes(t: Any) -> int:
    """Bytes of a tensor, following tensor subclasses (torchao) down to their plain storage."""
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ not in ("Parameter", "Tensor"):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    data = t.data if hasattr(t, "data") and type(t).__name__ == "Parameter" else t
    if hasattr(data, "__tensor_flatten__") and type(data).__name__ != "Tensor":
        return tensor_bytes(data)
    return int(t.numel() * t.element_size())


def model_bytes(model: Any) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if tensor.dim() == 1 and tensor.numel() > 0 and "rotary" in _owner(model, tensor):
            continue  # rotary inv_freq: a few floats computed at load, not checkpoint weights
        total += tensor_bytes(tensor)
    return total


def _owner(model: Any, tensor: Any) -> str:
    for name, buf in model.named_buffers():
        if buf is tensor:
            return name
    return ""


def kv_bytes(cache: Any) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        for attr in ("keys", "values"):
            t = getattr(layer, attr, None)
            if t is not None:
                total += int(t.numel() * t.element_size())
    if total == 0 and isinstance(cache, (tuple, list)):
        for k, v in cache:
            total += int(k.numel() * k.element_size() + v.numel() * v.element_size())
    return total


def rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_child(source: str, context: int, batch: int) -> None:
    """In a fresh process: peak RSS growth of loading ``source`` in fp16 and one cached forward."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    base = rss_now()
    path = Path(source)
    if path.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float16)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16)
    ids = torch.randint(0, model.config.vocab_size, (batch, context))
    with torch.no_grad():
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
    print(json.dumps({"growth": peak_rss() - base}))


def rss_growth(source: Path, context: int, batch: int) -> int:
    import json
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--rss-child", str(source), str(context), str(batch)],
                          capture_output=True, text=True, check=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1])["growth"])


def awq_pack(model: Any, group: int) -> None:
    """Swap every decoder linear for autoawq's packed GEMM module (buffers only; values irrelevant)."""
    import torch
    from awq.modules.linear.gemm import WQLinear_GEMM

    for name, module in list(model.named_modules()):
        if isinstance(module, torch.nn.Linear) and is_quantizable_module(name, module):
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            packed = WQLinear_GEMM.from_linear(module, 4, group, init_only=True)
            setattr(parent, name.rsplit(".", 1)[1], packed)


def is_quantizable_module(name: str, module: Any) -> bool:
    from gate.plan.checkpoint import TensorInfo

    return is_quantizable(TensorInfo(name + ".weight", tuple(module.weight.shape), 16))


def int8_quantize(model: Any) -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: is_quantizable_module(fqn, m) if hasattr(m, "weight") and m.weight.dim() == 2 else False)


def measure(load: Any, fmt: str, group: int, context: int, batch: int, device: str) -> dict[str, int]:
    import torch

    model = load().to(torch.float16)
    if fmt == "awq":
        awq_pack(model, group)
    elif fmt == "int8":
        int8_quantize(model)
    model = model.to(device).eval()
    weights = model_bytes(model)
    out: dict[str, int] = {"weights": weights}
    if fmt == "fp16":
        ids = torch.randint(0, model.config.vocab_size, (batch, context), device=device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            result = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        out["kv"] = kv_bytes(result.past_key_values)
        if device == "cuda":
            out["peak"] = int(torch.cuda.max_memory_allocated())
    del model
    return out


def planned(ckpt: Checkpoint, fmt: str, group: int, context: int, batch: int, device: str) -> dict[str, int]:
    bits, g, method = {"fp16": (16, None, None), "awq": (4, group, "awq"), "int8": (8, None, "int8")}[fmt]
    plan = build_plan(ckpt, method=method, bits=bits, group_size=g, keep_full_precision=[], context=context,
                      batch=batch, target_hardware=None, target_memory_gb=None, target_memory_source=None,
                      device_kind="gpu" if device == "cuda" else "cpu")
    return {"weights": plan.quantized_weights_bytes + plan.scales_zeros_bytes + plan.full_precision_bytes,
            "kv": plan.kv_cache_bytes, "total": plan.total_bytes}


def tiny_models(tmp: Path) -> list[tuple[str, Checkpoint, Any, int, int, int, Path]]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = []
    shapes: tuple[tuple[str, dict[str, Any], int, int, int], ...] = (
        ("tiny-llama (h64, 2 layers, GQA 4/2)", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                     num_attention_heads=4, num_key_value_heads=2), 64, 512, 2),
        ("small-llama (h512, 4 layers, GQA 8/2)", dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                                                       num_attention_heads=8, num_key_value_heads=2), 128, 1024, 4),
    )
    for label, kw, group, context, batch in shapes:
        config = LlamaConfig(vocab_size=4096, max_position_embeddings=2048, tie_word_embeddings=False, **kw)
        torch.manual_seed(0)
        path = tmp / label.split()[0]
        LlamaForCausalLM(config).save_pretrained(path)
        ckpt = read_model_dir(path, label)
        out.append((label, ckpt, lambda p=path: LlamaForCausalLM.from_pretrained(p), group, context, batch, path))
    return out


def smollm2() -> list[tuple[str, Checkpoint, Any, int, int, int, Path]]:
    if not SMOLLM2.is_file():
        return []
    import copy

    from transformers import AutoModelForCausalLM

    ckpt = read_gguf(SMOLLM2, "SmolLM2-135M")
    loaded: list[Any] = []

    def load() -> Any:  # dequantizing the GGUF takes minutes on 2 cores: do it once, copy after
        if not loaded:
            loaded.append(AutoModelForCausalLM.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name))
        return copy.deepcopy(loaded[0])

    return [("SmolLM2-135M (GGUF, h576, 30 layers, GQA 9/3)", ckpt, load, 64, 2048, 1, SMOLLM2)]


def plan_timing() -> list[tuple[str, float]]:
    """Wall time of reading a checkpoint's metadata and planning it (what `gate check` adds per spec)."""
    out = []
    if SMOLLM2.is_file():
        start = time.perf_counter()
        for _ in range(5):
            ckpt = read_gguf(SMOLLM2, "SmolLM2-135M")
            build_plan(ckpt, method="awq", bits=4, group_size=64, keep_full_precision=[], context=2048, batch=1,
                       target_hardware=None, target_memory_gb=4, target_memory_source=None, device_kind="cpu")
        out.append(("SmolLM2-135M GGUF (97 MB): header parse + plan", (time.perf_counter() - start) / 5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-smollm2", action="store_true")
    parser.add_argument("--rss-child", nargs=3, metavar=("SOURCE", "CONTEXT", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]), int(args.rss_child[2]))
        return
    import torch

    torch.set_num_threads(2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# memory plan vs measured ({platform.machine()}, {os.cpu_count()} CPUs, device {device}, torch {torch.__version__})\n")
    rows = []
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        models = tiny_models(Path(tmp)) + ([] if args.no_smollm2 else smollm2())
        for label, ckpt, load, group, context, batch, source in models:
            if device == "cpu":
                totals.append((label, context, batch, planned(ckpt, "fp16", group, context, batch, device)["total"],
                               rss_growth(source, context, batch)))
            for fmt in ("fp16", "awq", "int8"):
                start = time.perf_counter()
                try:
                    got = measure(load, fmt, group, context, batch, device)
                except Exception as exc:
                    print(f"{label} {fmt}: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
                    continue
                plan = planned(ckpt, fmt, group, context, batch, device)
                if "peak" in got:  # CUDA: the allocator's peak during load + forward
                    totals.append((label, context, batch, plan["total"], got["peak"]))
                rows.append((label, fmt, group, context, batch, plan, got, time.perf_counter() - start))
    print("| model | format | context x batch | planned weights | measured weights | error | planned KV | measured KV | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, fmt, group, context, batch, plan, got, _ in rows:
        name = f"{fmt} g{group}" if fmt == "awq" else fmt
        werr = (plan["weights"] - got["weights"]) / got["weights"]
        kv = got.get("kv")
        kv_cells = (f"{human_bytes(plan['kv'])} | {human_bytes(kv)} | {(plan['kv'] - kv) / kv:+.1%}" if kv
                    else "— | — | —")
        print(f"| {label} | {name} | {context} x {batch} | {human_bytes(plan['weights'])} | {human_bytes(got['weights'])} "
              f"| {werr:+.1%} | {kv_cells} |")
    for label, seconds in plan_timing():
        print(f"\n{label}: {seconds * 1000:.0f} ms")
    if totals:
        what = "peak RSS growth" if device == "cpu" else "CUDA max_memory_allocated"
        print(f"\n| model (fp16) | context x batch | planned total (incl. stated overhead) | {what} | plan - measured |")
        print("|---|---|---|---|---|")
        for label, context, batch, total, growth in totals:
            print(f"| {label} | {context} x {batch} | {human_bytes(total)} | {human_bytes(growth)} | "
                  f"{human_bytes(total - growth)} |")


if __name__ == "__main__":
    main()
