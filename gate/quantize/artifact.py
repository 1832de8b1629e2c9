"""Produce (or reuse) the quantized artifact a spec describes, and load artifacts for evaluation.

An artifact directory holds safetensors weights, ``config.json`` with ``quantization_config``,
the tokenizer, a model card (``README.md`` with ``base_model`` and
``base_model_relation: quantized``), ``gate-provenance.json`` (spec hash, baseline identity,
calibration hash and statistics, backend parameters, runtime versions, sanity check) and its own
lockfile ``gate.lock.json`` (the weights stage's format). It lives in the content-addressed cache
under ``artifacts/<key>``; the key covers everything that determines its bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gate import __version__
from gate.cache import CacheEntry, ContentCache, cache_key, sha256_file
from gate.errors import BackendError, GateError, InputError
from gate.quantize.calibration import CalibrationSet, CalibrationStats, load_calibration, with_token_stats
from gate.quantize.checks import read_model_shape
from gate.quantize.interface import QuantizeRequest, QuantizerInputError
from gate.quantize.registry import get_quantizer
from gate.quantize.sanity import DEFAULT_MAX_RATIO, SanityCheck
from gate.quantize.sources import Baseline
from gate.spec.loader import LoadedSpec

ARTIFACT_FORMAT = 1
PROVENANCE = "gate-provenance.json"
LOCKFILE = "gate.lock.json"
KEY_PACKAGES = ("torch", "transformers", "autoawq", "torchao", "safetensors")
"""Runtime versions that are part of the cache key (a change means re-quantizing)."""


class Artifact(BaseModel):
    """A quantized model directory and how it was made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    """The artifact directory (inside the cache); loadable with ``load_for_eval``."""
    cache_key: str
    cache_hit: bool
    """True when the artifact came from the cache and no quantization ran."""
    method: str
    bits: int
    group_size: int | None
    format: str
    params: dict[str, Any]
    """The exact parameters given to the backend library."""
    versions: dict[str, str]
    """Runtime and backend versions the artifact was produced with."""
    calibration: CalibrationStats | None
    sanity: SanityCheck | None
    baseline_identity: str
    seconds: float
    """Wall time of this call (a cache hit is near zero)."""
    quantize_seconds: float
    """Wall time of the original quantization (recorded in provenance)."""
    artifact_sha256: str
    """sha256 of the artifact's lockfile (identifies every file's content)."""


