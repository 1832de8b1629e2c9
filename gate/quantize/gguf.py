"""GGUF through llama.cpp's own tools: convert, importance matrix, quantize.

Three subprocesses from one pinned llama.cpp build (``llamacpp.py``, ``scripts/build-llama-cpp.sh``):

1. ``convert_hf_to_gguf.py`` (from the same tree as the binaries, with its own ``gguf-py``) turns
   the baseline into a lossless GGUF: ``f32``/``bf16``/``f16`` as the baseline stores its weights.
   It runs in the gate's interpreter (it needs torch, transformers and ``sentencepiece``, which the
   ``ml`` extra has), so no second environment is needed for it.
2. ``llama-imatrix`` computes the importance matrix from the spec's calibration texts (joined by
   blank lines, chunks of ``calibration.max_seq_len`` tokens; llama.cpp needs at least two chunks).
   It runs whenever the spec has calibration data; IQ types require it.
3. ``llama-quantize`` writes ``model.gguf`` of the type ``quantization.format`` names
   (``gguf-q4_k_m`` -> ``Q4_K_M``). ``keep_full_precision`` keeps the named tensors at the
   converted (lossless) type: ``lm_head`` via ``--output-tensor-type``, others via ``--tensor-type``.
   Rows whose width is not a multiple of the type's block (K-quants pack 256 weights) are stored
   by llama-quantize in a fallback type, as llama.cpp always does; ``params.tensor_types`` records
   the types actually written.

The artifact directory holds ``model.gguf``, the importance matrix (``imatrix.gguf``, the recipe's
input), ``gguf-recipe.json`` (the exact commands), ``config.json`` with
``quantization_config.quant_method = "gguf"``, and the tokenizer. Intermediate files live in a
temporary directory removed on every path, so nothing half-written reaches the cache.

``load`` reloads ``model.gguf`` through transformers' GGUF reader (``gguf_file=``, dequantized to
fp32): the gate's sanity check and evaluation then score exactly the weights llama.cpp serves,
with the same tokenizer and forward as the baseline. ``llama-perplexity`` is the runtime-side
check (``perplexity``); the tests compare both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gate.errors import BackendError
from gate.quantize.descriptor import BackendDescriptor, FormatSpec
from gate.quantize.interface import (
    ModelShape,
    Progress,
    QuantizeOutcome,
    Quantizer,
    QuantizeRequest,
    QuantizerInputError,
)

QUANT_METHOD = "gguf"
GGUF_FILE = "model.gguf"
IMATRIX_FILE = "imatrix.gguf"
RECIPE_FILE = "gguf-recipe.json"
DEFAULT_TIMEOUT_S = 3600.0
_CPU = "CPUs (AVX2/AVX-512, NEON), Apple silicon, consumer GPUs via llama.cpp"


def _gguf(tool: str, bits: int, bpw: float, block: int, imatrix: bool = False) -> FormatSpec:
    return FormatSpec(f"gguf-{tool.lower()}", (bits,), _CPU, family="gguf", bits_per_weight=bpw, block_size=block,
                      needs_importance_matrix=imatrix, tool_name=tool, algorithms=("llama.cpp",))


DESCRIPTOR = BackendDescriptor(
    alias="gguf",
    implementation="gate.quantize.gguf:GgufBackend",
    summary="GGUF K-quants and IQ types with llama.cpp's converter, llama-imatrix and llama-quantize",
    formats=(
        # bits_per_weight: llama-quantize's own sizes for Llama-3-8B (GiB x 8 / 8.03e9 parameters)
        # for the K mixes; the block layout's exact figure for single-type formats.
        _gguf("Q4_K_M", 4, 4.89, 256),
        _gguf("Q5_K_M", 5, 5.70, 256),
        _gguf("Q6_K", 6, 6.5625, 256),
        _gguf("Q8_0", 8, 8.5, 32),
        _gguf("IQ4_XS", 4, 4.25, 256, imatrix=True),
        _gguf("IQ4_NL", 4, 4.5, 32, imatrix=True),
        _gguf("IQ3_M", 3, 3.66, 256, imatrix=True),
        _gguf("IQ3_XXS", 3, 3.0625, 256, imatrix=True),
        _gguf("IQ2_M", 2, 2.7, 256, imatrix=True),
    ),
    bits=(2, 3, 4, 5, 6, 8),
    requires=("torch", "transformers", "gguf", "sentencepiece"),
    tools=("convert_hf_to_gguf.py", "llama-imatrix", "llama-quantize", "llama-perplexity"),
    environment="the project environment ('quant-gate[ml]') plus llama.cpp built by scripts/build-llama-cpp.sh",
    sanctioned_for=("cpu",),
)

OPTIONS = ("tool_timeout_s", "imatrix")
"""``tool_timeout_s``: per-tool limit (default 3600 s); ``imatrix: false`` skips it for K-quants."""


class GgufBackend(Quantizer):
    alias = DESCRIPTOR.alias
    supported_bits = DESCRIPTOR.bits
    supports_keep_full_precision = True
    needs_calibration = False  # IQ types need it: ``validate_calibration`` says so
    packages = ("torch", "transformers", "gguf", "sentencepiece")
    option_names = OPTIONS

    def validate(self, request: QuantizeRequest, shape: ModelShape) -> None:
        where = request.location
        fmt = DESCRIPTOR.format(request.format)
        if fmt is None:
            names = ", ".join(f.name for f in DESCRIPTOR.formats)
            raise QuantizerInputError(
                "quantization.format", f"gguf writes one GGUF type ({names}), not {request.format!r}",
                hint="name the type, e.g. format: gguf-q4_k_m",
                location=where,
            )
        if request.bits not in fmt.bits:
            raise QuantizerInputError(
                "quantization.bits", f"{fmt.name} stores {fmt.bits[0]}-bit weights, not {request.bits}-bit",
                hint=f"use bits: {fmt.bits[0]}, or the GGUF type for {request.bits} bits",
                location=where,
            )
        if request.group_size is not None and request.group_size != fmt.block_size:
            raise QuantizerInputError(
                "quantization.group_size", f"{fmt.name} has a fixed block of {fmt.block_size} weights; "
                f"group size {request.group_size} cannot be chosen",
                hint=f"use group_size: -1 (or {fmt.block_size})",
                location=where,
            )
        with_checks = QuantizeRequest(
            method=request.method, bits=request.bits, group_size=None, format=request.format,
            keep_full_precision=request.keep_full_precision, options=request.options, location=where,
        )
        super().validate(with_checks, shape)
        if request.keep_full_precision:
            tensor_overrides(request.keep_full_precision, shape, "f32")  # refuses what it cannot map
        timeout = request.options.get("tool_timeout_s", DEFAULT_TIMEOUT_S)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise QuantizerInputError(
                "quantization.options.tool_timeout_s", f"{timeout!r} is not a positive number of seconds",
                hint="e.g. tool_timeout_s: 3600", location=where,
            )
        if not isinstance(request.options.get("imatrix", True), bool):
            raise QuantizerInputError("quantization.options.imatrix", "must be true or false", location=where)
        if not request.options.get("imatrix", True) and fmt.needs_importance_matrix:
            raise QuantizerInputError(
                "quantization.options.imatrix", f"{fmt.name} cannot be made without an importance matrix",
                hint="remove imatrix: false, or use a K-quant (gguf-q4_k_m)", location=where,
            )

    def validate_calibration(self, request: QuantizeRequest, baseline: Path) -> None:
        from gate.quantize.llamacpp import find_llama_cpp

        fmt = DESCRIPTOR.format(request.format)
        assert fmt is not None  # validate ran first
        use_imatrix = bool(request.calibration_texts) and request.options.get("imatrix", True)
        if fmt.needs_importance_matrix and not request.calibration_texts:
            raise QuantizerInputError(
                "quantization.format", f"{fmt.name} needs an importance matrix, computed from calibration data, "
                "and the spec has no `calibration` section",
                hint="add calibration: {source, sha256, samples, max_seq_len}, or use a K-quant (gguf-q4_k_m)",
                location=request.location,
            )
        if use_imatrix:
            from gate.quantize.sources import load_tokenizer

            tokenizer = load_tokenizer(baseline)
            tokens = len(tokenizer(imatrix_text(request.calibration_texts), add_special_tokens=False)["input_ids"])
            need = 2 * request.max_seq_len
            if tokens < need:
                raise QuantizerInputError(
                    "calibration.samples", f"the calibration text has {tokens} tokens; llama-imatrix needs at least "
                    f"{need} (two chunks of max_seq_len {request.max_seq_len})",
                    hint=f"add calibration samples, or lower calibration.max_seq_len to {max(tokens // 2, 1)} or less",
                    location=request.location,
                )
        check_architecture(_config(baseline), find_llama_cpp())  # last: the checks above need no build

    def quantize(
        self, baseline: Path, request: QuantizeRequest, out_dir: Path, progress: Progress | None = None
    ) -> QuantizeOutcome:
        from gate.quantize.checks import read_model_shape
        from gate.quantize.llamacpp import find_llama_cpp, run_tool
        from gate.quantize.sources import package_versions

        fmt = DESCRIPTOR.format(request.format)
        assert fmt is not None and fmt.tool_name is not None
        tools = find_llama_cpp()
        config = _config(baseline)
        check_architecture(config, tools)
        timeout = float(request.options.get("tool_timeout_s", DEFAULT_TIMEOUT_S))
        use_imatrix = bool(request.calibration_texts) and bool(request.options.get("imatrix", True))
        lossless = lossless_type(config)
        threads = str(max(os.cpu_count() or 1, 1))
        steps = 3 if use_imatrix else 2
        out_dir.mkdir(parents=True, exist_ok=True)
        recipe: dict[str, Any] = {"llama_cpp": tools.key(), "type": fmt.tool_name, "lossless_type": lossless,
                                  "steps": []}
        with tempfile.TemporaryDirectory(prefix=".gguf-work-", dir=out_dir.parent) as tmp:
            work = Path(tmp)
            full = work / f"model-{lossless}.gguf"
            convert: list[str | Path] = [sys.executable, tools.convert_script, baseline, "--outfile", full, "--outtype", lossless]
            try:
                ran = run_tool(convert, what="gguf: converting the baseline", log=work / "convert.log", timeout_s=timeout,
                               env=_convert_env())
            except BackendError as exc:
                raise conversion_error(exc) from None
            recipe["steps"].append(_step("convert_hf_to_gguf.py", ["--outtype", lossless], ran.seconds))
            if progress:
                progress("gguf steps", 1, steps)
            imatrix: Path | None = None
            if use_imatrix:
                text = work / "calibration.txt"
                text.write_text(imatrix_text(request.calibration_texts), encoding="utf-8")
                imatrix = work / IMATRIX_FILE
                args = ["-c", str(request.max_seq_len), "-b", str(request.max_seq_len), "-t", threads,
                        "--seed", str(request.seed), "--no-ppl"]
                try:
                    ran = run_tool([tools.tool("llama-imatrix"), "-m", full, "-f", text, "-o", imatrix, *args],
                                   what="gguf: computing the importance matrix", log=work / "imatrix.log",
                                   timeout_s=timeout)
                except BackendError as exc:
                    raise imatrix_error(exc, request) from None
                recipe["steps"].append(_step("llama-imatrix", args, ran.seconds))
                if progress:
                    progress("gguf steps", 2, steps)
            qargs: list[str] = []
            if imatrix is not None:
                qargs += ["--imatrix", str(imatrix)]
            overrides = tensor_overrides(request.keep_full_precision, read_model_shape(baseline), lossless)
            if overrides.output:
                qargs += ["--output-tensor-type", lossless]
            if overrides.patterns:
                type_file = work / "tensor-types.txt"
                type_file.write_text("\n".join(overrides.patterns) + "\n", encoding="utf-8")
                qargs += ["--tensor-type-file", str(type_file)]
            target = work / GGUF_FILE
            quantize_cmd: list[str | Path] = [tools.tool("llama-quantize"), *qargs, full, target, fmt.tool_name, threads]
            ran = run_tool(quantize_cmd,
                           what=f"gguf: quantizing to {fmt.tool_name}", log=work / "quantize.log", timeout_s=timeout)
            shown = [a if not a.startswith(str(work)) else Path(a).name for a in qargs]
            recipe["steps"].append(_step("llama-quantize", [*shown, fmt.tool_name, threads], ran.seconds))
            recipe["keep_full_precision"] = list(overrides.patterns) + (["output.weight"] if overrides.output else [])
            if progress:
                progress("gguf steps", steps, steps)
            shutil.move(str(target), out_dir / GGUF_FILE)
            if imatrix is not None:
                shutil.move(str(imatrix), out_dir / IMATRIX_FILE)
        qconfig = {
            "quant_method": QUANT_METHOD,
            "gguf_file": GGUF_FILE,
            "gguf_type": fmt.tool_name,
            "bits": request.bits,
            "imatrix": IMATRIX_FILE if use_imatrix else None,
            "llama_cpp_python": tools.version,
            "llama_cpp_commit": tools.commit,
        }
        config["quantization_config"] = qconfig
        (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (out_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        params = {"type": fmt.tool_name, "lossless_type": lossless, "imatrix": use_imatrix,
                  "tensor_types": tensor_types(out_dir / GGUF_FILE),
                  "imatrix_context": request.max_seq_len if use_imatrix else None,
                  "keep_full_precision": recipe["keep_full_precision"],
                  "seconds": {s["tool"]: s["seconds"] for s in recipe["steps"]}}
        versions = {**package_versions(self.packages), "llama-cpp-python (llama.cpp tree)": tools.version,
                    "llama.cpp commit": tools.commit}
        return QuantizeOutcome(params=params, versions=versions)

    def cache_fields(self) -> dict[str, Any]:
        from gate.quantize.descriptor import code_digest
        from gate.quantize.llamacpp import find_llama_cpp

        return {**find_llama_cpp().key(), "code": code_digest(Path(__file__))}  # this module builds the commands

    def load(self, path: Path, device: str = "cpu") -> Any:
        """``model.gguf`` through transformers' GGUF reader, dequantized (fp32 on CPU, fp16 on CUDA)."""
        from transformers import AutoModelForCausalLM

        from gate.quantize.sources import compute_dtype

        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), gguf_file=GGUF_FILE, dtype=compute_dtype(device))
        except Exception as exc:
            raise BackendError(
                f"{path / GGUF_FILE}: transformers cannot load the GGUF artifact: {type(exc).__name__}: {exc}",
                hint="transformers reads GGUF only for the architectures in its GGUF_SUPPORTED_ARCHITECTURES",
            ) from None
        return model.to(device).eval()  # type: ignore[arg-type]


