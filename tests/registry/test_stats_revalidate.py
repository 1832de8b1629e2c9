from __future__ import annotations

from pathlib import Path

from gate.registry import Registry
from gate.registry.revalidate import find_candidates, revalidate
from gate.registry.stats import compute_stats, render_markdown
from gate.registry.store import run_row
from gate.result import Decision, GateResult
from tests.registry.factory import RUNTIME, make_result


def _insert(registry: Registry, result: GateResult, recorded_at: str) -> None:
    row = run_row(result)
    row["recorded_at"] = recorded_at
    registry.import_rows([row])


def _populated(location: str | Path) -> Registry:
    registry = Registry(location)
    _insert(registry, make_result("chat", Decision.failed, traffic_share=0.5), "2026-09-01T00:00:00Z")
    _insert(registry, make_result("chat", Decision.passed, traffic_share=0.5), "2026-09-03T00:00:00Z")
    _insert(registry, make_result("search", Decision.inconclusive, traffic_share=0.3), "2026-10-01T00:00:00Z")
    _insert(registry, make_result("summarize", Decision.passed, traffic_share=0.1), "2026-10-05T00:00:00Z")
    registry.add_incident("chat", "JSON output broke after rollout")
    return registry


def test_coverage_ranks_by_volume_and_counts_from_the_top(registry_url: str) -> None:
    stats = compute_stats(_populated(registry_url), {"embed": 0.05})
    rows = [(r.rank, r.model, r.validated, round(r.cumulative_validated_share, 3), round(r.cumulative_share, 3))
            for r in stats.coverage]
    assert rows == [
        (1, "chat", True, 0.5, 0.5),
        (2, "search", False, 0.5, 0.8),
        (3, "summarize", True, 0.6, 0.9),
        (4, "embed", False, 0.6, 0.95),
    ]
    assert round(stats.covered_share, 3) == 0.6


def test_time_to_quantize_and_trend(registry_url: str) -> None:
    stats = compute_stats(_populated(registry_url))
    ttq = {t.model: (t.attempts, t.hours_to_pass, t.pass_run_seconds) for t in stats.time_to_quantize}
    assert ttq == {"chat": (2, 48.0, 300.0), "search": (1, None, None), "summarize": (1, 0.0, 300.0)}
    assert stats.trend == [("2026-09", 48.0, 1), ("2026-10", 0.0, 1)]
    assert [i.note for i in stats.incidents["chat"]] == ["JSON output broke after rollout"]


def test_stats_markdown(tmp_path: Path) -> None:
    text = render_markdown(compute_stats(_populated(tmp_path / "r.db")))
    assert "Validated quantized models cover **60.0%** of inference volume (66.7% of the volume declared by 3 specs)." in text
    assert "| 1 | chat | 50.0% | pass | yes | 50.0% of 50.0% |" in text
    assert "| chat | 2026-09-01 | 2026-09-03 | 2 | 2.0 d | 300 s |" in text
    assert "| chat | 1 | JSON output broke after rollout |" in text


def test_revalidation_finds_models_whose_stack_changed_and_records_regressions(tmp_path: Path) -> None:
    registry = _populated(tmp_path / "r.db")
    current = {**RUNTIME, "torch": "2.14.1", "python": "3.11.9"}
    candidates = find_candidates(registry, current)
    assert [(c.run.model, [(ch.key, ch.before, ch.after) for ch in c.changes]) for c in candidates] == [
        ("chat", [("torch", "2.13.0", "2.14.1")]),
        ("summarize", [("torch", "2.13.0", "2.14.1")]),
    ]
    assert find_candidates(registry, {**RUNTIME, "python": "3.11.9"}) == []

    def rerun(run):  # type: ignore[no-untyped-def]
        decision = Decision.failed if run.model == "chat" else Decision.passed
        return make_result(run.model, decision, runtime=current)

    outcomes = revalidate(registry, candidates, rerun)
    assert [(o.model, o.decision, o.regressed) for o in outcomes] == [("chat", "fail", True), ("summarize", "pass", False)]
    assert registry.list_runs(model="chat", limit=1)[0].verdict == "fail"
    assert find_candidates(registry, current) == []


def test_model_history_takes_the_newest_share_the_first_pass_and_the_latest_verdict(registry_url: str) -> None:
    registry = Registry(registry_url)
    _insert(registry, make_result("m", Decision.failed, traffic_share=0.2), "2026-09-01T00:00:00Z")
    _insert(registry, make_result("m", Decision.passed, traffic_share=None, finished_at="2026-11-01T10:01:00Z"),
            "2026-09-02T00:00:00Z")
    _insert(registry, make_result("m", Decision.passed, traffic_share=None), "2026-09-03T00:00:00Z")
    _insert(registry, make_result("m", Decision.failed, traffic_share=0.4), "2026-09-04T00:00:00Z")
    _insert(registry, make_result("m", Decision.error, traffic_share=None), "2026-09-05T00:00:00Z")
    (history,) = registry.model_histories()
    assert (history.runs, history.first_run, history.latest_verdict, history.traffic_share) == (
        5, "2026-09-01T00:00:00Z", "error", 0.4)
    assert (history.first_pass, history.attempts, history.pass_duration_s) == ("2026-09-02T00:00:00Z", 2, 60.0)
