"""Baseline cache: round trips, keys that move with their inputs, corrupt entries as misses."""

from __future__ import annotations

from pathlib import Path

from gate.evaluate.baseline_cache import BaselineCache, cache_key
from gate.evaluate.interface import TaskScores


def _scores() -> TaskScores:
    return TaskScores(task="t", metric="acc", kind="binary", doc_ids=[3, 1], values=[1.0, 0.0])


def test_scores_round_trip(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path)
    key = cache_key("scores", {"baseline": "abc", "task": "t"})
    assert cache.get_scores(key) is None
    cache.put_scores(key, _scores())
    assert cache.get_scores(key) == _scores()


def test_key_changes_with_any_part() -> None:
    base = {"baseline": "abc", "task_sha256": "1", "runtime": {"torch": "2.13.0"}}
    keys = {
        cache_key("scores", base),
        cache_key("scores", {**base, "baseline": "abd"}),
        cache_key("scores", {**base, "task_sha256": "2"}),
        cache_key("scores", {**base, "runtime": {"torch": "2.14.0"}}),
        cache_key("fidelity", base),
    }
    assert len(keys) == 5
    assert cache_key("scores", dict(reversed(list(base.items())))) == cache_key("scores", base)


def test_corrupt_or_foreign_entries_are_misses(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path)
    key = cache_key("scores", {"x": 1})
    cache.put_scores(key, _scores())
    path = tmp_path / "baseline" / f"{key}.json"
    path.write_text("{not json")
    assert cache.get_scores(key) is None
    other = cache_key("scores", {"x": 2})
    cache.put_scores(other, _scores())
    path.write_text((tmp_path / "baseline" / f"{other}.json").read_text())  # right shape, wrong key
    assert cache.get_scores(key) is None


def test_perplexity_aggregates_match_lm_eval_definitions() -> None:
    import math

    ppl = TaskScores(task="p", metric="word_perplexity", kind="perplexity", doc_ids=[0, 1],
                     values=[[10.0, 5.0], [2.0, 1.0]])
    assert ppl.aggregate() == math.exp(12.0 / 6.0)
    bpb = ppl.model_copy(update={"kind": "bits_per_byte"})
    assert bpb.aggregate() == 12.0 / 6.0 / math.log(2)
    assert ppl.take(1).doc_ids == [0]
