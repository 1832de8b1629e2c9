"""llama.cpp as the serving runtime: GGUF on CPUs (and GPUs with a GPU build).

The tools come from the gate's pinned llama.cpp build (``gate/quantize/llamacpp.py``,
``scripts/build-llama-cpp.sh``). The candidate is the artifact's ``model.gguf``; the baseline is
served by the same runtime in the precision llama.cpp serves it in: converted once by the build's
``convert_hf_to_gguf.py`` to its lossless type (``serving.args.dtype`` may choose f32/f16/bf16)
and cached under ``<cache>/serve/llama-cpp/``.

- Generation tasks: lm-eval's own ``local-completions`` model against ``llama-server``'s
  ``/v1/completions`` (started lazily, loopback, free port, torn down with its process group).
- Perplexity (rolling log-likelihood) tasks and fidelity: ``llama-perplexity`` per document
  (``llama_perplexity.py``), because ``llama-server`` returns no prompt log-probabilities.
- Multiple-choice (log-likelihood) tasks: refused with the cause (``MissingLogprobsError``).
- Speed and memory: ``llama-server``'s own ``timings`` for a prompt of the spec's length (prefill,
  per-token decode, tokens/s at each batch size with that many slots) and the peak RSS of the
  server's process tree.
- The served file type is read back from ``/props`` (``model_ftype``) and must be the declared
  one: a runtime that serves another type than the artifact holds is a ``DtypeFallbackError``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.serve.interface import (
    DtypeFallbackError,
    HardwareKind,
    MissingLogprobsError,
    OpenRequest,
    Runtime,
    RuntimeDescriptor,
    RuntimeInputError,
    RuntimeMissingError,
    RuntimeVersion,
    ServedFormats,
    ServedModel,
    ServeError,
    ServingDefaults,
)

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, ModelPerformance, TaskScores
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import TaskSource
    from gate.serve.llama_perplexity import DocumentRun
    from gate.serve.process import ServerProcess

NO_PROMPT_LOGPROBS = (
    "llama-server returns no prompt logprobs (it ignores `echo`: ggml-org/llama.cpp#8942, the echo PR #15189 is "
    "not merged in the pinned release)")
LOGLIKELIHOOD_TYPES = ("loglikelihood", "multiple_choice")


def _defaults(kind: HardwareKind | None, _fmt: str) -> ServingDefaults:
    return ServingDefaults(dtype="auto", kv_cache_dtype="f16", threads=None if kind != "gpu" else 1)


DESCRIPTOR = RuntimeDescriptor(
    name="llama-cpp",
    implementation="gate.serve.llama_cpp:LlamaCppRuntime",
    summary="llama.cpp's llama-server and llama-perplexity on GGUF files (CPU and edge serving)",
    serves=(
        ServedFormats(("gguf",), ("cpu",), note="every GGUF type the pinned llama.cpp quantizes"),
        ServedFormats(("gguf",), ("gpu",), note="needs a CUDA or Metal build of llama.cpp; "
                                                "scripts/build-llama-cpp.sh builds the CPU one"),
    ),
    environment="llama.cpp built by scripts/build-llama-cpp.sh (llama-server, llama-perplexity; cached)",
    version_source="the build's manifest.json (llama-cpp-python release and the vendored llama.cpp commit)",
    default_for=("*:gguf",),
    defaults=_defaults,
    args=("dtype", "max_context", "kv_cache_dtype", "threads", "start_timeout_s", "request_timeout_s"),
    kv_cache_dtypes=("auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"),
    loglikelihood=False,
    loglikelihood_note=NO_PROMPT_LOGPROBS,
)

KV_TYPES = DESCRIPTOR.kv_cache_dtypes[1:]
"""``--cache-type-k/-v`` values of this llama.cpp."""
DTYPES = {"auto": None, "float32": "f32", "float16": "f16", "bfloat16": "bf16"}
"""``serving.args.dtype`` -> the GGUF type the baseline is converted to (auto: lossless)."""
FTYPE_NAMES = {"f32": "all F32", "f16": "F16", "bf16": "BF16", "Q4_K_M": "Q4_K - Medium", "Q5_K_M": "Q5_K - Medium",
               "Q6_K": "Q6_K", "Q8_0": "Q8_0", "IQ4_XS": "IQ4_XS - 4.25 bpw", "IQ4_NL": "IQ4_NL - 4.5 bpw",
               "IQ3_M": "IQ3_S mix - 3.66 bpw", "IQ3_XXS": "IQ3_XXS - 3.0625 bpw", "IQ2_M": "IQ2_M - 2.7 bpw"}
"""GGUF type -> llama.cpp's ``model_ftype`` name (``llama_model_ftype_name``)."""


