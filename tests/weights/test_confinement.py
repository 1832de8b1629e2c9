"""Path confinement of spec paths, checked lexically and through symlinks before any read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.weights.confinement import check_path, check_tree


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/etc/passwd", "is an absolute path; give a path relative to the repository root"),
        ("C:\\Windows\\system.ini", "is an absolute path; give a path relative to the repository root"),
        ("~/.ssh/id_rsa", "is a home-directory path; give a path relative to the repository root"),
        ("../x", "escapes the repository root through '..'"),
        ("data/../../x", "escapes the repository root through '..'"),
        ("data/\x00x", "contains a NUL byte"),
    ],
)
def test_escapes(tmp_path: Path, value: str, reason: str) -> None:
    violation = check_path("calibration.source", value, tmp_path)
    assert violation is not None
    assert (violation.key, violation.path, violation.reason) == ("calibration.source", value, reason)


@pytest.mark.parametrize("value", ["data/cal.jsonl", "data/../data/cal.jsonl", "./weights", "not/yet/there", "org/dataset-id"])
def test_inside(tmp_path: Path, value: str) -> None:
    assert check_path("calibration.source", value, tmp_path) is None


def test_symlinks(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "data").mkdir(parents=True)
    outside.mkdir()
    (repo / "data" / "inside.jsonl").write_text("x")
    (repo / "data" / "ok-link").symlink_to(repo / "data" / "inside.jsonl")
    (repo / "data" / "dir-link").symlink_to(outside)
    assert check_path("k", "data/ok-link", repo) is None
    violation = check_path("k", "data/dir-link/file.jsonl", repo)
    assert violation is not None
    assert violation.reason == f"resolves through a symlink to {outside / 'file.jsonl'}, outside the repository root"
    found = check_tree("model.path", repo / "data", repo, "data")
    assert [(v.path, v.reason) for v in found] == [("data/dir-link", f"is a symlink to {outside}, outside the repository root")]