def produce_artifact(
    loaded: LoadedSpec, baseline: Baseline, repo_root: Path, cache_dir: Path, *, progress: bool = True
) -> Artifact:
    """Quantize the baseline as the spec says, or return the cached artifact for the same key."""
    started = time.perf_counter()
    spec = loaded.spec
    smap = loaded.source_map
    q = spec.quantization
    if q is None:
        raise InputError(
            "the spec has no `quantization` section",
            hint="add quantization: {method, bits, group_size, format} (SCALE stage 2)",
            location=smap.locate(()),
        )
    try:
        quantizer = get_quantizer(q.method)
    except GateError as exc:
        exc.location = exc.location or smap.locate(("quantization", "method"))
        raise
    calibration = load_calibration(loaded, repo_root)
    if quantizer.needs_calibration and calibration is None:
        raise InputError(
            f"quantization.method: {q.method} needs calibration data and the spec has no `calibration` section",
            hint="add calibration: {source, sha256, samples, max_seq_len} (SCALE stage 3)",
            location=smap.locate(("quantization", "method")),
        )
    cal = spec.calibration
    request = QuantizeRequest(
        method=q.method,
        bits=q.bits,
        group_size=q.group_size if q.group_size not in (None, -1) else None,
        format=q.format,
        keep_full_precision=tuple(q.keep_full_precision),
        options={k: v for k, v in q.options.items() if k != "sanity_max_ratio"},
        calibration_texts=calibration.texts if calibration else (),
        max_seq_len=cal.max_seq_len if cal and cal.max_seq_len else 512,
        seed=cal.seed if cal else 0,
        location=smap.locate(("quantization",)),
    )
    shape = read_model_shape(baseline.path)
    try:
        quantizer.validate(request, shape)
        quantizer.validate_calibration(request, baseline.path)
    except QuantizerInputError as exc:
        exc.location = smap.locate(exc.key_path)  # the key at fault, or its closest ancestor in the spec
        raise
    max_ratio = float(q.options.get("sanity_max_ratio", DEFAULT_MAX_RATIO))

    from gate.quantize.sources import package_versions
    from gate.runtime import library_versions

    import_torch_for_versions()
    from gate.runtime import hardware_versions

    libs = library_versions()
    hardware = hardware_versions()
    key_fields = {
        "artifact_format": ARTIFACT_FORMAT,
        "method": q.method,
        "bits": q.bits,
        "group_size": request.group_size,
        "format": q.format,
        "keep_full_precision": sorted(q.keep_full_precision),
        "options": dict(sorted(q.options.items())),
        "calibration": None if calibration is None else {
            "sha256": calibration.stats.sha256, "samples": calibration.stats.samples,
            "seed": calibration.stats.seed, "max_seq_len": calibration.stats.max_seq_len, "field": calibration.stats.field,
        },
        "baseline": baseline.identity,
        "versions": {k: libs.get(k) for k in KEY_PACKAGES},
        "backend": {"alias": q.method, "packages": package_versions(quantizer.packages), **quantizer.cache_fields()},
        "device": {k: hardware.get(k) for k in ("device", "cuda", "gpu")},
    }
    key = cache_key(key_fields)

    reference_key = {
        "baseline": baseline.identity,
        "versions": {k: libs.get(k) for k in ("torch", "transformers")},
        "device": key_fields["device"],
    }

    def build(out: Path) -> dict[str, str]:
        from gate.quantize.progress import library_progress

        with library_progress(progress):
            return _build(
                loaded, baseline, quantizer, request, calibration, out, key, max_ratio, progress, cache_dir, reference_key
            )

    try:
        entry = ContentCache(cache_dir).get_or_build("artifacts", key, build)
    except GateError:
        raise
    except MemoryError:
        raise BackendError(
            f"{q.method}: out of memory while quantizing",
            hint="use a machine with more memory, or a smaller calibration set (calibration.samples, max_seq_len)",
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryError":
            raise BackendError(
                f"{q.method}: out of GPU memory while quantizing: {exc}",
                hint="use a larger GPU, or lower calibration.samples / max_seq_len",
            ) from None
        raise BackendError(
            f"{q.method} quantization failed: {type(exc).__name__}: {exc}",
            hint="the backend raised mid-way; no artifact was cached. Re-run with the same spec to reproduce",
        ) from None
    return _artifact_from_entry(entry, time.perf_counter() - started)


def import_torch_for_versions() -> None:
    """Import torch so ``hardware_versions`` can see CUDA (it never imports torch itself)."""
    import torch  # noqa: F401


def _build(
    loaded: LoadedSpec,
    baseline: Baseline,
    quantizer: Any,
    request: QuantizeRequest,
    calibration: CalibrationSet | None,
    out: Path,
    key: str,
    max_ratio: float,
    progress: bool,
    cache_dir: Path,
    reference_key: dict[str, Any],
) -> dict[str, str]:
    """Quantize into ``out``, check it, write provenance, model card and lockfile.

    Returns every file's sha256 (relative path -> digest) for the cache manifest, so no file is
    hashed twice. The baseline side of the sanity check (and the calibration token counts) comes
    from the cache after the first artifact of a baseline. A backend that hands over its
    in-memory model has its files written, then hashed, on a worker thread while the sanity check
    runs on the model (torch and hashlib release the GIL; transformers' ``save_pretrained`` mostly
    does not, so on two CPU cores the overlap saves about a third, not all, of the sequential time).
    """
    from concurrent.futures import ThreadPoolExecutor

    from gate.quantize.progress import progress_reporter
    from gate.quantize.sanity import baseline_reference, check_sanity
    from gate.quantize.sources import copy_tokenizer, load_hf_model, load_tokenizer
    from gate.runtime import runtime_versions
    from gate.weights.lockfile import hash_files, model_files, write_lockfile

    q = loaded.spec.quantization
    assert q is not None
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round(now - clock, 3)
        clock = now

    texts = list(calibration.texts) if calibration else sanity_texts()
    reference = baseline_reference(
        lambda: load_hf_model(baseline.path), lambda: load_tokenizer(baseline.path), texts,
        (calibration.texts, calibration.stats.max_seq_len) if calibration else None, cache_dir, reference_key,
    )
    if calibration is not None:
        assert reference.calibration_tokens is not None
        calibration = with_token_stats(calibration, reference.calibration_tokens)
    lap("baseline_reference")
    with progress_reporter(progress, f"{loaded.spec.metadata.name}: {q.method} w{q.bits}") as report:
        outcome = quantizer.quantize(baseline.path, request, out, report)
    lap("quantize")
    pending, quantized_model = outcome.write, outcome.model
    outcome = replace(outcome, model=None, write=None)

    def write() -> float:
        started = time.perf_counter()
        if pending is not None:
            pending()
        copy_tokenizer(baseline.path, out)
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-artifact-write") as pool:
        written = pool.submit(write)
        hashed = pool.submit(lambda: hash_files(model_files(out), 1))  # runs after the write
        try:
            reloaded = quantized_model is None
            if reloaded:
                written.result()
                quantized_model = quantizer.load(out)
            lap("load_quantized")
            sanity = check_sanity(reference, quantized_model, max_ratio=max_ratio,
                                  quantized_source="reloaded" if reloaded else "in-memory")
            lap("sanity_perplexity")
        except BaseException:
            hashed.cancel()  # the entry is discarded: no need to hash it
            raise
        del quantized_model
        write_seconds = written.result()
        known = hashed.result()
    lap("write_wait")
    timings["write"] = round(write_seconds, 3)
    seconds = timings["quantize"] + (write_seconds if pending is not None else 0.0)
    versions = {**runtime_versions(), **outcome.versions}
    qconfig = json.loads((out / "config.json").read_text(encoding="utf-8")).get("quantization_config")
    if not qconfig:
        raise BackendError(f"{q.method}: the backend wrote no quantization_config into config.json")
    provenance = {
        "artifact_format": ARTIFACT_FORMAT,
        "gate_version": __version__,
        "cache_key": key,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": {"path": loaded.shown_path, "name": loaded.spec.metadata.name, "sha256": loaded.sha256},
        "baseline": {"source_kind": baseline.source_kind, "source": baseline.source, "identity": baseline.identity},
        "quantization": {
            "method": q.method, "bits": q.bits, "group_size": request.group_size, "format": q.format,
            "keep_full_precision": list(q.keep_full_precision), "options": dict(q.options),
        },
        "params": outcome.params,
        "quantization_config": qconfig,
        "calibration": calibration.stats.model_dump(mode="json") if calibration else None,
        "sanity": sanity.model_dump(mode="json"),
        "versions": versions,
        "quantize_seconds": round(seconds, 3),
        "timings": timings,
    }
    (out / PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(loaded, baseline, provenance), encoding="utf-8")
    lock = write_lockfile(out, out / LOCKFILE, known=known)
    digests = {entry.path: entry.sha256 for entry in lock.files}
    digests[LOCKFILE] = sha256_file(out / LOCKFILE)
    return digests


def _artifact_from_entry(entry: CacheEntry, seconds: float) -> Artifact:
    try:
        prov = json.loads((entry.path / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"artifact {entry.path} has no readable provenance: {exc}") from None
    quant = prov["quantization"]
    return Artifact(
        path=entry.path,
        cache_key=entry.key,
        cache_hit=entry.hit,
        method=quant["method"],
        bits=quant["bits"],
        group_size=quant["group_size"],
        format=quant["format"],
        params=prov["params"],
        versions=prov["versions"],
        calibration=CalibrationStats.model_validate(prov["calibration"]) if prov["calibration"] else None,
        sanity=SanityCheck.model_validate(prov["sanity"]) if prov.get("sanity") else None,
        baseline_identity=prov["baseline"]["identity"],
        seconds=round(seconds, 3),
        quantize_seconds=prov["quantize_seconds"],
        artifact_sha256=sha256_file(entry.path / LOCKFILE),
    )


def model_card(loaded: LoadedSpec, baseline: Baseline, provenance: dict[str, Any]) -> str:
    q = provenance["quantization"]
    cal = provenance["calibration"]
    base = baseline.source.split("@")[0] if baseline.source_kind == "hub" else baseline.source
    lines = [
        "---",
        f"base_model: {json.dumps(base)}",
        "base_model_relation: quantized",
        "library_name: transformers",
        f"tags: [quant-gate, {q['method']}, {q['bits']}-bit]",
        "---",
        "",
        f"# {loaded.spec.metadata.name} ({q['method']}, {q['bits']}-bit)",
        "",
        f"Quantized by quant-gate {__version__} from `{baseline.source}` ({baseline.source_kind}; "
        f"identity `{baseline.identity[:16]}…`) as spec `{loaded.shown_path}` (sha256 `{loaded.sha256[:16]}…`) describes.",
        "",
        f"- method: {q['method']}, bits: {q['bits']}, group size: {q['group_size'] if q['group_size'] else 'per-channel'}, "
        f"format: {q['format']}",
        f"- kept in full precision: {', '.join(q['keep_full_precision']) or 'none'}",
    ]
    if cal:
        lines.append(
            f"- calibration: `{cal['source']}` (sha256 `{cal['sha256'][:16]}…`), {cal['samples']} samples, "
            f"tokens {cal['tokens_min']} to {cal['tokens_max']} (mean {cal['tokens_mean']})"
        )
    sanity = provenance["sanity"]
    lines += [
        f"- sanity perplexity: baseline {sanity['baseline_perplexity']}, quantized {sanity['quantized_perplexity']}",
        "",
        "Provenance (versions, exact parameters): `gate-provenance.json`. File hashes: `gate.lock.json`.",
        "",
    ]
    return "\n".join(lines)


def sanity_texts() -> list[str]:
    """Texts for the sanity check when a spec has no calibration set: the shipped corpus."""
    from gate.quantize.calibration import read_samples

    path = Path(__file__).resolve().parent.parent / "data" / "calibration" / "calibration.jsonl"
    return read_samples(path, "text", shown=str(path))[:8]


def load_for_eval(path: Path, device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a baseline or artifact directory: eval mode, fp32 on CPU, fp16 on CUDA.

    Dispatches on ``config.json``'s ``quantization_config.quant_method`` (awq, torchao, gate-rtn, gguf);
    a directory without one is an unquantized baseline.
    """
    from gate.quantize.sources import load_hf_model, load_tokenizer

    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path}: cannot read model config: {exc}", hint="pass a model or artifact directory") from None
    qconfig = config.get("quantization_config")
    if not qconfig:
        return load_hf_model(path, device), load_tokenizer(path)
    method = str(qconfig.get("quant_method", ""))
    alias = {"awq": "awq", "torchao": "int8", "gate-rtn": "rtn", "gguf": "gguf",
             "compressed-tensors": "llmcompressor"}.get(method)
    if alias is None:
        raise BackendError(
            f"{config_path}: quantization_config.quant_method {method!r} is not one the gate can load",
            hint="artifacts come from `gate run` (awq, torchao int8, gate-rtn, gguf)",
        )
    return get_quantizer(alias).load(path, device), load_tokenizer(path)
