"""``gate check`` remembers a spec's power numbers: a repeated check (the pre-commit case) imports
neither numpy nor the verdict's statistics, and shows the same numbers; a changed task or spec, or
a broken cache file, is computed again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.evaluate.repo import write_tasks

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from gate.cli import main
code = main(sys.argv[1:])
print("\\n@@" + json.dumps({"code": code, "numpy": "numpy" in sys.modules,
                            "verdict": "gate.verdict.sequential" in sys.modules}))
"""


def _repo(tmp_path: Path, items: int) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "policies", repo / "policies")
    (repo / "data").mkdir()  # not under gate/: a gate/ folder in the working directory would shadow the package
    shutil.copy(REPO_ROOT / "gate/data/calibration/calibration.jsonl", repo / "data")
    write_tasks(repo, mc_items_n=items, ppl_docs=5)
    text = (REPO_ROOT / "models/support-assistant.yaml").read_text(encoding="utf-8").replace(
        "gate/data/calibration/calibration.jsonl", "data/calibration.jsonl")
    text = text.replace("    - {task: support_qa, metric: acc, max_drop: 1.0}\n"
                        "    - {task: qg_license_ppl, metric: word_perplexity, max_relative_increase: 0.05}\n",
                        "    - {task: tiny_mc, metric: acc, max_drop: 1.0}\n")
    assert "tiny_mc" in text
    spec = repo / "models/support-assistant.yaml"
    spec.parent.mkdir()
    spec.write_text(text, encoding="utf-8")
    return repo, spec


def _check(repo: Path, spec: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, "check", str(spec), "--format", "json"], cwd=repo,
                          capture_output=True, text=True, timeout=120, check=False)
    assert "\n@@" in proc.stdout, proc.stdout + proc.stderr
    out, probe = proc.stdout.rsplit("\n@@", 1)
    state = json.loads(probe)
    assert state["code"] == 0, proc.stdout + proc.stderr
    return state, json.loads(out)["power"]["criteria"]


def test_a_repeated_check_reads_its_power_back_without_numpy(tmp_path: Path) -> None:
    repo, spec = _repo(tmp_path, items=400)
    cold, power = _check(repo, spec)
    assert cold == {"code": 0, "numpy": True, "verdict": True}  # computed: the sequential design needs numpy
    (cached,) = (repo / ".gate/cache/check-power").iterdir()
    tiny = next(c for c in power if c["criterion"] == "tiny_mc/acc")
    assert tiny["n"] == 400

    warm, again = _check(repo, spec)
    assert warm == {"code": 0, "numpy": False, "verdict": False}
    assert again == power

    write_tasks(repo, mc_items_n=800, ppl_docs=5)  # the task grew: its item count and power change
    changed, grown = _check(repo, spec)
    assert changed["numpy"] is True
    assert next(c for c in grown if c["criterion"] == "tiny_mc/acc")["n"] == 800

    for entry in (repo / ".gate/cache/check-power").iterdir():
        entry.write_text("{not json", encoding="utf-8")  # a broken cache file is computed again, not trusted
    broken, recomputed = _check(repo, spec)
    assert broken["numpy"] is True and recomputed == grown
    assert cached.exists()
