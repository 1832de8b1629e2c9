"""sha256 lockfiles: deterministic format, streaming hash, verification findings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from gate.weights.interface import LockChange, LockState, WeightsError
from gate.weights.lockfile import (
    hash_files,
    read_lockfile,
    sha256_file,
    verify_lockfile,
    write_lockfile,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}\n')
    (root / "model.safetensors").write_bytes(os.urandom(3 * (1 << 20) + 17))
    (root / "sub" / "tokenizer.json").write_text("{}")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    return root


def test_sha256_file_matches_hashlib_and_sha256sum(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk_bytes=4096) == expected
    assert subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0] == expected


def test_hash_files_in_parallel_keeps_the_mapping(model_dir: Path) -> None:
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    assert hash_files(files, workers=4) == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_lockfile_is_deterministic_and_relative(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.lock.json"
    write_lockfile(model_dir, out)
    first = out.read_text()
    write_lockfile(model_dir, out)
    assert out.read_text() == first
    assert first.endswith("}\n")
    data = json.loads(first)
    assert list(data) == ["files", "lockfile_version", "revision"]
    assert [f["path"] for f in data["files"]] == ["config.json", "model.safetensors", "sub/tokenizer.json"]
    assert data["files"][0] == {"path": "config.json", "sha256": hashlib.sha256(b'{"a": 1}\n').hexdigest(), "size": 9}
    assert data["revision"] is None


def test_lockfile_inside_the_model_dir_does_not_lock_itself(model_dir: Path) -> None:
    out = model_dir / "gate.lock.json"
    write_lockfile(model_dir, out)
    assert "gate.lock.json" not in out.read_text()
    assert verify_lockfile(model_dir, out).state is LockState.ok


def test_hub_revision_is_recorded(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    write_lockfile(model_dir, out, revision="0123456789abcdef0123456789abcdef01234567")
    assert read_lockfile(out).revision == "0123456789abcdef0123456789abcdef01234567"
    status = verify_lockfile(model_dir, out, expected_revision="f" * 40)
    assert (status.state, status.revision_mismatch) == (LockState.mismatch, True)
    with pytest.raises(WeightsError) as info:
        write_lockfile(model_dir, out, revision="main")
    assert str(info.value) == (
        "revision 'main' is not a 40-hex commit\n"
        "  Hint: pin the hub commit sha (e.g. from `huggingface-cli download --revision`), never a branch"
    )


def test_gguf_lockfile_covers_the_single_file(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)
    out = tmp_path / "m.lock.json"
    write_lockfile(gguf, out)
    assert [f["path"] for f in json.loads(out.read_text())["files"]] == ["m.gguf"]
    assert verify_lockfile(gguf, out).state is LockState.ok


def test_verify_reports_changed_missing_and_extra(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    write_lockfile(model_dir, out)
    old = sha256_file(model_dir / "config.json")
    (model_dir / "config.json").write_text('{"a": 2}\n')
    (model_dir / "sub" / "tokenizer.json").unlink()
    (model_dir / "modeling_evil.py").write_text("import os\n")
    status = verify_lockfile(model_dir, out, shown_lockfile="locks/l.json")
    assert status.state is LockState.mismatch
    assert status.lockfile == "locks/l.json"
    assert status.changed == [
        LockChange(path="config.json", expected_sha256=old, actual_sha256=hashlib.sha256(b'{"a": 2}\n').hexdigest(),
                   expected_size=9, actual_size=9)
    ]
    assert status.missing == ["sub/tokenizer.json"]
    assert status.extra == ["modeling_evil.py"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"files": [}', "l.json:1:12: lockfile is not valid JSON: Expecting value"),
        ('{"files": [], "lockfile_version": 2, "revision": null}', "l.json: lockfile_version must be 1, got 2"),
        ('{"files": [{"path": "../x", "sha256": "' + "a" * 64 + '", "size": 1}], "lockfile_version": 1, "revision": null}',
         "l.json: files[0].path must be a relative path inside the model, got '../x'"),
        ('{"files": [{"path": "x", "sha256": "abc", "size": 1}], "lockfile_version": 1, "revision": null}',
         "l.json: files[0].sha256 must be 64 lowercase hex digits"),
        ('{"files": [], "files": [], "lockfile_version": 1}', "l.json: lockfile has a duplicate key 'files'"),
    ],
)
def test_malformed_lockfiles_are_input_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(WeightsError) as info:
        read_lockfile(path, "l.json")
    assert str(info.value).splitlines()[0] == expected
    assert info.value.exit_code == 2


def test_hash_memory_is_constant(tmp_path: Path) -> None:
    """Peak RSS while hashing a 256 MiB file stays far below the file size (streamed)."""
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(256 << 20)
    code = (
        "import resource, sys; from pathlib import Path; from gate.weights.lockfile import sha256_file\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "sha256_file(Path(sys.argv[1]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    import sys

    grew_kib = int(subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).resolve().parents[2]).stdout)
    assert grew_kib < 16 * 1024