def perplexity(model_gguf: Path, text_file: Path, *, context: int, log: Path, timeout_s: float = DEFAULT_TIMEOUT_S,
               chunks: int | None = None) -> tuple[float, float]:
    """``llama-perplexity`` on ``text_file``: (perplexity, its standard error) as llama.cpp serves the model.

    Read from the tool's "Final estimate" line, which llama.cpp's asynchronous logger can drop at
    exit (``gate/serve/llama_perplexity.py``; one run in three on a loaded 2-core box): a run that
    exits 0 without it is run again, up to ``PERPLEXITY_ATTEMPTS`` times. The log-probability file
    is no substitute here: it clamps each log-probability at 16 nats below the top one, which put
    the example's Q4_K_M at 27.66 instead of the 27.81 the tool prints."""
    from gate.quantize.llamacpp import find_llama_cpp, run_tool

    tools = find_llama_cpp(("llama-perplexity",))
    args: list[str | Path] = [tools.tool("llama-perplexity"), "-m", model_gguf, "-f", text_file, "-c", str(context),
                              "-b", str(context), "-t", str(os.cpu_count() or 1)]
    if chunks:
        args += ["--chunks", str(chunks)]
    for _ in range(PERPLEXITY_ATTEMPTS):
        ran = run_tool(args, what="llama-perplexity", log=log, timeout_s=timeout_s)
        found = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", ran.output)
        if found is not None:
            return float(found.group(1)), float(found.group(2))
        if "perplexity: calculating perplexity" not in ran.output:
            break  # it never started scoring: a lost line is not the cause
    raise BackendError(f"llama-perplexity printed no final estimate (log: {log})",
                       hint="the text may be shorter than two contexts; lower the context")