class LlamaCppRuntime(Runtime):
    descriptor = DESCRIPTOR

    def version(self) -> RuntimeVersion:
        from gate.quantize.llamacpp import find_llama_cpp

        try:
            build = find_llama_cpp(("llama-server", "llama-perplexity"))
        except ServeError:
            raise
        except Exception as exc:  # find_llama_cpp's BackendError names the build script
            raise RuntimeMissingError(f"serving.runtime llama-cpp: {getattr(exc, 'message', exc)}",
                                      hint=getattr(exc, "hint", None)) from None
        detail = {"llama_cpp_commit": build.commit, "root": str(build.root)}
        if build.amx is not None:
            detail["amx"] = build.amx
        return RuntimeVersion(runtime=DESCRIPTOR.name, version=build.version, detail=detail)

    @contextmanager
    def open(self, request: OpenRequest) -> Iterator[ServedModel]:
        version = self.version()
        gguf, expected = served_file(request)
        served = LlamaServedModel(gguf, expected, request, version)
        try:
            yield served
        finally:
            served.close()


def served_file(request: OpenRequest) -> tuple[Path, str]:
    """(the GGUF file to serve, its expected ``model_ftype``): the artifact's own, or the baseline
    converted to the type ``serving.args.dtype`` names (cached)."""
    config_path = request.model_dir / "config.json"
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeInputError(f"{config_path}: cannot read the model config: {exc}") from None
    qconfig = config.get("quantization_config") or {}
    if qconfig:
        method = str(qconfig.get("quant_method", ""))
        if method != "gguf":
            raise RuntimeInputError(
                f"serving.runtime: llama-cpp serves GGUF files; {request.model_dir} is a {method or 'non-GGUF'} artifact",
                hint="use quantization.method: gguf, or serving.runtime: transformers or vllm for this format")
        gguf = request.model_dir / str(qconfig.get("gguf_file", "model.gguf"))
        if not gguf.is_file():
            raise RuntimeInputError(f"{gguf}: the GGUF artifact has no model file", hint="rebuild the artifact")
        kind = str(qconfig.get("gguf_type", ""))
        return gguf, FTYPE_NAMES.get(kind, kind)
    return baseline_gguf(request, config)


def baseline_gguf(request: OpenRequest, config: Mapping[str, Any]) -> tuple[Path, str]:
    from gate.quantize.gguf import _convert_env, conversion_error, lossless_type
    from gate.quantize.llamacpp import find_llama_cpp, run_tool

    wanted = DTYPES.get(request.args.dtype, "invalid")
    if wanted == "invalid":
        raise RuntimeInputError(f"serving.args.dtype: llama-cpp serves the baseline as {', '.join(DTYPES)}, "
                                f"not {request.args.dtype!r}", hint="use dtype: auto (the baseline's own precision)")
    outtype = wanted or lossless_type(dict(config))
    tools = find_llama_cpp()
    identity = request.identity or _dir_digest(request.model_dir)
    key = hashlib.sha256(json.dumps({"baseline": identity, "llama_cpp": tools.key(), "outtype": outtype},
                                    sort_keys=True).encode()).hexdigest()
    root = (request.cache_dir or request.work_dir) / "serve" / "llama-cpp" / key
    target = root / f"baseline-{outtype}.gguf"
    expected = FTYPE_NAMES[outtype]
    if target.is_file():
        return target, expected
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=root) as tmp:
        out = Path(tmp) / target.name
        args: list[str | Path] = [sys.executable, tools.convert_script, request.model_dir, "--outfile", out,
                                  "--outtype", outtype]
        try:
            run_tool(args, what="llama-cpp: converting the baseline to GGUF", log=Path(tmp) / "convert.log",
                     timeout_s=request.args.request_timeout_s, env=_convert_env())
        except Exception as exc:
            raise conversion_error(exc) from None  # type: ignore[arg-type]
        os.replace(out, target)  # atomic: a cached file is always complete
    return target, expected


def _dir_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LlamaReference:
    """The baseline side of llama.cpp fidelity: each document's run with its log-probability file."""

    texts_sha256: str
    texts: tuple[str, ...]
    tokens: tuple[int, ...]
    runs: tuple[DocumentRun, ...]


