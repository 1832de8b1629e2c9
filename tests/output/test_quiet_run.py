"""`gate run` end to end as a user sees it: the terminal shows only the gate's own lines, the log the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.evaluate.repo import POLICY, make_repo, spec_text, write_tasks

LOOSE = (  # wide tolerances, so an untrained tiny model's small eval sets resolve them and every stage runs
    "quality:\n"
    "  confidence: 0.95\n"
    "  sequential: false\n"
    "  metrics:\n"
    "    - {task: tiny_mc, metric: acc, max_drop: 30.0}\n"
    "    - {task: tiny_ppl, metric: word_perplexity, max_relative_increase: 1.0}\n"
    "  fidelity: {max_kl: 0.3, max_flip_rate: 0.35, texts: tasks/data/tiny_ppl.jsonl, tokens: 256}\n"
)
INT8 = spec_text(bits=8, quality=LOOSE).replace("  method: rtn\n", "  method: int8\n").replace(
    "  group_size: 32\n  format: rtn\n", "  group_size: -1\n  format: int8-weight-only\n")


def _gate_run(repo: Path, spec: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}  # no spinning threads on a shared CPU
    return subprocess.run(
        [sys.executable, "-c", "from gate.cli import entry; entry()", "run", str(spec), "--device", "cpu",
         "--no-registry", "--format", "json", "--out", str(repo / "result.json"), *extra],
        cwd=repo, capture_output=True, text=True, timeout=600, check=False, env=env,
    )


def test_terminal_has_only_the_gates_lines_and_the_log_has_the_libraries(tiny_llama_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    spec = make_repo(repo, tiny_llama_dir, INT8)
    write_tasks(repo, mc_items_n=60, ppl_docs=30)  # small: this test is about output, not statistics
    (repo / "policies" / "tests.yaml").write_text(POLICY.replace("max_drop: 10.0", "max_drop: 30.0").replace(
        "max_relative_increase: 0.20", "max_relative_increase: 1.0"), encoding="utf-8")
    proc = _gate_run(repo, spec)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)  # stdout is the report and nothing else
    assert result["verdict"]["decision"] in ("pass", "fail", "inconclusive")
    lines = proc.stderr.splitlines()
    third_party = [line for line in lines if not line.startswith("gate run: ")]
    assert third_party == []
    stages = {line.split(":")[1].strip() for line in lines}
    assert {"baseline", "evaluate-baseline", "quantize", "evaluate-quantized"} <= stages
    assert any("speed and memory (decode passes) 7/7" in line for line in lines)
    log = repo / result["log"]
    assert result["log"].startswith(".gate/logs/run-") and log.is_file()
    assert lines[-1] == f"gate run: library output (warnings, progress bars, banners) is in {result['log']}"
    text = log.read_text(encoding="utf-8", errors="replace")
    assert text.strip()  # lm-eval and transformers had their say, there
    assert "gate run:" not in text
