"""Time to quantize and word perplexity per backend x scheme on the example model, same calibration.

    .venv/bin/python benchmarks/quantize_backends.py [--schemes awq-w4g64,gguf-q4_k_m,...] [--docs N] [--json OUT]
        [--device cuda] [--random-init llama-3.2-1b]

Needs the example model (``gate example fetch``) and, for the GGUF rows, the llama.cpp build
(``scripts/build-llama-cpp.sh``). Every scheme quantizes the same baseline with the example spec's
calibration (128 samples x 32 tokens) through ``produce_artifact`` into an empty artifact cache
(``quantize_s``: the whole gate step, sanity check and lockfile included). Word perplexity is
computed the same way for every row: the artifact loaded with ``load_for_eval`` (GGUF dequantized
by transformers' reader), each of the first ``--docs`` documents of ``qg_license_ppl`` scored
whole, exp(sum of token NLL / number of words). GGUF rows also report ``llama-perplexity`` (token
perplexity as llama.cpp serves the model, 64-token contexts) next to the baseline converted
losslessly. Ratios are within one run; absolute seconds on a shared 2-core box are upper bounds.

On a GPU machine (``scripts/gpu-check.sh``): ``--device cuda`` scores word perplexity there (the
backends use the GPU whenever CUDA is present), and ``--random-init NAME`` times quantization of a
randomly initialised model built from a published architecture's config (no Hub access needed;
SmolLM2's tokenizer feeds it the same calibration): only ``quantize_s`` and the artifact size mean
anything there, so word perplexity is not computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

_LLMC = ("  method: llmcompressor\n  bits: {bits}\n  group_size: {group}\n  format: {fmt}\n"
         "  options: {{algorithm: {alg}{extra}}}\n")
SCHEMES = {
    "gguf-q4_k_m": "  method: gguf\n  bits: 4\n  group_size: -1\n  format: gguf-q4_k_m\n",
    "gguf-q8_0": "  method: gguf\n  bits: 8\n  group_size: -1\n  format: gguf-q8_0\n",
    "gguf-iq4_nl": "  method: gguf\n  bits: 4\n  group_size: -1\n  format: gguf-iq4_nl\n",
    "rtn-w4g64": "  method: rtn\n  bits: 4\n  group_size: 64\n  format: rtn\n",
    "int8": "  method: int8\n  bits: 8\n  group_size: -1\n  format: int8-weight-only\n",
    "llmc-gptq-w4g64": _LLMC.format(bits=4, group=64, fmt="ct-w4a16", alg="gptq", extra=""),
    "llmc-awq-w4g64": _LLMC.format(bits=4, group=64, fmt="ct-w4a16", alg="awq", extra=""),
    "autoawq-w4g64": "  method: awq\n  bits: 4\n  group_size: 64\n  format: awq-gemm\n  options: {clip_search: false}\n",
    "llmc-w8a8-int8": _LLMC.format(bits=8, group=-1, fmt="ct-w8a8-int8", alg="smoothquant-gptq", extra=""),
    "llmc-rtn-w8a8-int8": _LLMC.format(bits=8, group=-1, fmt="ct-w8a8-int8", alg="ct-rtn", extra=""),
    "llmc-rtn-w4g64": _LLMC.format(bits=4, group=64, fmt="ct-w4a16", alg="ct-rtn", extra=""),
    # AWQ with 16 calibration samples per forward (8 forwards per grid point instead of 128, closer
    # to autoawq's one batched forward; the last batch is cut to its shortest sample: 3,904 of the
    # 4,020 calibration tokens are used).
    "llmc-awq-w4g64-b16": _LLMC.format(bits=4, group=64, fmt="ct-w4a16", alg="awq", extra=", batch_size: 16"),
    "gguf-q5_k_m": "  method: gguf\n  bits: 5\n  group_size: -1\n  format: gguf-q5_k_m\n",
    "gguf-q6_k": "  method: gguf\n  bits: 6\n  group_size: -1\n  format: gguf-q6_k\n",
    "llmc-fp8": "  method: llmcompressor\n  bits: 8\n  group_size: -1\n  format: ct-fp8\n",
    "llmc-gptq-w4g128": _LLMC.format(bits=4, group=128, fmt="ct-w4a16", alg="gptq", extra=""),
}
"""SmolLM2-135M's width 576 is not a multiple of 256: in the K-quant rows llama-quantize stores
those tensors in a fallback type (``gguf_params.tensor_types`` says which)."""


RANDOM_INIT = {
    # Llama-3.2-1B's published config.json (architecture numbers only; the weights are random).
    "llama-3.2-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072,
                     "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True},
    # Llama-3.1-8B's.
    "llama-3.1-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072,
                     "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False},
}


def _replace_section(lines: list[str], key: str, body: str) -> list[str]:
    start = lines.index(f"{key}:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    return [*lines[: start + 1], body, *lines[end:]]


def spec_for(name: str, out: Path, model_dir: Path | None = None) -> Path:
    """The example spec with its quantization section replaced by scheme ``name``'s (and its model by
    ``model_dir`` when given)."""
    lines = (REPO / "models" / "smollm2-135m.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    lines = _replace_section(lines, "quantization", SCHEMES[name])
    if model_dir is not None:
        lines = _replace_section(lines, "model", f"  path: {model_dir}\n")
    path = out / f"spec-{len(list(out.glob('spec-*')))}.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def random_model(name: str, tokenizer_from: Path, out: Path) -> Path:
    """A randomly initialised LlamaForCausalLM with ``RANDOM_INIT[name]``'s shapes, in bf16, with the
    example's tokenizer (its ids are all below the config's vocabulary size)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**RANDOM_INIT[name], dtype="bfloat16")
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    for file in tokenizer_from.iterdir():
        if file.name.startswith(("tokenizer", "special_tokens")) or file.name == "generation_config.json":
            shutil.copy(file, out / file.name)
    return out


