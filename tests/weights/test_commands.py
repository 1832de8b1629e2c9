"""`gate scan` and `gate lock` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from tests.weights import payloads as pl

REPO = Path(__file__).resolve().parents[2]


def test_scan_clean_directory_exits_0(tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tiny_llama_dir), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    verdicts = {Path(f["path"]).name: f["verdict"] for f in data["files"]}
    assert verdicts["model.safetensors"] == "ok"
    assert data["exit_code"] == 0


def test_scan_unsafe_file_exits_1_and_shows_globals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    canary = tmp_path / "canary"
    evil = pl.torch_like_zip(tmp_path / "model.safetensors", pl.stack_global(f"touch {canary}"))
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pl.clean_pickle())
    assert main(["scan", str(evil), str(clean)]) == 1
    out = capsys.readouterr().out
    assert "unsafe" in out and "os.system" in out and "safe-by-allowlist" in out
    assert "BLOCKED: 2 file(s): 1 safe-by-allowlist, 1 unsafe" in out
    assert not canary.exists()


def test_scan_allowlist_clean_pickle_alone_exits_0(tmp_path: Path) -> None:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pl.clean_pickle())
    assert main(["scan", str(clean), "--format", "json"]) == 0


def test_scan_remote_code_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text('{"auto_map": {"AutoModel": "m.M"}}')
    assert main(["scan", str(tmp_path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["remote_code"]["auto_map"] == ["AutoModel: m.M"]


def test_scan_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (
        f"gate: error: {tmp_path / 'nope'}: path does not exist\n  Hint: pass weight files or model directories\n"
    )


def test_lock_then_verify(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.lock.json"
    assert main(["lock", str(tiny_llama_dir), "--out", str(out)]) == 0
    names = [f["path"] for f in json.loads(out.read_text())["files"]]
    assert "model.safetensors" in names and "config.json" in names


def test_lock_from_a_spec_uses_its_lockfile(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    weights = tmp_path / "weights" / "m"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    spec = tmp_path / "models" / "m.yaml"
    spec.parent.mkdir()
    base = (REPO / "tests" / "policy" / "base_spec.yaml").read_text()
    spec.write_text(base.replace(
        "  hub: example-org/case-model\n  revision: 0123456789abcdef0123456789abcdef01234567\n",
        "  path: weights/m\n  lockfile: locks/m.lock.json\n",
    ))
    assert main(["lock", str(spec)]) == 0
    assert json.loads((tmp_path / "locks" / "m.lock.json").read_text())["files"][0]["path"] == "config.json"


def test_lock_defaults_next_to_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.json").write_text("{}")
    assert main(["lock", str(model)]) == 0
    assert (tmp_path / "m.lock.json").is_file()
    assert main(["lock", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.endswith(
        f"gate: error: {tmp_path / 'missing'}: model path does not exist\n  Hint: pass the model directory (or GGUF file) to lock\n"
    )


def test_gate_scan_and_check_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import gate.cli, gate.commands.scan, gate.commands.lock, gate.weights, gate.weights.files\n"
        "from gate.policy.rules import builtin_rules; builtin_rules()\n"
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_scan_table_never_prints_markup_or_escapes_from_member_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[bold]x[/bold]\x1b[2J\x1b]8;;http://evil/\x07.pkl", pl.stack_global("touch /nonexistent/x"))
    assert main(["scan", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "[bold]x[/bold]\\x1b[2J\\x1b]8;;http://evil/\\x07.pkl" in out.replace("\n", "").replace("│", "").replace(" ", "")
