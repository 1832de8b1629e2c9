"""`gate run` end to end as a user sees it: the terminal shows only the gate's own lines, the log the rest."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}  # no spinning threads on a shared CPU


def _gate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from gate.cli import entry; entry()", *args],
                          cwd=repo, capture_output=True, text=True, timeout=600, check=False, env=ENV)


@pytest.fixture(scope="module")
def ran(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real `gate run` (recorded in the repository's registry), shared by this module's tests."""
    repo = tmp_path_factory.mktemp("quiet") / "repo"
    spec = make_repo(repo, tiny_llama_dir, INT8)
    write_tasks(repo, mc_items_n=60, ppl_docs=30)  # small: this test is about output, not statistics
    (repo / "policies" / "tests.yaml").write_text(POLICY.replace("max_drop: 10.0", "max_drop: 30.0").replace(
        "max_relative_increase: 0.20", "max_relative_increase: 1.0"), encoding="utf-8")
    proc = _gate(repo, "run", str(spec), "--device", "cpu", "--format", "json", "--out", str(repo / "result.json"))
    return repo, proc


def test_terminal_has_only_the_gates_lines_and_the_log_has_the_libraries(
        ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    repo, proc = ran
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)  # stdout is the report and nothing else
    assert result["verdict"]["decision"] in ("pass", "fail", "inconclusive")
    lines = proc.stderr.splitlines()
    third_party = [line for line in lines if not line.startswith("gate run: ")]
    assert third_party == []
    stages = {line.split(":")[1].strip() for line in lines}
    assert {"baseline", "evaluate-baseline", "quantize", "evaluate-quantized"} <= stages
    assert any("speed and memory (decode passes) 7/7" in line for line in lines)
    # lm-eval steps: items done / total while they run (a start line and an end line at least)
    for stage in ("evaluate-baseline", "evaluate-quantized"):
        assert f"gate run: {stage}: tiny_mc items 0/60" in lines
        assert any(line.startswith(f"gate run: {stage}: tiny_ppl items 30/30 · ") for line in lines)
    log = repo / result["log"]
    assert result["log"].startswith(".gate/logs/run-") and log.is_file()
    assert lines[-1] == f"gate run: library output (warnings, progress bars, banners) is in {result['log']}"
    text = log.read_text(encoding="utf-8", errors="replace")
    assert text.strip()  # lm-eval and transformers had their say, there
    assert "gate run:" not in text


def test_revalidate_is_quiet_like_run(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    repo, _ = ran
    # The recorded run passed on an older stack (torch 2.0.0), so this stack must re-validate it.
    with sqlite3.connect(repo / ".gate" / "registry.db") as db:
        (runtime_json,) = db.execute("SELECT runtime_json FROM runs").fetchone()
        current = json.loads(runtime_json)["torch"]
        old = {**json.loads(runtime_json), "torch": "2.0.0"}
        db.execute("UPDATE runs SET runtime_json = ?, verdict = 'pass'", (json.dumps(old, sort_keys=True),))
    proc = _gate(repo, "revalidate", "--device", "cpu")
    assert proc.returncode in (0, 1), proc.stderr
    lines = proc.stderr.splitlines()
    assert [line for line in lines if not line.startswith("gate revalidate: ")] == []
    assert "gate revalidate: evaluate-quantized: tiny_mc items 0/60" in lines
    logs = sorted((repo / ".gate" / "logs").glob("revalidate-*.log"))
    assert len(logs) == 1
    shown = logs[0].relative_to(repo).as_posix()
    assert lines[-1] == f"gate revalidate: library output (warnings, progress bars, banners) is in {shown}"
    text = logs[0].read_text(encoding="utf-8", errors="replace")
    assert text.strip() and "gate revalidate:" not in text
    (outcome,) = proc.stdout.splitlines()[:1]
    assert outcome.startswith("tiny: ") and outcome.endswith(f" after torch 2.0.0 -> {current}")
    with sqlite3.connect(repo / ".gate" / "registry.db") as db:
        (recorded_log,) = db.execute("SELECT result_json FROM runs ORDER BY id DESC").fetchone()
    assert json.loads(recorded_log)["log"] == shown  # the new run's record names its log

