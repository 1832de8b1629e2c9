"""The result contract (schema 2): every section typed, and schema 1 results still read and render.

The schema 1 files under ``tests/report/data/v1/`` were written by the gate before the typed
contract existed (commit 72dc11e): a ``gate check --format json`` of ``models/smollm2-135m.yaml``,
a real ``gate run`` of a 2-bit RTN quantization of the tiny Llama, and the report samples.
"""
# ruff: noqa: RUF001  (exact report text: real minus signs and times signs are the point)

from __future__ import annotations

import json
import typing
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, JsonValue

from gate.cli import main
from gate.report import ReportFormat, render
from gate.report.interface import ReportContext
from gate.report.load import load_result_file
from gate.result import RESULT_SCHEMA_VERSION, CriterionKind, Decision, GateResult, LimitForm, RuntimeInfo
from tests.report.test_golden import CONTEXT, GOLDEN

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "report" / "data" / "v1"
SCHEMA = json.loads((ROOT / "schema" / "result.schema.json").read_text(encoding="utf-8"))


# ---- no dict[str, Any] anywhere in the result models ---------------------------------------------


def untyped_fields(model: type[BaseModel]) -> list[str]:
    """``Model.field`` for every field (in ``model`` and the models it holds) whose type contains ``Any``
    or a bare ``dict``/``list``/``object``; ``JsonValue`` (a recursive union of JSON types) is typed."""
    found: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk_type(annotation: object, where: str) -> None:
        if annotation is JsonValue:
            return
        if annotation is typing.Any or annotation is object or annotation in (dict, list, tuple, set):
            found.append(where)
            return
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            walk_model(annotation)
            return
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            walk_type(typing.get_args(annotation)[0], where)
            return
        for arg in typing.get_args(annotation):
            if arg is not type(None) and arg is not Ellipsis:
                walk_type(arg, where)
        if origin in (dict, list, tuple, set) and not typing.get_args(annotation):
            found.append(where)

    def walk_model(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, field in m.model_fields.items():
            walk_type(field.annotation, f"{m.__name__}.{name}")

    walk_model(model)
    return found


def test_no_untyped_field_in_the_result_models() -> None:
    assert untyped_fields(GateResult) == []


def test_the_walker_finds_an_untyped_field_however_deep() -> None:
    class Leaf(BaseModel):
        detail: dict[str, typing.Any]

    class Branch(BaseModel):
        leaves: list[Leaf] | None = None
        anything: object = None
        fine: dict[str, JsonValue] = {}

    assert sorted(untyped_fields(Branch)) == ["Branch.anything", "Leaf.detail"]


def test_contract_version_and_its_published_schema() -> None:
    assert RESULT_SCHEMA_VERSION == "2.0"
    assert SCHEMA["title"] == "quant-gate result (schema_version 2.0)"
    criterion = SCHEMA["$defs"]["Criterion"]["properties"]
    assert {"kind", "name", "baseline", "candidate", "change", "ci_low", "ci_high", "limit", "outcome", "note",
            "n", "look"} <= set(criterion)
    assert SCHEMA["$defs"]["GateResult"]["properties"]["runtime"]["$ref"] == "#/$defs/RuntimeInfo"
    assert "metrics" not in SCHEMA["$defs"]["GateResult"]["properties"]  # one list: `criteria`


# ---- schema 1 results read, upgrade and render ----------------------------------------------------


def test_a_v1_run_reads_as_one_list_of_criteria() -> None:
    (r,) = load_result_file(V1 / "run-rtn2-fail.json")
    raw = json.loads((V1 / "run-rtn2-fail.json").read_text(encoding="utf-8"))
    assert raw["schema_version"] == "1.0" and r.schema_version == "2.0"
    assert [(c.kind, c.name) for c in r.criteria] == [
        (CriterionKind.metric, "tiny_mc/acc"), (CriterionKind.metric, "tiny_ppl/word_perplexity"),
        (CriterionKind.fidelity, "fidelity/kl"), (CriterionKind.fidelity, "fidelity/flip_rate"),
        (CriterionKind.memory, "memory.peak_gb"), (CriterionKind.throughput, "throughput@batch1")]
    ppl = r.criteria[1]
    v1 = raw["metrics"][1]
    assert (ppl.baseline, ppl.candidate, ppl.change, ppl.ci_low, ppl.ci_high) == (
        v1["baseline"], v1["quantized"], v1["difference"], v1["ci_low"], v1["ci_high"])
    assert ppl.limit is not None and (ppl.limit.form, ppl.limit.value) == (LimitForm(v1["tolerance_form"]), v1["tolerance"])
    assert ppl.limit.form is LimitForm.max_relative_increase
    assert ppl.outcome is Decision.failed
    kl = r.criteria[2]
    assert (kl.candidate, kl.ci_high, kl.limit and kl.limit.value, kl.n) == (
        raw["fidelity"]["kl_mean"], raw["fidelity"]["kl_ci_high"], raw["fidelity"]["max_kl"], raw["fidelity"]["tokens"])
    memory = r.criteria[4]
    assert memory.candidate == raw["performance"]["quantized"]["peak_memory_bytes"] / 1e9
    assert r.artifact is not None and r.artifact.sha256 == raw["artifact"]["artifact_sha256"]
    assert r.artifact.parameters == raw["artifact"]["params"] and r.artifact.files == []
    assert r.artifact.calibration is not None and r.artifact.calibration.sha256 == raw["artifact"]["calibration"]["sha256"]
    assert r.runtime.libraries["torch"] == raw["runtime"]["torch"]
    assert r.runtime.hardware is not None and r.runtime.hardware.device == "cpu"
    assert r.runtime.flat() == raw["runtime"]  # the registry's runtime_json keeps schema 1's flat shape
    assert r.weights is not None and r.weights.model_dump(mode="json") == raw["weights"]


def test_a_v1_check_keeps_its_weight_scan_and_memory_plan() -> None:
    (r,) = load_result_file(V1 / "check-smollm2.json")
    raw = json.loads((V1 / "check-smollm2.json").read_text(encoding="utf-8"))
    assert r.criteria == [] and r.verdict.decision is Decision.passed
    assert r.weights is not None and r.weights.model_dump(mode="json") == raw["weights"]
    assert r.plan is not None and r.plan.model_dump(mode="json") == raw["plan"]
    assert r.runtime == RuntimeInfo()


def test_v1_samples_render_exactly_the_v2_comment() -> None:
    """The same results written by schema 1 render the committed golden comment (which v2 renders
    from typed sections), except the backend row v1 artifacts did not record."""
    results = load_result_file(V1 / "samples.json")
    expected = (GOLDEN / "report.md").read_text(encoding="utf-8").replace(
        "| backend | `gate.quantize.awq:AwqBackend` |\n", "")
    assert render(results, ReportFormat.markdown, CONTEXT) == expected
    assert render(results, ReportFormat.terminal, CONTEXT) == (GOLDEN / "terminal.txt").read_text(encoding="utf-8")
    assert render(results, ReportFormat.junit, CONTEXT) == (GOLDEN / "junit.xml").read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", list(ReportFormat))
def test_every_format_renders_a_v1_run(fmt: ReportFormat) -> None:
    results = load_result_file(V1 / "run-rtn2-fail.json")
    text = render(results, fmt, ReportContext(width=120))
    assert text
    if fmt is ReportFormat.markdown:
        assert "| tiny_ppl word_perplexity (n=" in text and "| KL divergence (1,024 tokens) |" in text
    if fmt is ReportFormat.json:  # written back as a v2 document the published schema accepts
        validator = jsonschema.Draft202012Validator(SCHEMA)
        assert list(validator.iter_errors(json.loads(text))) == []


def test_gate_report_renders_a_v1_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(V1 / "run-rtn2-fail.json"), "--format", "markdown"]) == 0  # rendering only
    out = capsys.readouterr().out
    assert out.splitlines()[1] == ("## ❌ quant-gate: FAIL — tiny_ppl word_perplexity increased 206.9% "
                                   "(95% CI +188.5% to +227.1%), over its 20% limit")
    assert "result schema 2.0" in out


