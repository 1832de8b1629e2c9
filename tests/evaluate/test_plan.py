"""The evaluation plan: stress defaults, item order, the up-front sample-size refusal."""

from __future__ import annotations

from pathlib import Path

from gate.evaluate.plan import build_plan, planned_metrics, sample_size_findings
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
    plan = build_plan(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    again = build_plan(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
    mc = plan.tasks["tiny_mc"]
    assert mc.n_total == 100 and len(set(mc.order)) == 100 and max(mc.order) < 300
    assert mc.order != tuple(range(100)) and mc.order == again.tasks["tiny_mc"].order
    assert plan.tasks["qg_reasoning"].n_total == 2000
    assert plan.confidence == 0.9 and plan.fidelity.texts_name == "qg_license_ppl"
    assert plan.targets.memory_gb == 16 and plan.performance.batch_sizes == (1,)


def test_undersized_metrics_become_blocking_findings(tmp_path: Path) -> None:
    quality = "quality:\n  metrics:\n    - {task: tiny_mc, metric: acc, max_drop: 1.0}\n"
    loaded = load_spec(_spec(tmp_path, quality))
    plan = build_plan(loaded, tmp_path, tmp_path / "inc", hardware_kind="cpu")
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
