"""`gate run` end to end on a briefly trained tiny Llama: real quantization, real lm-eval, real files.

- a faithful quantization (int8) PASSES, and a second run reuses the cached baseline (the baseline
  model is never loaded again);
- a deliberately broken one (2-bit RTN) FAILS;
- an eval set too small for its tolerance is refused before any model is evaluated;
- a spec blocked by a static rule is never quantized.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.result import CriterionKind, Decision, GateResult
from tests.evaluate.repo import make_repo, spec_text


def _run(spec: Path, repo: Path, **kwargs: object) -> GateResult:
    from gate.pipeline import RunOptions, StaticOptions, run_gate
    from gate.policy.engine import load_policy_set

    options = RunOptions(repo_root=repo, cache_dir=repo / ".gate" / "cache", device="cpu", progress=False,
                         resamples=2000, **kwargs)  # type: ignore[arg-type]
    return run_gate(spec, options, load_policy_set(StaticOptions(repo_root=repo)))


def _stage(result: GateResult, name: str) -> dict[str, object]:
    return next(s.model_dump() for s in result.stages if s.stage == name)


INT8 = spec_text(bits=8).replace("  method: rtn\n", "  method: int8\n").replace(
    "  group_size: 32\n  format: rtn\n", "  group_size: -1\n  format: int8-weight-only\n").replace(
    "  sequential: false\n", "  sequential: true\n")


def test_int8_passes_and_second_run_reuses_cached_baseline(
    trained_tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    spec = make_repo(repo, trained_tiny_llama_dir, INT8)
    first = _run(spec, repo, registry_db=repo / ".gate" / "registry.db")

    assert first.verdict.decision is Decision.passed, first.verdict.reasons
    assert first.exit_code == 0
    metrics = [c for c in first.criteria if c.kind is CriterionKind.metric]
    assert [m.outcome for m in metrics] == [Decision.passed, Decision.passed]
    acc, ppl = metrics
    # Sequential: the first look (25% of the items) already decides; the baseline scored them all.
    assert (acc.task, acc.metric, acc.n, acc.n_total) == ("tiny_mc", "acc", 75, 300)
    assert "sequential look 1/4" in acc.method
    assert (ppl.task, ppl.metric, ppl.n_total) == ("tiny_ppl", "word_perplexity", 60)
    assert ppl.n in (15, 30, 45, 60)  # the look that decided (seeded, so the same every run)
    assert acc.baseline > 0.6  # the trained model carries signal: chance is 0.5
    kl, flips = (c for c in first.criteria if c.kind is CriterionKind.fidelity)
    assert (kl.name, kl.outcome, flips.outcome) == ("fidelity/kl", Decision.passed, Decision.passed)
    assert first.fidelity is not None and first.fidelity.tokens == 1024 == kl.n
    memory = next(c for c in first.criteria if c.kind is CriterionKind.memory)
    assert (memory.name, memory.outcome) == ("memory.peak_gb", Decision.passed)
    assert memory.limit is not None and memory.measured_as == "rss"
    assert first.artifact is not None and first.artifact.method == "int8"
    assert first.artifact.backend == "gate.quantize.int8:Int8Backend"
    assert {f.path for f in first.artifact.files} >= {"config.json", "model.safetensors"}
    assert first.artifact.quantization_config is not None
    assert _stage(first, "evaluate-baseline")["cache_hit"] is False
    assert _stage(first, "registry")["status"] == "ok"
    assert first.runtime.libraries["lm_eval"] == "0.4.13"
    assert first.runtime.hardware is not None and first.runtime.hardware.device == "cpu"

    # Second run: only the quantized model may be loaded.
    import gate.quantize as quantize

    loaded: list[Path] = []
    real_load = quantize.load_for_eval

    def spy(path: Path, device: str = "cpu"):  # type: ignore[no-untyped-def]
        loaded.append(Path(path))
        return real_load(path, device)

    monkeypatch.setattr(quantize, "load_for_eval", spy)
    second = _run(spec, repo)
    assert second.verdict.decision is Decision.passed
    assert _stage(second, "evaluate-baseline")["cache_hit"] is True
    assert _stage(second, "quantize")["cache_hit"] is True
    assert second.artifact is not None and loaded == [Path(second.artifact.path)]
    assert [c.baseline for c in second.criteria] == [c.baseline for c in first.criteria]
    assert second.performance is not None and second.performance.baseline_cached is True
    json.dumps(second.model_dump(mode="json"))  # the contract is plain JSON (no NaN/inf objects)


def test_two_bit_rtn_fails(trained_tiny_llama_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    spec = make_repo(repo, trained_tiny_llama_dir, spec_text(bits=2))
    result = _run(spec, repo)
    assert result.verdict.decision is Decision.failed
    assert result.exit_code == 1
    by_metric = {c.metric: c for c in result.criteria if c.kind is CriterionKind.metric}
    assert by_metric["word_perplexity"].outcome is Decision.failed
    assert (by_metric["word_perplexity"].ci_low or 0) > 0.2
    assert any(r.startswith("tiny_ppl/word_perplexity: relative increase") and r.endswith("→ FAIL")
               for r in result.verdict.reasons)
    # Measured here: KL 0.32, 95% CI [0.29, 0.35] around max_kl 0.3, so fidelity alone cannot decide
    # (non-inferiority, as for metrics) and the failed metric decides the verdict. Judged from the
    # bounds so the test does not hang on the third decimal of the tiny model's training.
    kl = next(c for c in result.criteria if c.name == "fidelity/kl")
    assert kl.ci_low is not None and kl.ci_high is not None and kl.ci_high > 0.3
    if kl.ci_low > 0.3:
        assert kl.outcome is Decision.failed
        tail = "exceeds max_kl 0.3 → FAIL"
    else:
        assert kl.outcome is Decision.inconclusive
        tail = "straddles max_kl 0.3 → INCONCLUSIVE (more fidelity tokens narrow it)"
    assert any(r.startswith("fidelity: KL ") and r.endswith(tail) for r in result.verdict.reasons)


def test_undersized_eval_set_is_refused_before_any_model_runs(
    trained_tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gate.cli import main

    repo = tmp_path / "repo"
    quality = (
        "quality:\n"
        "  confidence: 0.95\n"
        "  metrics:\n"
        "    - {task: tiny_mc, metric: acc, max_drop: 2.0, limit: 100}\n"
    )
    spec = make_repo(repo, trained_tiny_llama_dir, spec_text(quality=quality))
    out = tmp_path / "result.json"
    code = main(["run", str(spec), "--repo-root", str(repo), "--format", "json", "--out", str(out), "--no-registry"])
    assert code == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    result = GateResult.model_validate(printed)
    assert result.command == "run" and result.verdict.decision is Decision.inconclusive and result.exit_code == 1
    [finding] = [f for f in result.findings if f.rule_id == "QG490"]
    assert finding.message == (
        "eval set too small: tiny_mc/acc: 100 items can never PASS a 2-point tolerance at 95% confidence "
        "(even if every item agrees); needs at least 151 items"
    )
    assert finding.hint == "use a task with at least 151 items (or raise `limit`), or widen the tolerance; no model was evaluated"
    assert str(finding.location).endswith("tiny.yaml:26:7")
    assert result.verdict.reasons == [
        f"QG490 {finding.message}",
        "inconclusive blocks by default (fail-closed): evaluate more items, or a policy may set inconclusive: allow",
    ]
    assert {s.stage: s.status for s in result.stages}["quantize"] == "skipped"
    assert "evaluate-baseline" not in {s.stage for s in result.stages}
    cache = repo / ".gate" / "cache"  # nothing converted, quantized or evaluated: only gate check's power numbers
    assert sorted(p.name for p in cache.iterdir()) == ["check-power"]


def test_static_block_stops_before_quantization(trained_tiny_llama_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    spec = make_repo(repo, trained_tiny_llama_dir, spec_text(bits=8).replace("max_drop: 10.0", "max_drop: 40.0"))
    result = _run(spec, repo)
    assert result.verdict.decision is Decision.failed
    assert any(f.rule_id == "QG403" and f.blocking for f in result.findings)
    statuses = {s.stage: s.status for s in result.stages}
    assert statuses["quantize"] == "skipped" and statuses["evaluate-quantized"] == "skipped"
    assert result.criteria == [] and result.artifact is None