# ---- performance constraints become criteria of the same shape ----------------------------------


def test_constraint_checks_become_criteria_and_rows() -> None:
    from gate.evaluate.interface import ConstraintCheck
    from gate.result_build import performance_criteria
    from tests.report.samples import failed_run, performance

    perf = performance(
        constraint="cost", base_memory=2_500_000_000, quant_memory=810_000_000, base_tps=(40.0, 131.0),
        quant_tps=(52.0, 170.3), checks=[
            ConstraintCheck(name="memory.peak_gb", target=20.0, measured=0.81, passed=None,
                            note="measured on cpu; the target is a gpu"),
            ConstraintCheck(name="throughput.tokens_per_s@batch1", target=50.0, measured=52.0, passed=True),
            ConstraintCheck(name="throughput.speedup@batch1", target=1.2, measured=1.3, passed=True),
            ConstraintCheck(name="cost.usd_per_million_tokens", target=2.0, measured=2.5, passed=False),
        ])
    criteria = performance_criteria(perf)
    assert [(c.kind, c.name, c.limit and (c.limit.form, c.limit.value), c.outcome) for c in criteria] == [
        (CriterionKind.memory, "memory.peak_gb", (LimitForm.max, 20.0), None),
        (CriterionKind.throughput, "throughput.tokens_per_s@batch1", (LimitForm.min, 50.0), Decision.passed),
        (CriterionKind.throughput, "throughput.speedup@batch1", (LimitForm.min_ratio, 1.2), Decision.passed),
        (CriterionKind.throughput, "throughput@batch4", None, None),
        (CriterionKind.cost, "cost.usd_per_million_tokens", (LimitForm.max, 2.0), Decision.failed),
    ]
    assert (criteria[1].baseline, criteria[1].candidate, criteria[1].batch) == (40.0, 52.0, 1)
    assert criteria[2].change == pytest.approx(1.3)

    r = failed_run().model_copy(update={"criteria": criteria,
                                        "verdict": failed_run().verdict.model_copy(update={"reasons": []})})
    rows = render([r], ReportFormat.markdown).splitlines()
    table = [line for line in rows if line.startswith("| peak memory") or line.startswith("| throughput")
             or line.startswith("| cost")]
    assert table == [
        "| peak memory (GPU) | 2.50&nbsp;GB | 0.81&nbsp;GB | −68% (0.32×) | ≤ 20 GB | ➖ not judged<br><sub>measured on "
        "cpu; the target is a gpu</sub> |",
        "| throughput, batch 1 | 40.0&nbsp;tok/s | 52.0&nbsp;tok/s | +30% (1.30×) | ≥ 50 tok/s and ≥ 1.2× baseline "
        "| ✅ pass |",
        "| throughput, batch 4 | 131.0&nbsp;tok/s | 170.3&nbsp;tok/s | +30% (1.30×) | — | — |",
        "| cost per million tokens | — | $2.50 | — | ≤ $2.00 | ❌ fail |",
    ]
    junit = render([r], ReportFormat.junit)
    assert ('<testcase classname="models/support.yaml" name="criterion speed-up, batch 1" time="0.000">'
            in junit)
    assert '<failure type="limit-exceeded" message="cost per million tokens: limit exceeded">' in junit
