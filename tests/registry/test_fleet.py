"""Two runners, one shared PostgreSQL registry: the second runner (its own checkout and its own,
empty cache directory) reuses the first one's baseline results and evaluates no baseline; both runs
are recorded fleet-wide, the first also in MLflow, and the second's MLflow outage changes nothing.

The two checkouts sit at different paths: the content key holds no path of the checkout (task
identities are made relative to it in ``gate/evaluate/suites.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.registry import Registry
from gate.registry.baselines import SharedBaselines
from gate.result import Decision, GateResult
from tests.evaluate.repo import make_repo
from tests.registry import pg
from tests.test_run_e2e import INT8


def _run(spec: Path, repo: Path, cache: Path, registry: str, mlflow_uri: str) -> GateResult:
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set

    options = RunOptions(repo_root=repo, cache_dir=cache, device="cpu", progress=False,
                         resamples=2000, registry_db=registry, mlflow_uri=mlflow_uri, mlflow_experiment="fleet")
    return run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))


def _stage(result: GateResult, name: str) -> dict[str, object]:
    return next(s.model_dump() for s in result.stages if s.stage == name)


@pytest.mark.slow  # two full gate runs on the tiny model plus an MLflow server: ~1 min of CPU
def test_second_runner_reuses_the_first_runners_baseline_through_the_registry(
    trained_tiny_llama_dir: Path, tmp_path: Path, pg_url: str, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "runner-1" / "work" / "repo"
    first_cache, second_cache = tmp_path / "runner-1-cache", tmp_path / "runner-2-cache"
    first = _run(make_repo(checkout, trained_tiny_llama_dir, INT8), checkout, first_cache, pg_url, mlflow_server)
    checkout = tmp_path / "runner-2" / "_work" / "models" / "models"  # another runner, another checkout path
    assert first.verdict.decision is Decision.passed, first.verdict.reasons
    assert _stage(first, "evaluate-baseline")["cache_hit"] is False
    assert _stage(first, "registry")["status"] == "ok"
    assert _stage(first, "mlflow")["status"] == "ok"
    assert SharedBaselines(pg_url).count() == 4  # two task metrics, the fidelity reference, performance

    import gate.quantize as quantize

    loaded: list[Path] = []
    real_load = quantize.load_for_eval

    def spy(path: Path, device: str = "cpu"):  # type: ignore[no-untyped-def]
        loaded.append(Path(path))
        return real_load(path, device)

    monkeypatch.setattr(quantize, "load_for_eval", spy)
    down = f"http://127.0.0.1:{pg.free_port()}"
    assert not second_cache.exists()
    second = _run(make_repo(checkout, trained_tiny_llama_dir, INT8), checkout, second_cache, pg_url, down)
    assert second.verdict.decision is Decision.passed
    assert _stage(second, "evaluate-baseline")["cache_hit"] is True
    assert second.artifact is not None and loaded == [Path(second.artifact.path)]  # the baseline was never loaded
    assert [c.baseline for c in second.criteria] == [c.baseline for c in first.criteria]
    assert second.performance is not None and second.performance.baseline_cached is True
    assert second.exit_code == 0
    mlflow_stage = _stage(second, "mlflow")
    assert mlflow_stage["status"] == "failed"
    assert "The verdict is unaffected: a tracking outage does not fail the merge" in str(mlflow_stage["message"])
    assert [r.verdict for r in Registry(pg_url).list_runs()] == ["pass", "pass"]
    assert SharedBaselines(pg_url).count() == 4  # stored once, not again
