"""A throwaway git repository around a tiny model: weights + lockfile, calibration data, tiny lm-eval
tasks written into ``tasks/``, and a spec. Real files throughout (no mocks)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

from tests.tiny_models import CORPUS_LINES, corpus

MC_TASK = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/tiny_mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
"""

PPL_TASK = """task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/tiny_ppl.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
"""


POLICY = """apiVersion: quant-gate/v1
kind: Policy
metadata: {name: tests}
rules:
  - rule: QG403
    scope: {tiers: [internal]}
    params: {max_drop: 10.0, max_relative_drop: 0.10, max_relative_increase: 0.20, max_kl: 0.30, max_flip_rate: 0.35}
"""


def mc_items(n: int, seed: int = 0) -> list[dict[str, object]]:
    """Continue a corpus sentence: its next two words against two words from another sentence."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        line = CORPUS_LINES[i % len(CORPUS_LINES)]
        words = line.split()
        cut = rng.randint(2, len(words) - 2)
        other = rng.choice([o.split() for o in CORPUS_LINES if o != line])
        at = min(cut, len(other) - 2)
        right, wrong = " ".join(words[cut:cut + 2]), " ".join(other[at:at + 2])
        choices = [right, wrong] if rng.random() < 0.5 else [wrong, right]
        items.append({"question": " ".join(words[:cut]), "choices": choices, "answer": choices.index(right)})
    return items


def write_tasks(repo: Path, *, mc_items_n: int = 300, ppl_docs: int = 60) -> None:
    tasks = repo / "tasks"
    (tasks / "data").mkdir(parents=True, exist_ok=True)
    (tasks / "tiny_mc.yaml").write_text(MC_TASK, encoding="utf-8")
    (tasks / "tiny_ppl.yaml").write_text(PPL_TASK, encoding="utf-8")
    with open(tasks / "data" / "tiny_mc.jsonl", "w", encoding="utf-8") as handle:
        for item in mc_items(mc_items_n):
            handle.write(json.dumps(item) + "\n")
    with open(tasks / "data" / "tiny_ppl.jsonl", "w", encoding="utf-8") as handle:
        for line in corpus(10)[:ppl_docs]:
            handle.write(json.dumps({"text": line}) + "\n")


def spec_text(*, bits: int = 8, quality: str | None = None, performance: str = "") -> str:
    quality = quality or (
        "quality:\n"
        "  confidence: 0.95\n"
        "  sequential: false\n"
        "  metrics:\n"
        "    - {task: tiny_mc, metric: acc, max_drop: 10.0}\n"
        "    - {task: tiny_ppl, metric: word_perplexity, max_relative_increase: 0.2}\n"
        "  fidelity: {max_kl: 0.3, max_flip_rate: 0.35, texts: tasks/data/tiny_ppl.jsonl, tokens: 1024}\n"
    )
    low_bits = "  qat_plan: \"Deliberately broken for the gate's own tests; never shipped.\"\n" if bits < 4 else ""
    return (
        "apiVersion: quant-gate/v1\n"
        "kind: ModelSpec\n"
        "metadata: {name: tiny, owner: team-tests, tier: internal}\n"
        "model:\n"
        "  path: weights/tiny\n"
        "  lockfile: weights/tiny.lock.json\n"
        "constraint:\n"
        "  kind: memory\n"
        "  statement: \"Must run on a small CPU box next to the app.\"\n"
        "  target: {hardware: cpu-x86-avx2, memory_gb: 16, context: 512, batch: 1}\n"
        "quantization:\n"
        "  method: rtn\n"
        f"  bits: {bits}\n"
        "  group_size: 32\n"
        "  format: rtn\n"
        "  justification: \"Reference RTN for the gate's own tests.\"\n"
        f"{low_bits}"
        "calibration:\n"
        "  source: data/calibration.jsonl\n"
        f"  sha256: \"{{CAL_SHA}}\"\n"
        "  samples: 128\n"
        "  max_seq_len: 64\n"
        "  collected: 2026-11-01\n"
        f"{quality}"
        f"{performance}"
        "rollout: {flag: quant-tiny, traffic_slice: 0.05, rollback: baseline}\n"
    )


def make_repo(root: Path, model_dir: Path, spec: str) -> Path:
    """A git repo at ``root`` with the model, its lockfile, calibration data, tasks and ``tiny.yaml``."""
    from gate.weights.lockfile import write_lockfile

    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    weights = root / "weights" / "tiny"
    if not weights.exists():
        shutil.copytree(model_dir, weights)
        write_lockfile(weights, root / "weights" / "tiny.lock.json")
    cal = root / "data" / "calibration.jsonl"
    cal.parent.mkdir(parents=True, exist_ok=True)
    cal.write_text("".join(json.dumps({"text": line}) + "\n" for line in corpus(20)[:128]), encoding="utf-8")
    write_tasks(root)
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "tests.yaml").write_text(POLICY, encoding="utf-8")
    sha = hashlib.sha256(cal.read_bytes()).hexdigest()
    spec_path = root / "tiny.yaml"
    spec_path.write_text(spec.replace("{CAL_SHA}", sha), encoding="utf-8")
    return spec_path
