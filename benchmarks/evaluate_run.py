#!/usr/bin/env python3
"""Time `gate run` cold (empty cache) and warm (baseline + artifact cached), stage by stage.

    .venv/bin/python benchmarks/evaluate_run.py                       # tiny trained Llama, built here
    .venv/bin/python benchmarks/evaluate_run.py --spec models/smollm2-135m.yaml   # the real example

Prints a Markdown table (paste into docs/benchmarks/evaluate.md). Each run uses a fresh temporary
cache directory for the cold run and reuses it for the warm one; the registry is off.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def _tiny_repo(root: Path) -> tuple[Path, Path]:
    from tests.evaluate.repo import make_repo, spec_text
    from tests.tiny_models import build_tiny_llama

    model = build_tiny_llama(root / "model", train_steps=60)
    spec = make_repo(root / "repo", model, spec_text(bits=8))
    return spec, root / "repo"


def _run(spec: Path, repo: Path, cache: Path) -> tuple[float, object]:
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set

    options = RunOptions(repo_root=repo, cache_dir=cache, device="cpu", progress=False)
    start = time.perf_counter()
    result = run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=None, help="spec to run (default: a tiny model built here)")
    parser.add_argument("--repo-root", type=Path, default=REPO)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        if args.spec is None:
            spec, repo = _tiny_repo(Path(tmp))
        else:
            spec, repo = args.spec.resolve(), args.repo_root.resolve()
        cache = Path(tmp) / "cache"
        cold_s, cold = _run(spec, repo, cache)
        warm_s, warm = _run(spec, repo, cache)
    print(f"spec: {spec.name}  machine: {os.cpu_count()} CPU cores, no GPU\n")
    print("| stage | cold s | warm s | warm cache hit |")
    print("|---|---:|---:|---|")
    warm_stages = {s.stage: s for s in warm.stages}  # type: ignore[attr-defined]
    for s in cold.stages:  # type: ignore[attr-defined]
        w = warm_stages.get(s.stage)
        print(f"| {s.stage} | {s.seconds:.1f} | {w.seconds if w else float('nan'):.1f} | {w.cache_hit if w else ''} |")
    print(f"| **total** | **{cold_s:.1f}** | **{warm_s:.1f}** | warm/cold = {warm_s / cold_s:.2f} |")
    print(f"\nverdicts: cold {cold.verdict.decision.value}, warm {warm.verdict.decision.value}")  # type: ignore[attr-defined]
    for c in cold.criteria:  # type: ignore[attr-defined]
        n = f", n={c.n}/{c.n_total}" if c.n_total else (f", n={c.n}" if c.n else "")
        print(f"- {c.name}: baseline {c.baseline}, candidate {c.candidate}, change {c.change} "
              f"[{c.ci_low}, {c.ci_high}]{n}, outcome {c.outcome.value if c.outcome else 'not judged'}")
    if cold.performance:  # type: ignore[attr-defined]
        p = cold.performance  # type: ignore[attr-defined]
        for side, q in (("baseline", p.baseline), ("quantized", p.candidate)):
            print(f"- {side}: prefill p50 {q.prefill_ms_p50:.1f} ms, decode p50 {q.decode_ms_per_token_p50:.1f} ms/token, "
                  f"tokens/s {q.tokens_per_s}, peak {q.peak_memory_bytes / 1e9:.2f} GB ({q.memory_kind}), "
                  f"disk {q.disk_bytes / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