PERPLEXITY_ATTEMPTS = 4
"""Runs of llama-perplexity before a missing "Final estimate" line counts as a failure."""


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each GGUF type the file holds. llama-quantize stores rows whose width is
    not a multiple of the type's block (K-quants: 256) in a fallback type, and the K mixes give some
    tensors more bits; this records what was actually written."""
    from collections import Counter

    import gguf

    counts = Counter(t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors)
    return dict(sorted(counts.items()))


def imatrix_text(texts: tuple[str, ...] | list[str]) -> str:
    """The calibration texts as llama-imatrix reads them: one file, samples separated by blank lines."""
    return "\n\n".join(t.strip() for t in texts) + "\n"


def lossless_type(config: dict[str, Any]) -> str:
    """The GGUF type that stores the baseline's weights exactly (f32, bf16 or f16)."""
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return {"bfloat16": "bf16", "float16": "f16"}.get(dtype, "f32")


class TensorOverrides:
    """``keep_full_precision`` as llama-quantize arguments."""

    def __init__(self, patterns: tuple[str, ...], output: bool) -> None:
        self.patterns = patterns
        """``^<gguf tensor>$=<type>`` lines for ``--tensor-type-file``."""
        self.output = output
        """``lm_head`` kept: ``--output-tensor-type``."""