def eval_docs(count: int) -> list[str]:
    rows = (REPO / "gate" / "evaluate" / "tasks" / "data" / "qg_license_ppl.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(r)["text"] for r in rows[:count]]


def word_perplexity(path: Path, docs: list[str], device: str = "cpu") -> float:
    import torch

    from gate.quantize import load_for_eval

    model, tokenizer = load_for_eval(path, device)
    nll, words = 0.0, 0
    with torch.inference_mode():
        for doc in docs:
            ids = tokenizer(doc, return_tensors="pt")["input_ids"].to(device)
            out = model(input_ids=ids, labels=ids)
            nll += float(out.loss) * (ids.shape[1] - 1)
            words += len(doc.split())
    return round(math.exp(nll / words), 3)


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="where word perplexity is scored (cpu or cuda)")
    parser.add_argument("--random-init", choices=sorted(RANDOM_INIT), default=None,
                        help="time quantization of a random model with this architecture (no perplexity)")
    args = parser.parse_args()

    from gate.cache import default_cache_dir
    from gate.errors import GateError
    from gate.quantize import prepare_baseline, produce_artifact
    from gate.quantize.gguf import imatrix_text, perplexity
    from gate.spec.loader import load_spec

    docs = eval_docs(args.docs)
    work = Path(tempfile.mkdtemp(prefix="gate-bench-backends-"))
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {gpu_name()}",
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "docs": len(docs), "words": sum(len(d.split()) for d in docs),
    }
    rows: list[dict[str, object]] = []
    try:
        first = load_spec(spec_for("rtn-w4g64", work))
        baseline = prepare_baseline(first, REPO, default_cache_dir(REPO))
        model_dir: Path | None = None
        if args.random_init:
            model_dir = random_model(args.random_init, baseline.path, work / args.random_init)
            baseline = prepare_baseline(load_spec(spec_for("rtn-w4g64", work, model_dir)), REPO, default_cache_dir(REPO))
            results["random_init"] = args.random_init
        else:
            rows.append({"scheme": "baseline (fp32)", "quantize_s": None,
                         "word_perplexity": word_perplexity(baseline.path, docs, args.device)})
            print(json.dumps(rows[-1]), flush=True)
        text = work / "eval.txt"
        text.write_text(imatrix_text(docs), encoding="utf-8")
        llama_base: float | None = None
        for name in args.schemes.split(","):
            loaded = load_spec(spec_for(name, work, model_dir))
            cache = work / f"cache-{len(rows)}"
            started = time.perf_counter()
            try:
                artifact = produce_artifact(loaded, baseline, REPO, cache, progress=False)
            except GateError as exc:
                rows.append({"scheme": name, "error": exc.message})
                print(json.dumps(rows[-1]), flush=True)
                continue
            row: dict[str, object] = {
                "scheme": name, "quantize_s": round(time.perf_counter() - started, 2),
                "artifact_mb": round(sum(p.stat().st_size for p in artifact.path.rglob("*") if p.is_file()) / 1e6, 1),
            }
            if "device" in artifact.params:
                row.update({k: artifact.params.get(k) for k in ("device", "gpu", "peak_gpu_memory_mb")})
            if model_dir is None:
                row["word_perplexity"] = word_perplexity(artifact.path, docs, args.device)
            if name.startswith("gguf") and model_dir is None:
                if llama_base is None:
                    from gate.quantize.llamacpp import find_llama_cpp

                    f32 = work / "baseline-f32.gguf"
                    import subprocess

                    subprocess.run([sys.executable, find_llama_cpp().convert_script, baseline.path, "--outfile", f32,
                                    "--outtype", "f32"], check=True, capture_output=True)
                    llama_base, _ = perplexity(f32, text, context=64, log=work / "ppl-base.log")
                    results["llama_perplexity_baseline_f32"] = llama_base
                ppl, err = perplexity(artifact.path / "model.gguf", text, context=64, log=work / f"ppl-{len(rows)}.log")
                row["llama_perplexity"] = f"{ppl} ± {err}"
                row["gguf_params"] = artifact.params
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["rows"] = rows
    text_out = json.dumps(results, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
