"""Tasks and fidelity for the llama.cpp runtime: lm-eval's task definitions, llama.cpp's numbers.

- ``load_tasks``: the tasks as lm-eval builds them (shipped and repository YAMLs materialized the
  way ``gate.evaluate.harness`` does it), so documents, targets and word counts are lm-eval's.
- ``score_perplexity``: each chosen document through ``llama-perplexity`` (``llama_perplexity.py``);
  per item ``[nll, count]`` with the document's words (word_perplexity) or UTF-8 bytes
  (byte_perplexity, bits_per_byte) scaled to the share of its tokens llama-perplexity scores.
- ``score_generation``: lm-eval's ``local-completions`` model against ``llama-server`` (greedy),
  the logged samples turned into ``TaskScores`` by the harness's own conversion.
- ``fidelity_result``: the candidate's documents against the baseline's log-probability files,
  judged with the same document-level bounds as the in-process fidelity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.serve.interface import ServeError

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, TaskScores
    from gate.evaluate.suites import TaskSource
    from gate.serve.llama_cpp import LlamaReference, LlamaServedModel

COUNTS = {"word_perplexity": "words", "byte_perplexity": "bytes", "bits_per_byte": "bytes"}


def load_tasks(sources: Sequence[TaskSource], names: Sequence[str], include_dir: Path) -> dict[str, Any]:
    """lm-eval task objects by name (local tasks materialized into ``include_dir`` first)."""
    from gate.evaluate.suites import materialize
    from gate.runtime import set_offline_defaults

    set_offline_defaults()
    from lm_eval.tasks import TaskManager, get_task_dict

    by_name = {s.name: s for s in sources}
    materialize([by_name[n] for n in names if n in by_name and by_name[n].local], include_dir)
    standard = any(not by_name[n].local for n in names if n in by_name)
    manager = TaskManager(include_path=str(include_dir), include_defaults=standard, verbosity="ERROR")
    tasks: dict[str, Any] = get_task_dict(list(names), manager)
    return tasks


def score_perplexity(model: LlamaServedModel, name: str, task: Any, requests: Sequence[MetricRequest],
                     chosen: Sequence[int]) -> dict[tuple[str, str], TaskScores]:
    from gate.evaluate.interface import EvaluateError, TaskScores, score_kind
    from gate.serve.llama_perplexity import PERPLEXITY_CAP, run_documents

    docs = list(task.eval_docs)
    texts = [str(task.doc_to_target(docs[i])) for i in chosen]
    tok = model.tokenizer()
    counts = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    cap = min(model.request.args.max_context or PERPLEXITY_CAP, PERPLEXITY_CAP)
    runs = run_documents(model.gguf, texts, counts, cap, work=model.work, threads=model.threads,
                         timeout_s=model.request.args.request_timeout_s, name=f"{model.request.role} {name}",
                         labels=[f"task {name!r} document {i}" for i in chosen])
    out: dict[tuple[str, str], TaskScores] = {}
    for r in requests:
        unit = COUNTS.get(r.metric)
        if unit is None:
            raise EvaluateError(f"task {name!r} has no metric {r.metric!r} in the llama-cpp runtime",
                                hint="perplexity tasks report word_perplexity, byte_perplexity and bits_per_byte")
        values: list[list[float]] = []
        for text, n_tokens, run in zip(texts, counts, runs, strict=True):
            if not math.isfinite(run.nll):
                raise EvaluateError(f"task {name!r}: llama.cpp produced non-finite log-likelihoods",
                                    hint="the quantized weights are likely broken (NaN/Inf)")
            whole = task.count_words(text) if unit == "words" else task.count_bytes(text)
            values.append([run.nll, whole * run.positions / max(n_tokens, 1)])
        kind = score_kind(r.metric, [])
        out[(name, r.metric)] = TaskScores(task=name, metric=r.metric, kind=kind, doc_ids=list(chosen), values=values)
    return out


def score_generation(model: LlamaServedModel, sources: Sequence[TaskSource], name: str,
                     requests: Sequence[MetricRequest], chosen: Sequence[int],
                     include_dir: Path) -> dict[tuple[str, str], TaskScores]:
    """A generation task through ``llama-server`` with lm-eval's ``local-completions``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from gate.evaluate.harness import _scores
    from gate.evaluate.interface import EvaluateError

    server = model.server(1)
    by_name = {s.name: s for s in sources}
    manager = TaskManager(include_path=str(include_dir), include_defaults=not by_name[name].local, verbosity="ERROR")
    args = {"base_url": f"{server.base_url}/v1/completions", "model": model.gguf.name,
            "tokenizer": str(model.request.model_dir), "tokenizer_backend": "huggingface",
            "tokenized_requests": False, "num_concurrent": 1, "max_retries": 1,
            "timeout": int(model.request.args.request_timeout_s)}
    seed = model.request.seed
    try:
        output = lm_eval.simple_evaluate(
            model="local-completions", model_args=args, tasks=[name], task_manager=manager, log_samples=True,
            bootstrap_iters=0, samples={name: list(chosen)}, random_seed=seed, numpy_random_seed=seed,
            torch_random_seed=seed, fewshot_random_seed=seed, verbosity="ERROR")
    except ServeError:
        raise
    except Exception as exc:  # lm-eval raises whatever its HTTP client raised
        model.check_alive()
        server.check_alive(f"scoring {name}")
        raise EvaluateError(f"lm-eval local-completions failed on task {name!r} against llama-server: "
                            f"{type(exc).__name__}: {exc}", hint=f"llama-server's log: {server.log}") from exc
    server.check_alive(f"scoring {name}")
    if output is None:
        raise EvaluateError("lm-eval returned no results")
    return {(r.task, r.metric): _scores(r, output["samples"].get(name, [])) for r in requests}


def fidelity_result(model: LlamaServedModel, reference: LlamaReference, settings: FidelitySettings, *,
                    max_kl: float | None, max_flip_rate: float | None) -> FidelityResult:
    import numpy as np

    from gate.evaluate.fidelity import judged_result
    from gate.serve.llama_perplexity import run_documents

    runs = run_documents(model.gguf, reference.texts, reference.tokens, 2 * settings.window, work=model.work,
                         threads=model.threads, timeout_s=model.request.args.request_timeout_s,
                         name="candidate fidelity", bases=reference.runs)
    # Per document the sums and position counts: cluster_bound takes per-position arrays, and a
    # document's constant array with the same sum and length gives the same ratio estimator.
    kls = [np.full(r.positions, (r.kl_sum or 0.0) / r.positions) for r in runs]
    flips = [np.full(r.positions, (r.flips or 0) / r.positions) for r in runs]
    return judged_result(
        kls, flips, settings, texts_sha256=reference.texts_sha256, documents=len(runs),
        tokens=sum(r.positions for r in runs), top_k=0, tail_mass_mean=0.0,
        method=lambda level: f"llama-perplexity --kl-divergence per document: full-vocabulary KL and top-1 agreement "
        f"from both models' --kl-divergence-base log-probabilities (llama.cpp's formula: baseline log-probabilities "
        f"more than 16 nats below the top one dropped); one-sided {level:g}% bounds over documents",
        max_kl=max_kl, max_flip_rate=max_flip_rate)
