"""Time-to-quantize per backend on the example model, gate overhead vs the bare library call, and
cache-hit re-run time.

    .venv/bin/python benchmarks/quantize_speed.py [--methods awq,int8,rtn] [--repeats N] [--no-bare] [--json OUT]

Needs the example model (`gate example fetch`). Per backend, after one untimed warm-up of the gate
and of the bare call (imports and first-call costs are paid by neither measurement):

- ``gate_cold``: ``produce_artifact`` into an empty artifact cache (quantize, sanity check,
  provenance, lockfile, manifest), with the baseline's sanity reference already cached, as it is
  for every artifact of a baseline after the first;
- ``gate_first``: the same with the sanity reference not cached either (the baseline is loaded
  and its sanity perplexity computed once);
- ``bare``: the library call alone with the parameters the gate recorded (tokenize + load +
  quantize + save, nothing else);
- ``cache_hit``: ``produce_artifact`` again on the filled cache.

The three cold measurements alternate, ``--repeats`` times (default 7: on two shared cores single
runs of the int8 call spread by +-30%; AWQ defaults to 1, it takes minutes); the medians are
reported. For int8 the gate's weights are also compared tensor for tensor with the bare call's
(``same_weights_as_bare``): same parameters, same work. Overhead = median gate_cold / median bare
- 1. Because run-to-run
noise can exceed the overhead of a long backend (AWQ), ``gate_own_seconds`` also reports the gate's
own work directly: gate_cold minus the backend's quantize step inside it (``gate_own_over_bare``
= that / median bare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
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


def bare_awq(baseline: Path, texts: list[str], params: dict[str, object], max_seq_len: int, out: Path) -> float:
    """autoawq's own calls with the gate's recorded parameters (``artifact.params``)."""
    import torch
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer

    from gate.quantize.awq import QUANTIZER_FACTORY

    kwargs = {k: params[k] for k in ("apply_clip", "duo_scaling", "max_calib_samples", "max_calib_seq_len")}
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(baseline)
    calib = [ids for ids in (tok.encode(t.strip())[:max_seq_len] for t in texts) if ids]
    model = AutoAWQForCausalLM.from_pretrained(str(baseline), safetensors=True, device_map={"": "cpu"}, torch_dtype=torch.float32)
    model.quantize(tok, quant_config=dict(params["quant_config"]), calib_data=calib,  # type: ignore[call-overload]
                   quantizer_cls=QUANTIZER_FACTORY(), **kwargs)
    model.save_quantized(str(out), safetensors=True)
    return time.perf_counter() - started


def bare_int8(baseline: Path, params: dict[str, object], out: Path) -> float:
    """transformers + torchao with the gate's recorded parameters (``artifact.params``)."""
    import torch
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import AutoModelForCausalLM, TorchAoConfig

    group = params["group_size"]
    config = TorchAoConfig(Int8WeightOnlyConfig(group_size=None if group == -1 else group),
                           modules_to_not_convert=list(params["modules_to_not_convert"]))  # type: ignore[call-overload]
    device = str(params["device"])
    placement = {"device_map": {"": device}} if device != "cpu" else {}
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(baseline), dtype=getattr(torch, str(params["activation_dtype"])),
                                                 quantization_config=config, use_safetensors=True, **placement)
    model.save_pretrained(out, safe_serialization=True)
    return time.perf_counter() - started


