"""The vLLM runtime: the gate's own figures against vLLM's and against bare vLLM + lm_eval.

    .venv/bin/python benchmarks/serve_vllm.py [--model DIR] [--limit N] [--eager] [--out FILE]

On one model directory (default: a tiny Llama built here; ``--model .gate/...`` for SmolLM2):

1. Decode tokens/s as the gate reports it (``VllmServedModel.performance``, batch 1) against a
   separate ``vllm bench serve`` run (vLLM's own tool, the module ``vllm.benchmarks.serve``) on the
   same server right after it. The gate's figure *is* that tool's, so the ratio shows run-to-run
   spread. Target 0.9-1.1.
2. Orchestration overhead: the gate (start the server through ``gate.serve.vllm``, score
   ``qg_license_ppl`` on ``--limit`` documents through lm-eval's local-completions, stop) against bare
   ``python -m vllm.entrypoints.openai.api_server`` + the ``lm_eval`` CLI (``--model
   local-completions``) on the same task and documents. Target: gate <= 1.10x bare.
3. Peak memory: the gate's peak RSS of the server's process tree (sampled every 10 ms while the
   benchmark runs) against the tree's RSS summed from ``/proc`` right after it. Target 0.9-1.1.

Prints one JSON object (and writes it to ``--out``); the numbers go to docs/benchmarks/serve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def tiny_model(root: Path) -> Path:
    from tests.tiny_models import build_tiny_llama

    return build_tiny_llama(root / "tiny64", hidden_size=128, heads=2, kv_heads=1, intermediate_size=256,
                            train_steps=40)


def gate_side(model: Path, work: Path, limit: int) -> dict[str, float]:
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import resolve_task
    from gate.serve.interface import OpenRequest, ServingArgs
    from gate.serve.process import tree_rss
    from gate.serve.vllm import VllmRuntime
    from gate.serve.vllm_tasks import bench_serve

    source = resolve_task("qg_license_ppl", REPO)
    request = OpenRequest(model_dir=model, role="baseline", args=ServingArgs(max_context=512), work_dir=work)
    start = time.monotonic()
    with VllmRuntime().open(request) as served:
        started = time.monotonic() - start
        served.score([source], [MetricRequest("qg_license_ppl", "word_perplexity")],
                     {"qg_license_ppl": list(range(limit))}, include_dir=work / "inc")
        evaluated = time.monotonic() - start
        perf = served.performance(PerformanceSettings(prompt_tokens=64, decode_tokens=32, batch_sizes=(1,),
                                                      warmup=1, repeats=5))
        after = tree_rss(served.server.pid)
        tool = bench_serve(served, prompt_tokens=64, decode_tokens=32, prompts=6, concurrency=1,
                           out=work / "bench-independent.json")
    return {"gate_start_s": started, "gate_start_to_scores_s": evaluated,
            "gate_tokens_per_s": perf.tokens_per_s["1"], "tool_tokens_per_s": float(tool["output_throughput"]),
            "gate_peak_rss_bytes": perf.peak_memory_bytes, "proc_tree_rss_bytes": after}


def bare_side(model: Path, work: Path, limit: int, env_python: str) -> dict[str, float]:
    import urllib.request

    from gate.evaluate.suites import materialize, resolve_task
    from gate.serve.process import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"})
    log = (work / "bare-vllm.log").open("wb")
    start = time.monotonic()
    argv = [env_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
            "served", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512", "--max-logprobs", "64"]
    if os.environ.get("QUANT_GATE_VLLM_ENFORCE_EAGER"):
        argv.append("--enforce-eager")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"bare vllm exited; see {work / 'bare-vllm.log'}") from None
                time.sleep(0.1)
        started = time.monotonic() - start
        include = work / "bare-inc"
        materialize([resolve_task("qg_license_ppl", REPO)], include)
        bare = subprocess.run([sys.executable, "-m", "lm_eval", "run", "--model", "local-completions", "--model_args",
                        f"model=served,base_url=http://127.0.0.1:{port}/v1/completions,tokenizer={model},"
                        "tokenized_requests=True,num_concurrent=1,max_length=512", "--batch_size", "8",
                        "--include_path", str(include), "--tasks", "qg_license_ppl", "--limit", str(limit)],
                              check=False, capture_output=True, text=True, cwd=work)
        if bare.returncode != 0:
            raise SystemExit(f"lm_eval failed (exit {bare.returncode}):\n{bare.stderr[-3000:]}")
        evaluated = time.monotonic() - start
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    return {"bare_start_s": started, "bare_start_to_scores_s": evaluated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--eager", action="store_true", help="both sides with --enforce-eager (as the tests)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.eager:
        os.environ["QUANT_GATE_VLLM_ENFORCE_EAGER"] = "1"
    from gate.serve.vllm import find_environment

    env, _, version = find_environment("cpu")
    with tempfile.TemporaryDirectory(prefix="serve-vllm-bench-") as tmp:
        work = Path(tmp)
        model = args.model.resolve() if args.model else tiny_model(work)
        result: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                     "load_average": os.getloadavg()[0], "vllm": version, "model": str(model),
                                     "eager": args.eager, "limit": args.limit}
        result.update(bare_side(model, work, args.limit, str(env.python)))
        result.update(gate_side(model, work, args.limit))
    g, b = result["gate_start_to_scores_s"], result["bare_start_to_scores_s"]
    assert isinstance(g, float) and isinstance(b, float)
    result["overhead_ratio"] = g / b
    result["decode_ratio"] = float(result["gate_tokens_per_s"]) / float(result["tool_tokens_per_s"])  # type: ignore[arg-type]
    result["memory_ratio"] = float(result["gate_peak_rss_bytes"]) / float(result["proc_tree_rss_bytes"])  # type: ignore[arg-type]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
