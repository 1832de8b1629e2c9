"""Behaviour of each format beyond the goldens: limits, escaping, schema validity, counts."""
# ruff: noqa: RUF001  (exact report text: real minus signs, times signs and U+2223 are the point)

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from gate.pipeline import worst_exit_code
from gate.report import ReportContext, ReportFormat, github, markdown, render
from gate.report.summary import num
from gate.result import Decision, Finding, GateResult, Location, Severity
from tests.report.samples import error_check, failed_run, passed_check

DATA = Path(__file__).parent / "data"


def many_findings(n_errors: int, n_warnings: int) -> list[Finding]:
    out = [Finding(rule_id="QG601", slug="plan.memory-fits", severity=Severity.deny, message=f"error {i}",
                   location=Location(path="models/support.yaml", line=i + 1, col=1)) for i in range(n_errors)]
    out += [Finding(rule_id="QG304", slug="calibration.fresh", severity=Severity.warn, message=f"warning {i}",
                    location=Location(path="models/support.yaml", line=100 + i, col=3)) for i in range(n_warnings)]
    return out


# ---- markdown ---------------------------------------------------------------------------------


def test_markdown_starts_with_the_sticky_marker_and_the_deciding_reason() -> None:
    text = render([failed_run()], ReportFormat.markdown)
    assert text.splitlines()[:2] == [
        "<!-- quant-gate:report -->",
        "## ❌ quant-gate: FAIL — support_qa acc dropped 2.4 pts (95% CI −3.7 to −1.1), over its 1 pt limit",
    ]


def test_markdown_without_context_shows_plain_locations() -> None:
    text = render([failed_run()], ReportFormat.markdown)
    assert "`models/support.yaml:29:12`" in text
    assert "https://" not in text


def test_markdown_escapes_table_cells_without_backslashes() -> None:
    r = failed_run()
    bad = Finding(rule_id="X1", slug="custom.x", severity=Severity.warn, message="a | b\nc <script>")
    text = render([r.model_copy(update={"findings": [bad]})], ReportFormat.markdown)
    assert "| a &#124; b c &lt;script&gt; |" in text
    assert "\\|" not in text


def test_markdown_no_specs() -> None:
    text = render([], ReportFormat.markdown)
    assert text == (
        "<!-- quant-gate:report -->\n## ✅ quant-gate: PASS — no spec changed in this pull request: nothing to gate\n\n"
        "No spec changed in this pull request: nothing to gate.\n\n"
        "<sub>quant-gate 0.1.0 · result schema 2.0</sub>\n"
    )


def test_markdown_truncates_to_the_limit_with_a_pointer() -> None:
    ctx = ReportContext(details_url="https://github.com/acme/models/actions/runs/42")
    results = [failed_run().model_copy(update={"spec": failed_run().spec.model_copy(update={
        "path": f"models/m{i:03}.yaml", "name": f"m{i:03}"})}) for i in range(60)]
    full = markdown.render(results, ctx, limit=10_000_000)
    assert len(full.encode()) > 65_536
    text = markdown.render(results, ctx)
    assert len(text.encode()) <= markdown.COMMENT_LIMIT
    assert text.startswith(markdown.MARKER)
    assert "<details>" not in text
    assert "spec sections and the details were left out; the full report is in the " \
           "[workflow run](https://github.com/acme/models/actions/runs/42)." in text
    # the overview table still lists every spec
    assert all(f"models/m{i:03}.yaml" in text for i in range(60))


def test_markdown_drops_only_details_when_that_is_enough() -> None:
    full = markdown.render([failed_run()], limit=10_000_000)
    text = markdown.render([failed_run()], limit=len(full.encode()) - 100)
    assert "<details>" not in text
    assert "### ❌ support-assistant" in text
    assert "> ✂️ This report was truncated to fit GitHub's size limit: details were left out; run " \
           "`gate report --format markdown` on the uploaded results for the full report." in text


def test_markdown_has_one_criteria_table_with_a_gauge_per_interval() -> None:
    text = render([failed_run()], ReportFormat.markdown)
    tables = [line for line in text.splitlines() if line.startswith("| Criterion ")]
    assert tables == ["| Criterion | Baseline | Candidate | Change | Limit | Outcome | Interval vs limit |"]
    assert ("| support_qa acc (n=400) | 73.25% | 70.85% | −2.4 pts (95% CI −3.7 to −1.1) | drop ≤ 1 pt | ❌ fail "
            "| `···┃────●────` |") in text
    assert "| KL divergence (2,048 tokens) | — | 0.0213&nbsp;nats | 95% CI 0.0190 to 0.0236 nats | ≤ 0.05 nats " \
           "| ✅ pass | `···●─···┃····` |" in text
    assert "| peak memory (GPU) | 2.50&nbsp;GB | 0.81&nbsp;GB | −68% (0.32×) | ≤ 20 GB | ✅ pass |  |" in text
    assert "```mermaid" not in text


# ---- github -------------------------------------------------------------------------------------


def test_annotations_cap_ten_per_level_most_severe_first() -> None:
    r = failed_run().model_copy(update={"findings": many_findings(14, 12), "criteria": []})
    lines = github.render([r]).splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 10 and len(warnings) == 10
    assert errors[0].endswith("::error 0")
    assert lines[-1] == (
        "quant-gate: 4 errors, 2 warnings not shown as annotations (GitHub shows 10 per level); "
        "every finding is listed in the report below."
    )
    summary = github.step_summary([r])
    assert "> 4 errors, 2 warnings not shown as annotations" in summary