def same_weights(artifact: Path, bare_out: Path) -> bool:
    """The gate's weights equal the bare call's tensor for tensor (same parameters, same work).
    Compared as tensors: two saves of the same model can differ in header byte order."""
    import torch
    from safetensors.torch import load_file

    ours, theirs = load_file(str(artifact / "model.safetensors")), load_file(str(bare_out / "model.safetensors"))
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="awq,int8,rtn")
    parser.add_argument("--repeats", type=int, default=None, help="cold measurements per backend (default 3, awq 1)")
    parser.add_argument("--no-bare", dest="bare", action="store_false")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from gate.cache import default_cache_dir
    from gate.quantize import prepare_baseline, produce_artifact
    from gate.quantize.calibration import load_calibration
    from gate.spec.loader import load_spec

    t0 = time.perf_counter()
    import torch
    import transformers  # noqa: F401

    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "import_seconds": round(time.perf_counter() - t0, 2),
    }
    work = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    runs = iter(range(1_000_000))

    def fresh(name: str) -> Path:
        return work / f"{name}-{next(runs)}"

    try:
        shared = default_cache_dir(REPO)
        for method in args.methods.split(","):
            spec = load_spec(spec_for(method, work))
            baseline = prepare_baseline(spec, REPO, shared, progress=False)
            cal = load_calibration(spec, REPO)
            texts = list(cal.texts) if cal else []
            max_seq_len = spec.spec.calibration.max_seq_len if spec.spec.calibration else 512
            warm_cache = fresh("cache")  # holds the sanity reference after the warm-up

            def gate(cache: Path) -> tuple[float, object]:
                started = time.perf_counter()
                artifact = produce_artifact(spec, baseline, REPO, cache, progress=False)  # noqa: B023
                return time.perf_counter() - started, artifact

            bare_dirs: list[Path] = []

            def bare(params: dict[str, object]) -> float:
                bare_dirs.append(fresh("bare"))  # noqa: B023
                if method == "awq":  # noqa: B023
                    return bare_awq(baseline.path, texts, params, max_seq_len or 512, bare_dirs[-1])  # noqa: B023
                return bare_int8(baseline.path, params, bare_dirs[-1])  # noqa: B023

            has_bare = args.bare and method in ("awq", "int8")
            repeats = args.repeats or (1 if method == "awq" else 7)
            _, artifact = gate(warm_cache)  # warm-up (and the sanity reference for warm_cache)
            params = artifact.params  # type: ignore[attr-defined]
            if has_bare and method != "awq":
                bare(params)  # warm-up
            cold: list[float] = []
            own: list[float] = []
            first: list[float] = []
            bares: list[float] = []
            for _ in range(repeats):
                artifacts = fresh("cache")
                shutil.copytree(warm_cache / "sanity", artifacts / "sanity")
                seconds, artifact = gate(artifacts)
                cold.append(seconds)
                own.append(seconds - artifact.quantize_seconds)  # type: ignore[attr-defined]
                first.append(gate(fresh("cache"))[0])
                if has_bare:
                    bares.append(bare(params))
            started = time.perf_counter()
            hit = produce_artifact(spec, baseline, REPO, artifacts, progress=False)
            hit_s = time.perf_counter() - started
            row: dict[str, object] = {
                "repeats": repeats,
                "gate_cold_seconds": median(cold),
                "gate_first_artifact_of_baseline_seconds": median(first),
                "gate_cold_runs": [round(x, 3) for x in cold],
                "backend_quantize_seconds": artifact.quantize_seconds,  # type: ignore[attr-defined]
                "gate_own_seconds": median(own),
                "timings": json.loads((artifact.path / "gate-provenance.json").read_text())["timings"],  # type: ignore[attr-defined]
                "cache_hit": hit.cache_hit,
                "cache_hit_seconds": round(hit_s, 3),
                "sanity": hit.sanity.model_dump() if hit.sanity else None,
            }
            if bares:
                row["bare_library_seconds"] = median(bares)
                row["bare_runs"] = [round(x, 3) for x in bares]
                row["gate_overhead"] = round(median(cold) / median(bares) - 1, 3)
                row["gate_overhead_first_artifact"] = round(median(first) / median(bares) - 1, 3)
                row["gate_own_over_bare"] = round(median(own) / median(bares), 3)
                if method == "int8":
                    row["same_weights_as_bare"] = same_weights(artifact.path, bare_dirs[-1])  # type: ignore[attr-defined]
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
