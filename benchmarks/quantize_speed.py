"""Time-to-quantize per backend on the example model, gate overhead vs the bare library call, and
cache-hit re-run time.

    .venv/bin/python benchmarks/quantize_speed.py [--methods awq,int8,rtn] [--no-bare] [--json OUT]

Needs the example model (`gate example fetch`). Each backend runs once with a fresh cache (cold:
quantize + sanity check + provenance + lockfile), once more against that cache (hit), and — for
awq and int8 — the bare library call with the same parameters (load, quantize, save; nothing else).
Overhead = (gate cold - bare) / bare. The first measured step pays the import cost: run it twice
or read the per-step numbers.
"""

from __future__ import annotations

import argparse
import json
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

VARIANTS = {
    "awq": "  method: awq\n  bits: 4\n  group_size: 64\n  format: awq-gemm\n  options: {clip_search: false}\n",
    "int8": "  method: int8\n  bits: 8\n  group_size: -1\n  format: int8-weight-only\n",
    "rtn": "  method: rtn\n  bits: 4\n  group_size: 64\n  format: rtn\n",
}


def spec_for(method: str, out: Path) -> Path:
    """The example spec with its quantization section replaced by ``method``'s."""
    lines = (REPO / "models" / "smollm2-135m.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("quantization:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    text = "".join(lines[: start + 1]) + VARIANTS[method] + "".join(lines[end:])
    path = out / f"smollm2-{method}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def bare_awq(baseline: Path, texts: list[str], out: Path) -> float:
    import torch
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer

    from gate.quantize.awq import QUANTIZER_FACTORY

    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(baseline)
    calib = [tok.encode(t.strip())[:256] for t in texts]
    model = AutoAWQForCausalLM.from_pretrained(str(baseline), safetensors=True, device_map={"": "cpu"}, torch_dtype=torch.float32)
    model.quantize(
        tok, quant_config={"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM"}, calib_data=calib,
        apply_clip=False, max_calib_samples=len(calib), max_calib_seq_len=256, quantizer_cls=QUANTIZER_FACTORY(),
    )
    model.save_quantized(str(out))
    return time.perf_counter() - started


def bare_int8(baseline: Path, out: Path) -> float:
    import torch
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import AutoModelForCausalLM, TorchAoConfig

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(baseline), dtype=torch.float32, quantization_config=TorchAoConfig(Int8WeightOnlyConfig(), modules_to_not_convert=["lm_head"])
    )
    model.save_pretrained(out, safe_serialization=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="awq,int8,rtn")
    parser.add_argument("--no-bare", dest="bare", action="store_false")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from gate.cache import default_cache_dir
    from gate.quantize import prepare_baseline, produce_artifact
    from gate.quantize.calibration import load_calibration
    from gate.spec.loader import load_spec

    t0 = time.perf_counter()
    import torch  # noqa: F401  (import cost measured separately)
    import transformers  # noqa: F401

    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "import_seconds": round(time.perf_counter() - t0, 2),
    }
    work = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    try:
        shared = default_cache_dir(REPO)
        for method in args.methods.split(","):
            spec = load_spec(spec_for(method, work))
            baseline = prepare_baseline(spec, REPO, shared, progress=False)
            cache = work / f"cache-{method}"
            started = time.perf_counter()
            cold = produce_artifact(spec, baseline, REPO, cache, progress=False)
            cold_s = time.perf_counter() - started
            started = time.perf_counter()
            hit = produce_artifact(spec, baseline, REPO, cache, progress=False)
            hit_s = time.perf_counter() - started
            row: dict[str, object] = {
                "gate_cold_seconds": round(cold_s, 2),
                "backend_quantize_seconds": cold.quantize_seconds,
                "cache_hit": hit.cache_hit,
                "cache_hit_seconds": round(hit_s, 3),
                "sanity": cold.sanity.model_dump() if cold.sanity else None,
            }
            print(json.dumps({method: row}), flush=True)  # before the (long) bare run, so nothing is lost
            if args.bare and method in ("awq", "int8"):
                out = work / f"bare-{method}"
                if method == "awq":
                    cal = load_calibration(spec, REPO)
                    assert cal is not None
                    bare = bare_awq(baseline.path, list(cal.texts), out)
                else:
                    bare = bare_int8(baseline.path, out)
                row["bare_library_seconds"] = round(bare, 2)
                row["gate_overhead"] = round((cold_s - bare) / bare, 3)
                print(json.dumps({method: row}), flush=True)
            results[method] = row
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