class LlamaServedModel(ServedModel):
    runtime = DESCRIPTOR.name

    def __init__(self, gguf: Path, expected_ftype: str, request: OpenRequest, version: RuntimeVersion) -> None:
        self.gguf = gguf
        self.expected_ftype = expected_ftype
        self.request = request
        self.version = version
        self.dtype = expected_ftype
        self.threads = request.args.threads or os.cpu_count() or 1
        self.work = request.work_dir / f"llama-cpp-{request.role}"
        self.work.mkdir(parents=True, exist_ok=True)
        self._server: ServerProcess | None = None
        self._slots = 0
        self._tokenizer: Any = None

    # --- the server --------------------------------------------------------------------------

    def server(self, slots: int = 1) -> ServerProcess:
        """``llama-server`` with at least ``slots`` parallel slots, started (or restarted) on demand."""
        from gate.quantize.llamacpp import find_llama_cpp
        from gate.serve.process import ServerProcess

        if self._server is not None and self._slots >= slots:
            self._server.check_alive("evaluating")
            return self._server
        self.close()
        tool = find_llama_cpp(("llama-server",)).tool("llama-server")
        context = self.request.args.max_context or 2048
        kv = self.request.args.kv_cache_dtype
        kv = "f16" if kv == "auto" else kv
        if kv not in KV_TYPES:
            raise RuntimeInputError(f"serving.args.kv_cache_dtype: llama-cpp has no KV cache type {kv!r}",
                                    hint=f"use one of {', '.join(KV_TYPES)}")

        def command(port: int) -> list[str]:
            return [str(tool), "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(port),
                    "-t", str(self.threads), "-c", str(context * slots), "--parallel", str(slots),
                    "--cache-type-k", kv, "--cache-type-v", kv, "--seed", str(self.request.seed), "--no-webui"]

        # The server runs in the caller's environment, so with OpenMP's default wait policy, the
        # one it has in production: its speed is a figure the gate reports. On an idle 2-core
        # Sapphire Rapids guest OMP_WAIT_POLICY=PASSIVE cut llama-bench decode of the GGUF example
        # from 80.3 to 30.1 tokens/s (2.7x). The scoring-only tools stay passive (llama_perplexity).
        server = ServerProcess(name="llama-server", command=command, log=self.work / f"llama-server-{slots}.log",
                               env=dict(os.environ),
                               start_timeout_s=self.request.args.start_timeout_s,
                               hint="unsupported GGUF type, out of memory or a bad file: the cause is in the log above")
        server.start()
        self._server, self._slots = server, slots
        self._check_served_type(server)
        return server

    def _check_served_type(self, server: ServerProcess) -> None:
        import urllib.request

        with urllib.request.urlopen(server.base_url + "/props", timeout=30) as answer:
            props = json.loads(answer.read())
        served = str(props.get("model_ftype", ""))
        if self.expected_ftype and served and served != self.expected_ftype:
            self.close()
            raise DtypeFallbackError(
                f"llama-server serves {self.gguf.name} as {served!r}, but the {self.request.role} is "
                f"{self.expected_ftype!r}: the runtime is not serving the weights under review",
                hint="rebuild the artifact with the pinned llama.cpp; the served precision must be the tested one",
                log=server.log)

    def check_alive(self) -> None:
        if self._server is not None:
            self._server.check_alive("evaluating")

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from gate.quantize.sources import load_tokenizer

            self._tokenizer = load_tokenizer(self.request.model_dir)
        return self._tokenizer

    # --- tasks -------------------------------------------------------------------------------

    def score(self, sources: Sequence[TaskSource], requests: Sequence[MetricRequest],
              items: Mapping[str, Sequence[int]], *, include_dir: Path) -> dict[tuple[str, str], TaskScores]:
        from gate.serve.llama_tasks import load_tasks, score_generation, score_perplexity

        tasks = load_tasks(sources, sorted({r.task for r in requests}), include_dir)
        out: dict[tuple[str, str], TaskScores] = {}
        for name, task in tasks.items():
            wanted = [r for r in requests if r.task == name]
            kind = str(task.OUTPUT_TYPE)
            if kind in LOGLIKELIHOOD_TYPES:
                raise MissingLogprobsError(
                    f"task {name!r} ({kind}) needs prompt log-probabilities, and {NO_PROMPT_LOGPROBS}",
                    hint="judge this task with serving.runtime: transformers or vllm, or remove it from a spec "
                         "served by llama-cpp (perplexity and generation tasks run in llama.cpp)")
            chosen = sorted(items.get(name, range(len(task.eval_docs))))
            if kind == "loglikelihood_rolling":
                out.update(score_perplexity(self, name, task, wanted, chosen))
            else:
                out.update(score_generation(self, sources, name, wanted, chosen, include_dir))
        return out

    # --- fidelity ----------------------------------------------------------------------------

    def fidelity_reference(self, texts: Path, settings: FidelitySettings) -> object:
        from gate.evaluate.fidelity import load_texts, texts_digest
        from gate.serve.llama_perplexity import context_for, run_documents

        loaded = load_texts(texts)
        chosen: list[str] = []
        counts: list[int] = []
        covered = 0
        tok = self.tokenizer()
        for text in dict.fromkeys(loaded):  # a repeated text is one document, not two
            n = len(tok(text, add_special_tokens=False)["input_ids"])
            ctx = context_for(n, 2 * settings.window)
            if ctx < 8:
                continue
            chosen.append(text)
            counts.append(n)
            covered += (n // ctx) * (ctx - 1 - ctx // 2)
            if covered >= settings.tokens:
                break
        runs = run_documents(self.gguf, chosen, counts, 2 * settings.window, work=self.work, threads=self.threads,
                             timeout_s=self.request.args.request_timeout_s, name="baseline")
        return LlamaReference(texts_digest(loaded), tuple(chosen), tuple(counts), tuple(runs))

    def fidelity_compare(self, reference: object, settings: FidelitySettings, *, max_kl: float | None,
                         max_flip_rate: float | None) -> FidelityResult:
        from gate.serve.llama_tasks import fidelity_result

        if not isinstance(reference, LlamaReference):
            raise ServeError("internal: the llama-cpp candidate is compared against a llama-cpp baseline reference")
        return fidelity_result(self, reference, settings, max_kl=max_kl, max_flip_rate=max_flip_rate)

    # --- speed and memory --------------------------------------------------------------------

    def performance(self, settings: PerformanceSettings) -> ModelPerformance:
        import numpy as np

        from gate.evaluate.interface import ModelPerformance
        from gate.evaluate.performance import directory_bytes
        from gate.serve.process import peak_tree_rss

        batches = sorted(set(settings.batch_sizes)) or [1]
        prompt = self._prompt_ids(settings.prompt_tokens)
        server = self.server(max(batches))
        prefill: list[float] = []
        decode: list[float] = []
        throughput: dict[str, float] = {}
        with peak_tree_rss(lambda: server.pid) as peak:
            for _ in range(settings.warmup):
                self._complete(server, prompt, settings.decode_tokens)
            for _ in range(settings.repeats):
                timings = self._complete(server, prompt, settings.decode_tokens)
                prefill.append(float(timings["prompt_ms"]))
                decode.append(float(timings["predicted_per_token_ms"]))
            for batch in batches:
                throughput[str(batch)] = self._throughput(server, prompt, settings.decode_tokens, batch)
        size = self.gguf.stat().st_size
        return ModelPerformance(
            device=self.request.device, dtype=self.dtype, prompt_tokens=settings.prompt_tokens,
            decode_tokens=settings.decode_tokens,
            prefill_ms_p50=float(np.percentile(prefill, 50)), prefill_ms_p95=float(np.percentile(prefill, 95)),
            decode_ms_per_token_p50=float(np.percentile(decode, 50)),
            decode_ms_per_token_p95=float(np.percentile(decode, 95)),
            tokens_per_s=throughput, peak_memory_bytes=int(peak["bytes"]), memory_kind="rss_server_tree",
            parameter_bytes=size, disk_bytes=directory_bytes(self.gguf), warmup=settings.warmup,
            repeats=settings.repeats)

    def _prompt_ids(self, n: int) -> list[int]:
        text = "The quick brown fox jumps over the lazy dog while the river flows into the quiet valley. " * 64
        ids = list(self.tokenizer()(text, add_special_tokens=False)["input_ids"])[:n]
        while len(ids) < n:
            ids += ids[: n - len(ids)]
        return ids

    def _complete(self, server: ServerProcess, prompt: list[int], n_predict: int) -> dict[str, Any]:
        body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "ignore_eos": True,
                "cache_prompt": False, "seed": self.request.seed}
        answer = server.post_json("/completion", body, timeout_s=self.request.args.request_timeout_s,
                                  doing="measuring speed")
        timings: dict[str, Any] = answer.get("timings") or {}
        if int(timings.get("predicted_n", 0)) != n_predict or not math.isfinite(float(timings.get("prompt_ms", "nan"))):
            raise ServeError(f"llama-server returned {timings.get('predicted_n')} of {n_predict} tokens or no timings",
                             log=server.log, hint="the cause is in the log above")
        return timings

    def _throughput(self, server: ServerProcess, prompt: list[int], n_predict: int, batch: int) -> float:
        """Generated tokens/s with ``batch`` concurrent requests (one slot each)."""
        errors: list[BaseException] = []

        def one() -> None:
            try:
                self._complete(server, prompt, n_predict)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(batch)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        return batch * n_predict / elapsed
