"""Issue #20, runner hygiene: a pull request cannot write what another pull request reads from the
gate's content cache. PR jobs write only their own root; the shared layer (``GATE_CACHE_SHARED``,
written by the trusted base-branch job) is read, verified on every read, and never written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.cache import ContentCache, shared_cache_dirs


def build(content: bytes):  # type: ignore[no-untyped-def]
    def write(out: Path) -> None:
        (out / "weights.bin").write_bytes(content)

    return write


def trusted_entry(tmp_path: Path) -> Path:
    shared = tmp_path / "trusted"
    ContentCache(shared, shared=()).get_or_build("artifacts", "k", build(b"trusted"))
    return shared


def test_a_pr_reads_the_trusted_layer_and_writes_only_its_own_root(tmp_path: Path) -> None:
    shared = trusted_entry(tmp_path)
    pr = ContentCache(tmp_path / "pr-17", shared=(shared,))
    entry = pr.get_or_build("artifacts", "k", build(b"never built"))
    assert (entry.hit, entry.path) == (True, shared / "artifacts" / "k")
    fresh = pr.get_or_build("artifacts", "other", build(b"pr"))
    assert (fresh.hit, fresh.path) == (False, tmp_path / "pr-17" / "artifacts" / "other")
    assert not (shared / "artifacts" / "other").exists()


def test_a_tampered_shared_entry_is_never_returned(tmp_path: Path) -> None:
    shared = trusted_entry(tmp_path)
    (shared / "artifacts" / "k" / "weights.bin").write_bytes(b"poisoned")
    pr = ContentCache(tmp_path / "pr-18", shared=(shared,))
    entry = pr.get_or_build("artifacts", "k", build(b"rebuilt"))
    assert (entry.hit, entry.path) == (False, tmp_path / "pr-18" / "artifacts" / "k")
    assert (entry.path / "weights.bin").read_bytes() == b"rebuilt"
    assert (shared / "artifacts" / "k" / "weights.bin").read_bytes() == b"poisoned"  # left for the trusted job


@pytest.mark.parametrize("where", ["file", "entry"])
def test_entries_with_symlinks_are_refused(tmp_path: Path, where: str) -> None:
    canary = tmp_path / "secret"
    canary.write_bytes(b"x")  # same bytes as the entry's file: only the link gives it away
    cache = ContentCache(tmp_path / "root", shared=())
    entry = cache.get_or_build("artifacts", "k", build(b"x"))
    if where == "file":
        (entry.path / "weights.bin").unlink()
        (entry.path / "weights.bin").symlink_to(canary)
    else:
        other = tmp_path / "elsewhere"
        entry.path.rename(other)
        entry.path.symlink_to(other)
    assert cache.get("artifacts", "k") is None


def test_shared_layers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATE_CACHE_SHARED", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert shared_cache_dirs() == (tmp_path / "a", tmp_path / "b")
    assert ContentCache(tmp_path / "root").shared == (tmp_path / "a", tmp_path / "b")
    monkeypatch.delenv("GATE_CACHE_SHARED")
    assert ContentCache(tmp_path / "root").shared == ()