def tensor_overrides(keep: tuple[str, ...], shape: ModelShape, full_type: str) -> TensorOverrides:
    """Map HF module names matched by ``keep`` to GGUF tensor names (gguf-py's name map)."""
    from gate.quantize.checks import matches

    if not keep:
        return TensorOverrides((), False)
    import gguf

    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == shape.model_type), None)
    if arch is None:
        raise QuantizerInputError(
            "quantization.keep_full_precision", f"no GGUF tensor names are known for model type {shape.model_type!r}",
            hint="remove keep_full_precision for this architecture",
        )
    names = gguf.get_tensor_name_map(arch, shape.num_layers)
    patterns: list[str] = []
    output = False
    for lin in shape.linears:
        if not matches(lin.name, keep):
            continue
        if lin.name.split(".")[-1] == "lm_head":
            output = True
            continue
        mapped = names.get_name(lin.name)
        if mapped is None:
            raise QuantizerInputError(
                "quantization.keep_full_precision", f"{lin.name} has no GGUF tensor name for {shape.model_type}",
                hint="keep only attention/MLP projections or lm_head in full precision",
            )
        patterns.append(f"^{re.escape(mapped)}\\.weight$={full_type}")
    return TensorOverrides(tuple(patterns), output)


def check_architecture(config: dict[str, Any], tools: Any) -> None:
    """Refuse an architecture the converter (this llama.cpp tree) or transformers' GGUF reader lacks."""
    archs = [str(a) for a in config.get("architectures") or []]
    known = converter_architectures(tools.convert_script.parent)
    if not archs or not any(a in known for a in archs):
        raise QuantizerInputError(
            "quantization.method", f"llama.cpp {tools.version}'s convert_hf_to_gguf.py does not support "
            f"{', '.join(archs) or 'a model without config.json architectures'}",
            hint="use int8 or rtn for this architecture, or a llama.cpp release that converts it",
        )
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    model_type = str(config.get("model_type", ""))
    if model_type not in GGUF_SUPPORTED_ARCHITECTURES:
        raise QuantizerInputError(
            "quantization.method", f"transformers cannot reload GGUF {model_type!r} models, so the gate cannot "
            "check or evaluate the artifact",
            hint="use int8 or rtn for this architecture",
        )


