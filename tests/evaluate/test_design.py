"""The evaluation design: stress defaults, item order, the up-front sample-size refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.evaluate.design import build_design, planned_metrics, sample_size_findings
from gate.spec.loader import load_spec
from tests.evaluate.repo import spec_text, write_tasks

QUALITY = (
    "quality:\n"
    "  confidence: 0.9\n"
    "  metrics:\n"
    "    - {task: tiny_mc, metric: acc, max_drop: 10.0, limit: 100}\n"
    "    - {task: qg_reasoning, metric: acc, max_drop: 3.0}\n"
    "  stress: [reasoning, instructions]\n"
)


def _spec(tmp_path: Path, quality: str = QUALITY) -> Path:
    write_tasks(tmp_path, mc_items_n=300, ppl_docs=5)
    path = tmp_path / "tiny.yaml"
    path.write_text(spec_text(quality=quality).replace("{CAL_SHA}", "0" * 64))
    return path


def test_stress_suites_without_an_entry_get_the_default_tolerance(tmp_path: Path) -> None:
    metrics = planned_metrics(load_spec(_spec(tmp_path)))
    assert [(m.tolerance.task, m.tolerance.tolerance, m.default_tolerance) for m in metrics] == [
        ("tiny_mc", 10.0, False), ("qg_reasoning", 3.0, False), ("qg_instructions", 5.0, True),
    ]


def test_limit_takes_a_seeded_random_subset(tmp_path: Path) -> None:
    loaded = load_spec(_spec(tmp_path))
    plan = build_design(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    again = build_design(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    mc = plan.tasks["tiny_mc"]
    assert mc.n_total == 100 and len(set(mc.order)) == 100 and max(mc.order) < 300
    assert mc.order != tuple(range(100)) and mc.order == again.tasks["tiny_mc"].order
    assert plan.tasks["qg_reasoning"].n_total == 2000
    assert plan.confidence == 0.9 and plan.fidelity.texts_name == "qg_license_ppl"
    assert plan.targets.memory_gb == 16 and plan.performance.batch_sizes == (1,)


def test_undersized_metrics_become_blocking_findings(tmp_path: Path) -> None:
    quality = "quality:\n  metrics:\n    - {task: tiny_mc, metric: acc, max_drop: 1.0}\n"
    loaded = load_spec(_spec(tmp_path, quality))
    plan = build_design(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    [finding] = sample_size_findings(plan)
    assert finding.blocking and finding.rule_id == "QG490" and finding.stage == "evaluate"
    # 1 point at 95% (bounds at 96%): a look where all items agree excludes 1 point from 304 items.
    assert finding.message == (
        "eval set too small: tiny_mc/acc: 300 items can never PASS a 1-point tolerance at 95% confidence "
        "(even if every item agrees); needs at least 304 items"
    )
    assert finding.hint == (
        "use a task with at least 304 items (or raise `limit`), or widen the tolerance; no model was evaluated"
    )
    # The policy decides whether the refusal (an INCONCLUSIVE verdict) blocks.
    [allowed] = sample_size_findings(plan, inconclusive="allow")
    assert not allowed.blocking and allowed.message == finding.message
    assert str(finding.location).endswith("tiny.yaml:25:7")


def test_check_power_per_criterion_and_for_the_spec(tmp_path: Path) -> None:
    """`gate check`'s power: the chance an unchanged model PASSES each criterion at its declared size,
    and the spec's (every criterion must PASS), worded for the report."""
    from gate.evaluate.design import check_power
    from gate.verdict.sample_size import describe_power

    power = check_power(load_spec(_spec(tmp_path)), tmp_path)
    assert [(c.criterion, c.n, c.smallest_look) for c in power.criteria] == [
        ("tiny_mc/acc", 100, 75), ("qg_reasoning/acc", 2000, 500), ("qg_instructions/acc", 2000, 500)]
    assert power.overall is not None
    known = [c.power for c in power.criteria if c.power is not None]
    assert abs(power.overall - known[0] * known[1] * known[2]) < 1e-12
    assert describe_power(power) == [
        "tiny_mc/acc: 100 items (first look 75): power 95% (assumed discordance 10%)",
        "qg_reasoning/acc: 2,000 items (first look 500): power >99% (assumed discordance 10%)",
        "qg_instructions/acc: 2,000 items (first look 500): power >99% (assumed discordance 10%)",
        "spec: power 95% (every criterion must PASS)",
    ]


def test_gate_check_reports_the_power(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gate.cli import main
    from gate.result import GateResult

    spec = _spec(tmp_path)
    main(["check", str(spec), "--repo-root", str(tmp_path), "--format", "json"])
    result = GateResult.model_validate_json(capsys.readouterr().out)
    assert result.power is not None and result.power.overall is not None
    assert [c.criterion for c in result.power.criteria] == ["tiny_mc/acc", "qg_reasoning/acc", "qg_instructions/acc"]
    main(["check", str(spec), "--repo-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "chance to PASS an unchanged model at the declared sizes:\n" in out
    assert "  spec: power 95% (every criterion must PASS)\n" in out
