"""Tasks, fidelity and performance of a model served by vLLM (``gate/serve/vllm.py``).

- ``score_over_http``: lm-eval's ``local-completions`` (``LocalCompletionsAPI``) against the
  server, token-id prompts, wrapped in ``with_progress``; samples -> ``TaskScores`` by doc id.
- ``build_reference`` / ``compare``: fidelity from vLLM's ``prompt_logprobs`` (top-k per position).
  Both sides are known only on their own top-k; per position the candidate is compared on
  A = (baseline top-k) ∩ (candidate top-k), every other token merged into one bucket. By the
  chain rule KL(p||q) = KL(p_A+bucket || q_A+bucket) + p(B)·KL(p(.|B) || q(.|B)) with B the
  bucket, so the reported KL is a lower bound whose gap is the bucket's mass ``p(B)`` (reported
  as ``tail_mass_mean``) times the KL inside it; it is exact when the bucket holds no baseline
  mass. The top-1 flip rate compares both rank-1 tokens and is exact.
- ``measure``: vLLM's own benchmark (``vllm.benchmarks.serve``, the module behind ``vllm bench
  serve``) at the spec's prompt length and batch sizes, and the peak RSS of the server's tree.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.serve.interface import MissingLogprobsError, ServeError

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelityReference, FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, ModelPerformance, TaskScores
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import TaskSource
    from gate.serve.interface import RuntimeVersion
    from gate.serve.vllm import VllmServedModel


def score_over_http(model: VllmServedModel, sources: Sequence[TaskSource], requests: Sequence[MetricRequest],
                    items: Mapping[str, Sequence[int]], *, include_dir: Path) -> dict[tuple[str, str], TaskScores]:
    """Per-item scores through the server with lm-eval's own API model."""
    from gate.runtime import set_offline_defaults

    set_offline_defaults()
    import lm_eval
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from lm_eval.tasks import TaskManager

    from gate.evaluate.harness import _scores
    from gate.evaluate.interface import EvaluateError
    from gate.evaluate.lm_progress import with_progress
    from gate.evaluate.suites import materialize

    assert model.server is not None
    by_name = {s.name: s for s in sources}
    tasks = sorted({r.task for r in requests})
    materialize([by_name[t] for t in tasks if by_name[t].local], include_dir)
    manager = TaskManager(include_path=str(include_dir), include_defaults=any(not by_name[t].local for t in tasks),
                          verbosity="ERROR")
    # Sorted: lm-eval labels the k-th chosen document samples[k] (see gate.evaluate.harness).
    chosen = {t: sorted(items[t]) for t in tasks if t in items}
    args = model.request.args
    lm = LocalCompletionsAPI(
        base_url=f"{model.server.base_url}/v1/completions", model="served", tokenizer=str(model.request.model_dir),
        tokenizer_backend="huggingface", tokenized_requests=True, batch_size=model.request.eval_batch_size,
        num_concurrent=1, max_retries=1, timeout=int(args.request_timeout_s), seed=model.request.seed,
        max_length=args.max_context or int(model.config.get("max_position_embeddings", 2048)))
    seed = model.request.seed
    try:
        output = lm_eval.simple_evaluate(
            model=with_progress(lm), tasks=tasks, task_manager=manager, log_samples=True, bootstrap_iters=0,
            samples=chosen or None, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
            fewshot_random_seed=seed, verbosity="ERROR")
    except ServeError:
        raise
    except Exception as exc:  # lm-eval raises whatever its HTTP client or parser raised
        model.server.check_alive(f"scoring {', '.join(tasks)}")
        if _raised_in(exc, "parse_logprobs"):
            raise MissingLogprobsError(
                f"vllm's answers to {', '.join(tasks)} carry no prompt log-probabilities "
                f"({type(exc).__name__}: {exc}); loglikelihood and perplexity tasks need them",
                hint="serve with a vLLM that returns prompt logprobs for echo requests", log=model.log) from None
        raise EvaluateError(f"lm-eval local-completions failed on {', '.join(tasks)} against vllm: "
                            f"{type(exc).__name__}: {exc}", hint=f"vllm's log: {model.log}") from exc
    model.server.check_alive(f"scoring {', '.join(tasks)}")
    if output is None:
        raise EvaluateError("lm-eval returned no results")
    return {(r.task, r.metric): _scores(r, output["samples"].get(r.task, [])) for r in requests}


