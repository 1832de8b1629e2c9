"""The llama.cpp runtime: the gate's own figures against llama.cpp's, on the shipped GGUF example.

    .venv/bin/python benchmarks/serve_llama_cpp.py [--cache-dir DIR] [--threads N] [--skip-cold] [--out FILE]

1. Time to the GGUF example's verdict, cold: ``gate run models/smollm2-135m-gguf.yaml`` as a new
   process on an empty cache directory (baseline conversion, GGUF quantization, baseline and
   candidate served by llama.cpp, verdict). Target: <= 3 min on a CPU machine. ``--skip-cold``
   reuses an existing ``--cache-dir`` instead (the run must have been done once).
2. Decode tokens/s as the gate reports it (``LlamaServedModel.performance``: llama-server's own
   ``timings``, batch 1, after a 128-token prompt) against ``llama-bench -p 0 -n N -d 128``
   (llama.cpp's benchmark tool, decoding at the same depth) on the same Q4_K_M file and thread count, measured one after the other in this run. Target ratio 0.9-1.1.
   Skipped with a note when the build has no ``llama-bench``.
3. Peak memory the gate reports (peak RSS of the server's process tree) against llama.cpp's own
   accounting in the server log (model + KV cache + compute buffer sizes, MiB). Target 0.9-1.1.

Prints one JSON object (and writes it to ``--out``); the numbers go to docs/benchmarks/serve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "models" / "smollm2-135m-gguf.yaml"


def cold_run(cache: Path) -> dict[str, object]:
    out = cache.parent / "gguf-example-result.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gate.cli", "run", str(SPEC), "--no-registry", "--no-mlflow",
                           "--cache-dir", str(cache), "--out", str(out), "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if not out.is_file():
        raise SystemExit(f"gate run wrote no result (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    verdict = result.get("verdict", {})
    return {"seconds": round(seconds, 1), "exit_code": proc.returncode, "decision": verdict.get("decision"),
            "reasons": verdict.get("reasons", [])[:4], "stages": [(s["stage"], round(s["seconds"], 1))
                                                                 for s in result.get("stages", [])]}


def artifact_gguf(cache: Path) -> Path:
    found = sorted(cache.glob("artifacts/*/model.gguf"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no GGUF artifact under {cache}/artifacts: run without --skip-cold first")
    return found[-1]


PROMPT_TOKENS = 128
"""The prompt the gate's decode figure is measured after; llama-bench decodes at the same depth."""


def gate_figures(artifact: Path, threads: int, decode: int, work: Path) -> dict[str, float]:
    from gate.evaluate.performance import PerformanceSettings
    from gate.serve import get_runtime
    from gate.serve.interface import OpenRequest, ServingArgs

    request = OpenRequest(model_dir=artifact.parent, role="candidate", work_dir=work,
                          args=ServingArgs(threads=threads, max_context=2048))
    with get_runtime("llama-cpp").open(request) as served:
        perf = served.performance(PerformanceSettings(prompt_tokens=PROMPT_TOKENS, decode_tokens=decode, batch_sizes=(1,),
                                                      warmup=1, repeats=5))
    return {"decode_tokens_per_s": 1000.0 / perf.decode_ms_per_token_p50, "batch1_tokens_per_s": perf.tokens_per_s["1"],
            "prefill_ms_p50": perf.prefill_ms_p50, "peak_rss_bytes": perf.peak_memory_bytes,
            "llama_buffers_bytes": runtime_accounting(artifact, threads, work) * 2**20}


def runtime_accounting(artifact: Path, threads: int, work: Path) -> float:
    """llama.cpp's own memory accounting for the same file and arguments, MiB: the buffer sizes a
    llama-server started at verbosity 4 logs (model, repacked weights, output, KV cache, compute)."""
    from gate.quantize.llamacpp import find_llama_cpp
    from gate.serve.process import ServerProcess

    tool = find_llama_cpp(("llama-server",)).tool("llama-server")
    log = work / "accounting.log"
    with ServerProcess(name="llama-server", log=log, env=dict(os.environ), start_timeout_s=300,
                       command=lambda port: [str(tool), "-m", str(artifact), "--host", "127.0.0.1", "--port",
                                             str(port), "-t", str(threads), "-c", "2048", "--parallel", "1",
                                             "-lv", "4"]):
        pass
    return sum(float(m) for m in re.findall(r"buffer size =\s+([0-9.]+) MiB", log.read_text(errors="replace")))


def llama_bench(artifact: Path, threads: int, decode: int) -> float | None:
    from gate.quantize.llamacpp import build_dir

    tool = build_dir() / "bin" / "llama-bench"
    if not tool.is_file():
        return None
    # -d: decode after as many tokens of context as the gate's prompt (PROMPT_TOKENS), as the server's
    # decode is measured; at depth 0 llama-bench decodes 14% faster here (80.2 vs 70.1 tokens/s).
    out = subprocess.run([str(tool), "-m", str(artifact), "-p", "0", "-n", str(decode), "-d", str(PROMPT_TOKENS),
                          "-t", str(threads), "-r", "5", "-o", "json"], capture_output=True, text=True,
                         check=True).stdout
    rows = json.loads(out)
    return float(rows[0]["avg_ts"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="gate cache for the example (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--decode", type=int, default=32, help="tokens generated per measurement")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        report: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                     "load_average": os.getloadavg()[0], "threads": args.threads}
        if not args.skip_cold:
            report["cold_example_verdict"] = cold_run(cache)
        artifact = artifact_gguf(cache)
        gate = gate_figures(artifact, args.threads, args.decode, Path(tmp) / "work")
        bench = llama_bench(artifact, args.threads, args.decode)
        report["decode"] = {"gate_tokens_per_s": round(gate["decode_tokens_per_s"], 2),
                            "llama_bench_tokens_per_s": round(bench, 2) if bench else None,
                            "ratio": round(gate["decode_tokens_per_s"] / bench, 3) if bench else None,
                            "note": None if bench else "llama-bench is not in this build: rebuild with "
                                                       "scripts/build-llama-cpp.sh"}
        report["memory"] = {"gate_peak_rss_mib": round(gate["peak_rss_bytes"] / 2**20, 1),
                            "llama_buffers_mib": round(gate["llama_buffers_bytes"] / 2**20, 1),
                            "ratio": round(gate["peak_rss_bytes"] / gate["llama_buffers_bytes"], 3)
                            if gate["llama_buffers_bytes"] else None}
        report["load_average_after"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