def converter_architectures(convert_dir: Path) -> frozenset[str]:
    """Class names the converter registers (``@ModelBase.register("LlamaForCausalLM", ...)``), read as text."""
    found: set[str] = set()
    for file in [convert_dir / "convert_hf_to_gguf.py", *sorted((convert_dir / "conversion").glob("*.py"))]:
        try:
            source = file.read_text(encoding="utf-8")
        except OSError:
            continue
        for call in re.findall(r"@ModelBase\.register\(([^)]*)\)", source):
            found.update(re.findall(r"\"([A-Za-z0-9_]+)\"", call))
    return frozenset(found)


def conversion_error(exc: BackendError) -> BackendError:
    """A converter failure with its cause named (tokenizer, architecture) when the output shows it."""
    output = getattr(exc, "output", "")
    if "pre-tokenizer was not recognized" in output:
        return BackendError(
            "gguf: convert_hf_to_gguf.py does not recognise the baseline's BPE pre-tokenizer "
            "(llama.cpp lists the pre-tokenizers of published models by hash)",
            hint="quantize a published model, or give it a SentencePiece tokenizer.model; no artifact was cached",
        )
    if "is not supported" in output and "Model " in output:
        return BackendError("gguf: convert_hf_to_gguf.py does not support this architecture: " + exc.message,
                            hint="use int8 or rtn for this architecture")
    return exc


def imatrix_error(exc: BackendError, request: QuantizeRequest) -> BackendError:
    output = getattr(exc, "output", "")
    found = re.search(r"you need at least (\d+) tokens for a context of (\d+)", output)
    if found:
        return BackendError(
            f"calibration.samples: llama-imatrix needs at least {found.group(1)} tokens for a context of "
            f"{found.group(2)} and the calibration text is shorter",
            hint=f"add calibration samples, or lower calibration.max_seq_len below {request.max_seq_len}",
        )
    return exc


def _config(baseline: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((baseline / "config.json").read_text(encoding="utf-8"))
    return result


def _convert_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py of its own tree
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"  # the baseline is local; the converter must never reach the Hub
    return env


def _step(tool: str, args: list[str], seconds: float) -> dict[str, Any]:
    return {"tool": tool, "args": args, "seconds": round(seconds, 3)}