def _raised_in(exc: BaseException, function: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def _windows(model: VllmServedModel, texts: Path, settings: FidelitySettings) -> tuple[list[list[int]], str]:
    from gate.evaluate.fidelity import load_texts, texts_digest, token_windows
    from gate.quantize.sources import load_tokenizer

    loaded = load_texts(texts)
    return token_windows(load_tokenizer(model.request.model_dir), loaded, settings.tokens, settings.window), \
        texts_digest(loaded)


def build_reference(model: VllmServedModel, texts: Path, settings: FidelitySettings) -> FidelityReference:
    """Baseline side: each window's top-k next-token log-probabilities as vLLM reports them."""
    import numpy as np

    from gate.evaluate.fidelity import FidelityReference
    from gate.report.progress import report

    windows, digest = _windows(model, texts, settings)
    k = min(settings.top_k, model.max_logprobs)
    ids_out, idx_out, lp_out = [], [], []
    for n, ids in enumerate(windows):
        rows = model.prompt_topk(ids, k)
        width = min(len(r) for r in rows)
        idx_out.append(np.asarray([list(r)[:width] for r in rows], dtype=np.int32))
        lp_out.append(np.asarray([list(r.values())[:width] for r in rows], dtype=np.float32))
        ids_out.append(np.asarray(ids, dtype=np.int64))
        report("fidelity reference (vllm prompt logprobs)", n + 1, len(windows))
    return FidelityReference(texts_sha256=digest, token_ids=ids_out, top_idx=idx_out, top_logp=lp_out)


def position_scores(reference: FidelityReference, topk: Sequence[Sequence[Mapping[int, float]]]) -> \
        tuple[list[Any], list[Any], float]:
    """Per document: KL of the coarsened distributions and top-1 flips per position; mean bucket mass."""
    import numpy as np

    kls, flips, buckets = [], [], []
    for idx, p_lp, rows in zip(reference.top_idx, reference.top_logp, topk, strict=True):
        kl_doc = np.empty(len(rows))
        flip_doc = np.empty(len(rows))
        for j, q in enumerate(rows):
            p = dict(zip(idx[j].tolist(), p_lp[j].astype(np.float64).tolist(), strict=True))
            shared = [t for t in p if t in q]
            p_in = sum(math.exp(p[t]) for t in shared)
            q_in = sum(math.exp(q[t]) for t in shared)
            kl = sum(math.exp(p[t]) * (p[t] - q[t]) for t in shared)
            p_out, q_out = max(1.0 - p_in, 0.0), max(1.0 - q_in, 1e-12)
            if p_out > 0.0:
                kl += p_out * (math.log(p_out) - math.log(q_out))
            kl_doc[j] = max(kl, 0.0)
            flip_doc[j] = float(next(iter(q)) != int(idx[j][0]))
            buckets.append(p_out)
        kls.append(kl_doc)
        flips.append(flip_doc)
    return kls, flips, float(np.mean(buckets)) if buckets else 0.0


def compare(model: VllmServedModel, reference: FidelityReference, settings: FidelitySettings, *,
            max_kl: float | None, max_flip_rate: float | None) -> FidelityResult:
    """Candidate side: KL (lower bound, see the module docstring) and flips against the baseline's reference."""
    from gate.evaluate.fidelity import judged_result
    from gate.report.progress import report

    k = min(settings.top_k, model.max_logprobs)
    topk = []
    for n, ids in enumerate(reference.token_ids):
        topk.append(model.prompt_topk([int(t) for t in ids], k))
        report("fidelity (vllm prompt logprobs)", n + 1, len(reference.token_ids))
    kls, flips, bucket = position_scores(reference, topk)
    return judged_result(
        kls, flips, settings, texts_sha256=reference.texts_sha256, documents=len(kls), tokens=reference.positions,
        top_k=k, tail_mass_mean=bucket,
        method=lambda level: f"vLLM prompt_logprobs top-{k} of both models: KL on the shared top-k tokens + one bucket "
        f"(a lower bound of the full KL; gap <= bucket mass x KL inside it), exact top-1 flips; one-sided {level:g}% "
        "bounds over documents",
        max_kl=max_kl, max_flip_rate=max_flip_rate)


BENCH = """import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""
"""``vllm bench serve`` without the console script (which looks up a ``vllm`` distribution the CPU build lacks)."""


def python_of(version: RuntimeVersion) -> str:
    """The Python of the runtime's managed environment (the one vLLM is installed in)."""
    return str(Path(version.detail.get("environment", sys.prefix)) / "bin" / "python")


def bench_serve(model: VllmServedModel, *, prompt_tokens: int, decode_tokens: int, prompts: int, concurrency: int,
                out: Path) -> dict[str, Any]:
    """One run of vLLM's own serving benchmark against the running server; its saved JSON result."""
    assert model.server is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [python_of(model.version), "-c", BENCH, "--backend", "vllm", "--base-url", model.server.base_url,
            "--model", "served", "--tokenizer", str(model.request.model_dir), "--dataset-name", "random",
            "--random-input-len", str(prompt_tokens), "--random-output-len", str(decode_tokens),
            "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--ignore-eos",
            "--seed", str(model.request.seed), "--metric-percentiles", "50,95",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--save-result", "--result-dir", str(out.parent),
            "--result-filename", out.name]
    log = out.with_suffix(".log")
    with log.open("w", encoding="utf-8") as handle:
        try:
            ran = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=model.environment(),
                                 timeout=model.request.args.request_timeout_s, check=False)
        except subprocess.TimeoutExpired:
            model.server.check_alive("benchmarking")
            raise ServeError(f"vllm bench serve did not finish within {model.request.args.request_timeout_s:.0f} s",
                             log=log) from None
    model.server.check_alive("benchmarking")
    if ran.returncode != 0 or not out.is_file():
        raise ServeError(f"vllm bench serve failed (exit {ran.returncode})", log=log)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if int(result.get("failed", 0)) or not int(result.get("completed", 0)):
        raise ServeError(f"vllm bench serve: {result.get('failed')} of {prompts} requests failed", log=model.log)
    return result