def test_annotation_escaping() -> None:
    f = Finding(rule_id="C1", slug="custom.odd", severity=Severity.deny, message="50% off\r\nnext",
                location=Location(path="models/a,b:c.yaml", line=2, col=1))
    r = passed_check().model_copy(update={"findings": [f]})
    first = github.render([r]).splitlines()[0]
    assert first == "::error file=models/a%2Cb%3Ac.yaml,line=2,col=1,title=C1 custom.odd::50%25 off%0Anext"


def test_step_summary_stays_under_one_mebibyte() -> None:
    results = [failed_run().model_copy(update={"spec": failed_run().spec.model_copy(update={
        "path": f"models/m{i:04}.yaml"})}) for i in range(400)]
    summary = github.step_summary(results)
    assert len(summary.encode()) <= github.STEP_SUMMARY_LIMIT < 1 << 20


# ---- sarif --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def test_sarif_validates_against_the_official_schema(sarif_validator: jsonschema.Draft4Validator) -> None:
    for results in ([failed_run(), passed_check(), error_check()], [passed_check()], []):
        doc = json.loads(render(results, ReportFormat.sarif))
        errors = [e.message for e in sarif_validator.iter_errors(doc)]
        assert errors == []


def test_the_sarif_schema_check_can_fail(sarif_validator: jsonschema.Draft4Validator) -> None:
    doc = json.loads(render([failed_run()], ReportFormat.sarif))
    doc["runs"][0]["results"][0]["level"] = "fatal"
    assert [e.message for e in sarif_validator.iter_errors(doc)] == [
        "'fatal' is not one of ['none', 'note', 'warning', 'error']"
    ]


def test_sarif_content() -> None:
    doc = json.loads(render([failed_run()], ReportFormat.sarif))
    run = doc["runs"][0]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["QG104", "QG205", "QG900", "QG301",
                                                                  "quant-gate/verdict"]
    assert by_rule["QG104"]["level"] == "error"
    assert by_rule["QG104"]["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "models/support.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 29, "startColumn": 12},
    }
    assert by_rule["QG205"]["level"] == "warning"
    assert by_rule["QG301"]["suppressions"][0]["justification"] == (
        "waived by team-platform until 2026-12-31: weights move to the registry next sprint"
    )
    assert by_rule["quant-gate/verdict"]["message"]["text"].startswith("FAIL: QG104 calibration.samples")


# ---- junit --------------------------------------------------------------------------------------


def test_junit_one_case_per_spec_and_check() -> None:
    root = ET.fromstring(render([failed_run(), passed_check(), error_check()], ReportFormat.junit))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["models/support.yaml", "models/tiny.yaml", "models/broken.yaml"]
    names = [c.get("name") for c in suites[0].findall("testcase")]
    assert names == ["stage spec", "stage quantize", "stage evaluate", "rule QG205 calibration.fresh",
                     "rule QG104 calibration.enough-samples", "rule QG301 weights.lockfile",
                     "rule QG900 info.baseline-q4", "metric support_qa acc",
                     "metric qg_wikitext_local word_perplexity", "criterion KL divergence",
                     "criterion top-1 flip rate", "criterion peak memory", "criterion throughput, batch 1",
                     "criterion throughput, batch 4", "verdict"]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("21", "4", "2")
    inconclusive = failed_run().criteria[0].model_copy(update={"outcome": Decision.inconclusive})
    r = failed_run().model_copy(update={"criteria": [inconclusive]})
    case = ET.fromstring(render([r], ReportFormat.junit)).find(".//testcase[@name='metric support_qa acc']")
    assert case is not None and case.find("failure").get("type") == "inconclusive"  # type: ignore[union-attr]


# ---- terminal -----------------------------------------------------------------------------------


def test_terminal_plain_and_colour() -> None:
    plain = render([failed_run(), passed_check()], ReportFormat.terminal)
    assert "models/support.yaml:29:12" in plain
    assert plain.endswith(
        "2 specs: 1 fail, 1 pass · 1 blocking finding, 1 warning, 1 notice, 1 waived\nquant-gate: FAIL\n"
    )
    assert "\x1b[" not in plain
    counted = render([passed_check().model_copy(update={"checks": 26}), failed_run().model_copy(update={"checks": 27})],
                     ReportFormat.terminal)
    assert "2 specs: 1 fail, 1 pass · 53 rule checks · 1 blocking finding" in counted
    colour = render([passed_check()], ReportFormat.terminal, ReportContext(color=True))
    assert "\x1b[1;32mquant-gate: PASS\x1b[0m" in colour


# ---- shared -------------------------------------------------------------------------------------


def test_overall_exit_code_is_the_most_severe() -> None:
    def overall(results: list[GateResult]) -> int:
        return worst_exit_code(r.exit_code for r in results)

    assert overall([]) == 0
    assert overall([passed_check(), failed_run()]) == 1
    assert overall([failed_run(), error_check()]) == 2
    assert overall([error_check().model_copy(update={"exit_code": 3}), error_check()]) == 3


@pytest.mark.parametrize(("value", "text"), [(0.73251, "0.7325"), (18.4234, "18.42"), (1234567.0, "1.235e+06"),
                                             (0.00001234, "1.234e-05"), (2.0, "2"), (None, "—"), (7, "7")])
def test_num(value: object, text: str) -> None:
    assert num(value) == text
