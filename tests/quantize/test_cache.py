from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from gate.cache import MANIFEST, ContentCache, cache_key


def writer(content: bytes, calls: list[int] | None = None, delay: float = 0.0):  # type: ignore[no-untyped-def]
    def build(out: Path) -> None:
        if calls is not None:
            calls.append(1)
        time.sleep(delay)
        (out / "weights.bin").write_bytes(content)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text("{}")

    return build


def test_key_is_canonical() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_hit_does_no_work(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    calls: list[int] = []
    first = cache.get_or_build("artifacts", "k1", writer(b"abc", calls))
    second = cache.get_or_build("artifacts", "k1", writer(b"abc", calls))
    assert (first.hit, second.hit) == (False, True)
    assert calls == [1]
    assert second.path == first.path == tmp_path / "artifacts" / "k1"
    assert first.manifest_sha256 == second.manifest_sha256
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir() if not p.name.startswith(".")) == ["k1"]


@pytest.mark.parametrize("damage", ["edit", "delete", "extra", "manifest"])
def test_corrupt_or_partial_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = ContentCache(tmp_path)
    entry = cache.get_or_build("artifacts", "k", writer(b"good"))
    if damage == "edit":
        (entry.path / "weights.bin").write_bytes(b"evil")
    elif damage == "delete":
        (entry.path / "sub" / "config.json").unlink()
    elif damage == "extra":
        (entry.path / "stray.txt").write_text("x")
    else:
        (entry.path / MANIFEST).unlink()
    assert cache.get("artifacts", "k") is None
    calls: list[int] = []
    rebuilt = cache.get_or_build("artifacts", "k", writer(b"good", calls))
    assert calls == [1] and not rebuilt.hit
    assert (rebuilt.path / "weights.bin").read_bytes() == b"good"
    assert not (rebuilt.path / "stray.txt").exists()
    assert cache.get("artifacts", "k") is not None


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)

    def broken(out: Path) -> None:
        (out / "weights.bin").write_bytes(b"half")
        raise RuntimeError("backend died mid-way")

    with pytest.raises(RuntimeError, match="backend died mid-way"):
        cache.get_or_build("artifacts", "k", broken)
    leftovers = [p.name for p in (tmp_path / "artifacts").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    assert cache.get("artifacts", "k") is None


def _race(root: str, queue: multiprocessing.Queue) -> None:
    entry = ContentCache(Path(root)).get_or_build("artifacts", "same", writer(b"x" * 100_000, delay=0.5))
    queue.put(entry.hit)


def test_concurrent_builders_of_one_key_do_not_corrupt_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    hits = sorted(queue.get(timeout=5) for _ in procs)
    assert hits == [False, True, True]
    entry = ContentCache(tmp_path).get("artifacts", "same")
    assert entry is not None
    assert (entry.path / "weights.bin").read_bytes() == b"x" * 100_000
    assert [p.name for p in (tmp_path / "artifacts").iterdir() if p.name.startswith(".tmp")] == []