def measure(model: VllmServedModel, settings: PerformanceSettings) -> ModelPerformance:
    """Speed from vLLM's benchmark at batch 1 (latencies) and at each batch size (tokens/s); peak tree RSS."""
    from gate.evaluate.interface import ModelPerformance
    from gate.evaluate.performance import directory_bytes
    from gate.report.progress import report
    from gate.serve.process import peak_tree_rss

    assert model.server is not None
    server = model.server
    step = "speed and memory (vllm bench serve)"
    # One benchmark run per batch size; latencies (TTFT, inter-token) come from the batch-1 run,
    # which is added when the spec does not name batch 1 (each run pays vLLM's import, ~20 s).
    batches = sorted({1, *settings.batch_sizes})
    report(step, 0, len(batches))
    runs: dict[int, dict[str, Any]] = {}
    with peak_tree_rss(lambda: server.pid) as mem:
        for n, batch in enumerate(batches):
            runs[batch] = bench_serve(model, prompt_tokens=settings.prompt_tokens, decode_tokens=settings.decode_tokens,
                                      prompts=max(batch * 2, settings.warmup + settings.repeats), concurrency=batch,
                                      out=model.work / f"bench-batch{batch}.json")
            report(step, n + 1, len(batches))
    latency = runs[1]
    throughput = {str(b): float(runs[b]["output_throughput"]) for b in settings.batch_sizes}
    weights = sum(p.stat().st_size for p in model.request.model_dir.glob("*.safetensors"))
    return ModelPerformance(
        device=model.request.device, dtype=model.dtype, prompt_tokens=settings.prompt_tokens,
        decode_tokens=settings.decode_tokens,
        prefill_ms_p50=float(latency["p50_ttft_ms"]), prefill_ms_p95=float(latency["p95_ttft_ms"]),
        decode_ms_per_token_p50=float(latency["p50_itl_ms"]), decode_ms_per_token_p95=float(latency["p95_itl_ms"]),
        tokens_per_s=throughput, peak_memory_bytes=int(mem["bytes"]),
        memory_kind="rss of the vllm server's process tree" if model.request.device == "cpu"
        else "rss of the vllm server's process tree (NVML not sampled)",
        parameter_bytes=weights, disk_bytes=directory_bytes(model.request.model_dir),
        warmup=settings.warmup, repeats=settings.repeats)
