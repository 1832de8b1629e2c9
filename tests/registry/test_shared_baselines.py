"""Baseline results shared through a PostgreSQL registry: stored once under the local cache's key,
found by a runner with an empty cache, verified, and never a failure when the registry is down."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gate.evaluate.baseline_cache import BaselineCache, cache_key
from gate.evaluate.fidelity import FidelityReference
from gate.evaluate.interface import TaskScores
from gate.registry.baselines import SharedBaselines, shared_for
from tests.registry import pg


def _scores() -> TaskScores:
    return TaskScores(task="t", metric="acc", kind="binary", doc_ids=[3, 1], values=[1.0, 0.0])


def _reference() -> FidelityReference:
    return FidelityReference(texts_sha256="ab" * 32, token_ids=[np.arange(5, dtype=np.int64)],
                             top_idx=[np.zeros((4, 2), dtype=np.int64)], top_logp=[np.full((4, 2), -1.5, np.float32)])


def test_a_second_runner_takes_what_the_first_stored(tmp_path: Path, pg_url: str) -> None:
    first = BaselineCache(tmp_path / "runner-1", shared=SharedBaselines(pg_url))
    scores_key, fid_key = cache_key("scores", {"b": 1}), cache_key("fidelity", {"b": 1})
    first.put_scores(scores_key, _scores())
    first.put_fidelity(fid_key, _reference())
    first.put_scores(scores_key, _scores())  # a second writer of the same key changes nothing
    assert SharedBaselines(pg_url).count() == 2

    second = BaselineCache(tmp_path / "runner-2", shared=SharedBaselines(pg_url))
    assert second.get_scores(scores_key) == _scores()
    reference = second.get_fidelity(fid_key)
    assert reference is not None and reference.texts_sha256 == "ab" * 32
    assert np.array_equal(reference.top_logp[0], _reference().top_logp[0])
    assert second.shared_hits == {scores_key, fid_key}
    assert (tmp_path / "runner-2" / "baseline" / f"{fid_key}.npz").is_file()  # kept locally from now on
    assert second.get_performance(cache_key("performance", {"b": 1})) is None


def test_a_tampered_blob_is_a_miss(tmp_path: Path, pg_url: str, pg_cluster: pg.Cluster) -> None:
    key = cache_key("fidelity", {"b": 2})
    BaselineCache(tmp_path / "a", shared=SharedBaselines(pg_url)).put_fidelity(key, _reference())
    pg_cluster.psql("UPDATE baseline_results SET blob = 'x'::bytea", pg_url.rsplit("/", 1)[1])
    assert BaselineCache(tmp_path / "b", shared=SharedBaselines(pg_url)).get_fidelity(key) is None


def test_an_unreachable_registry_means_local_cache_only(tmp_path: Path) -> None:
    shared = SharedBaselines(f"postgresql://gate:pw@127.0.0.1:{pg.free_port()}/reg")
    cache = BaselineCache(tmp_path, shared=shared)
    key = cache_key("scores", {"b": 3})
    cache.put_scores(key, _scores())
    assert cache.get_scores(key) == _scores()  # the local file
    assert cache.get_scores(cache_key("scores", {"b": 4})) is None
    assert len(shared.errors) == 1 and "registry database is unreachable" in shared.errors[0]


def test_only_a_postgres_registry_is_shared(tmp_path: Path, pg_url: str) -> None:
    assert shared_for(tmp_path / "r.db") is None
    assert isinstance(shared_for(pg_url), SharedBaselines)
