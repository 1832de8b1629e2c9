"""Markdown report for the pull-request comment and the step summary, written for a reviewer.

Line 1 is a hidden marker (the workflow updates the one comment carrying it, by the gate's bot
account); line 2, the heading, says the decision and the deciding reason in words. Then, per
spec: the reason, plain warnings (a constraint the quantization defeats), ONE table of every
criterion (task metrics, fidelity limits, performance and memory constraints) with baseline,
candidate, change with its confidence interval, limit and outcome, a one-line gauge per interval
against its limit, and the rest — findings, measurements, provenance, runtime, timings — folded
under ``<details>``. Every string that comes from the pull request is escaped (``safe``): no
mentions, links, images or HTML from a spec reach the comment. Output stays under ``limit``
bytes: details go first, then whole spec sections, replaced by a pointer to the full report.
"""

from __future__ import annotations

from urllib.parse import quote

from gate import __version__
from gate.report.criteria import Gauge, Row, constraint_warnings, criteria, deciding_reason, fixed, sig
from gate.report.interface import ReportContext
from gate.report.safe import code_span, markdown_text, one_line
from gate.report.summary import (
    DECISION_LABEL,
    Level,
    configuration_log,
    level_of,
    overall_decision,
    plural,
    ranked_findings,
    summary_line,
    waiver_text,
)
from gate.result import RESULT_SCHEMA_VERSION, CriterionKind, Decision, Finding, GateResult
from gate.serve.interface import LOCATION_KEYS

MARKER = "<!-- quant-gate:report -->"
"""Hidden first line of every comment: the workflow finds and updates the comment carrying it."""

COMMENT_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; keep a margin (measured in UTF-8 bytes)."""

ICON = {Decision.passed: "✅", Decision.failed: "❌", Decision.inconclusive: "⚠️", Decision.error: "💥"}
LEVEL_ICON = {Level.error: "🛑 error", Level.warning: "⚠️ warning", Level.notice: "💬 notice"}
OUTCOME = {Decision.passed: "✅ pass", Decision.failed: "❌ fail", Decision.inconclusive: "⚠️ inconclusive",
           Decision.error: "💥 error"}
NOT_JUDGED = "\u2796 not judged"
"""A criterion with a limit that could not be judged here (e.g. measured on CPU for a GPU target)."""


def cell(text: object) -> str:
    """Untrusted text, safe inside a table cell or a sentence (see ``safe.markdown_text``)."""
    return markdown_text(text)


def code(text: object) -> str:
    return code_span(text)


def link(label: str, url: str | None) -> str:
    return f"[{label}]({url})" if url else label


def _url(context: ReportContext, path: str, line: int | None = None) -> str | None:
    target = context.link(quote(path, safe="/._-~"), line)
    return target


def where(finding: Finding, context: ReportContext) -> str:
    loc = finding.location
    if loc is None:
        return "—"
    return link(code(loc), _url(context, loc.path, loc.line))


def spec_label(result: GateResult) -> str:
    return cell(result.spec.name) if result.spec.name else code(result.spec.path)


def spec_title(result: GateResult, context: ReportContext) -> str:
    path = link(code(result.spec.path), _url(context, result.spec.path))
    return f"**{cell(result.spec.name)}** {path}" if result.spec.name else path


# ---- the decision ------------------------------------------------------------------------------


def deciding(results: list[GateResult]) -> GateResult | None:
    """The result that decides the overall verdict (the first with the most severe decision)."""
    decision = overall_decision(results)
    for r in results:
        if r.verdict.decision is decision:
            return r
    return None


def headline(results: list[GateResult], context: ReportContext) -> str:
    """``## ❌ quant-gate: FAIL — support-assistant: support_qa acc dropped 2.4 pts (...), over its 1 pt limit``."""
    decision = overall_decision(results)
    head = f"## {ICON[decision]} quant-gate: {DECISION_LABEL[decision]}"
    r = deciding(results)
    if r is None:
        if context.planned:
            return f"{head} — the plan selected {plural(context.planned, 'spec')} but no results were found"
        return f"{head} — no spec changed in this pull request: nothing to gate"
    reason = deciding_reason(r)
    who = f"{spec_label(r)}: " if len(results) > 1 and not reason.startswith(r.spec.path) else ""
    text = f"{head} — {who}{cell(reason)}"
    others = sum(1 for x in results if x is not r and x.verdict.decision is not Decision.passed)
    if decision is not Decision.passed and others:
        text += f" (and {plural(others, 'more spec')} not passing)"
    return text


def header(results: list[GateResult], context: ReportContext) -> list[str]:
    lines = [MARKER, headline(results, context), ""]
    if not results:
        lines.append(
            "No spec changed in this pull request: nothing to gate."
            if context.planned in (None, 0)
            else f"The plan selected {plural(context.planned or 0, 'spec')} but no results were found."
        )
    else:
        lines.append(summary_line(results))
    lines.extend(f"> {cell(note)}" for note in context.extra_notes)
    if context.deleted:
        lines += ["", "**Deleted specs** (not run; their models leave the gate with this change):"]
        for d in context.deleted:
            lines.append(f"- {code(d.path)}" + (f" → renamed to {code(d.renamed_to)}" if d.renamed_to else ""))
    return lines


def overview(results: list[GateResult], context: ReportContext) -> list[str]:
    """With several specs: one row each, the decision and its reason."""
    if len(results) < 2:
        return []
    lines = ["", "| Spec | Decision | Why |", "|---|---|---|"]
    for r in results:
        d = r.verdict.decision
        lines.append(f"| {spec_title(r, context)} | {ICON[d]} {DECISION_LABEL[d]} | {cell(deciding_reason(r))} |")
    return lines


# ---- one spec ------------------------------------------------------------------------------------


def spec_section(r: GateResult, context: ReportContext, *, details: bool) -> list[str]:
    d = r.verdict.decision
    quant = f"{r.spec.method} w{r.spec.bits}" if r.spec.method and r.spec.bits else r.spec.method
    facts = [f"`gate {r.command}`"] + ([cell(quant)] if quant else []) + (
        [f"owner {cell(r.spec.owner)}"] if r.spec.owner else [])
    lines = ["", f"### {ICON[d]} {cell(r.spec.name or r.spec.path)}: {DECISION_LABEL[d]}", "",
             f"{spec_title(r, context)} · {' · '.join(facts)}", "",
             f"**{'Decided by' if d is not Decision.passed else 'Passed'}:** {cell(deciding_reason(r))}"]
    for text in constraint_warnings(r):
        lines += ["", f"> ⚠️ **Constraint defeated:** {cell(text)}"]
    also = other_blocks(r)
    if also:
        lines += ["", "Also blocking:", *[f"- {cell(text)}" for text in also]]
    lines += criteria_table(r)
    if details:
        lines += details_blocks(r, context)
    return lines


def other_blocks(r: GateResult) -> list[str]:
    """Blocking reasons besides the deciding one (every block stays visible)."""
    if r.verdict.decision is Decision.passed:
        return []
    first = deciding_reason(r)
    out: list[str] = []
    for c in criteria(r):
        if c.outcome in (Decision.failed, Decision.inconclusive, Decision.error) and c.reason != first:
            out.append(c.reason)
    from gate.report.criteria import finding_sentence

    for f in r.findings:
        if f.blocking and finding_sentence(f) != first and one_line(f.message) not in first:
            out.append(finding_sentence(f))
    return out


GAUGE_WIDTH = 13


def gauge(g: Gauge) -> str:
    """``·····──●──···┃··``: the interval (─), the estimate (●) and the limit (┃); right is worse."""
    low = min(0.0, g.low)
    high = max(g.limit * 1.5, g.high)
    span = (high - low) or 1.0

    def at(x: float) -> int:
        return min(GAUGE_WIDTH - 1, max(0, round((x - low) / span * (GAUGE_WIDTH - 1))))

    chars = ["·"] * GAUGE_WIDTH
    for i in range(at(g.low), at(g.high) + 1):
        chars[i] = "─"
    chars[at(g.limit)] = "┃"
    chars[at(g.estimate)] = "●"
    return "".join(chars)


def outcome_text(c: Row) -> str:
    text = OUTCOME[c.outcome] if c.outcome is not None else (NOT_JUDGED if c.limit != "—" else "—")
    if c.note:
        text += f"<br><sub>{cell(c.note)}</sub>"
    return text


def _nowrap(value: str) -> str:
    """A number with its unit kept on one line (``40.0&nbsp;tok/s``)."""
    return cell(value).replace(" ", "&nbsp;")


def criteria_table(r: GateResult) -> list[str]:
    rows = criteria(r)
    if not rows:
        return []
    with_gauge = any(c.gauge for c in rows)
    head = "| Criterion | Baseline | Candidate | Change | Limit | Outcome |"
    rule = "|---|---:|---:|---|---|---|"
    if with_gauge:
        head = head[:-1] + "| Interval vs limit |"
        rule += ":---:|"
    lines = ["", head, rule]
    for c in rows:
        line = (f"| {cell(c.name)} | {_nowrap(c.baseline)} | {_nowrap(c.candidate)} | {cell(c.change)} "
                f"| {cell(c.limit)} | {outcome_text(c)} |")
        if with_gauge:
            line += f" {f'`{gauge(c.gauge)}`' if c.gauge else ''} |"
        lines.append(line)
    notes = []
    if with_gauge:
        notes.append("gauge: ● estimate, ─ confidence interval, ┃ limit; further right is worse")
    methods = sorted({c.method for c in r.criteria if c.kind is CriterionKind.metric and c.method})
    if methods:
        notes.append(f"statistics: {'; '.join(methods)}")
    if notes:
        lines += ["", f"<sub>{cell('. '.join(n[0].upper() + n[1:] for n in notes))}.</sub>"]
    return lines


# ---- details -------------------------------------------------------------------------------------


def findings_rows(r: GateResult, context: ReportContext) -> list[str]:
    lines = ["| Level | Rule | Where | Message |", "|---|---|---|---|"]
    for item in ranked_findings([r]):
        f = item.finding
        level = LEVEL_ICON[level_of(f)]
        tags = [t for t in ("audit" if f.mode == "audit" else "", "waived" if f.waived else "") if t]
        if tags:
            level += f" ({', '.join(tags)})"
        message = cell(f.message)
        if f.hint:
            message += f"<br>_Hint:_ {cell(f.hint)}"
        waiver = waiver_text(f, r)
        if waiver:
            message += f"<br>_{cell(waiver[0].upper() + waiver[1:])}_"
        lines.append(f"| {level} | {code(f.rule_id)} {cell(f.slug)} | {where(f, context)} | {message} |")
    return lines


def findings_summary(r: GateResult) -> str:
    levels = [level_of(f) for f in r.findings]
    waived = sum(1 for f in r.findings if f.waived)
    parts = [plural(levels.count(Level.error), "blocking"), plural(levels.count(Level.warning), "warning"),
             plural(levels.count(Level.notice) - waived, "notice")]
    if waived:
        parts.append(f"{waived} waived")
    return f"Findings ({', '.join(p for p in parts if not p.startswith('0 '))})"


def measurement_rows(r: GateResult) -> list[tuple[str, str]]:
    """Latency and sizes behind the performance rows."""
    from gate.report.criteria import gigabytes

    p = r.performance
    if p is None:
        return []
    b, q = p.baseline, p.candidate
    rows = [
        ("device, dtype", f"{b.device} {b.dtype}".strip() + " → " + f"{q.device} {q.dtype}".strip()),
        ("prompt, generated tokens", f"{b.prompt_tokens}, {b.decode_tokens} ({b.repeats} repeats after {b.warmup} warm-up)"),
        ("prefill, median", f"{sig(b.prefill_ms_p50, 3)} ms → {sig(q.prefill_ms_p50, 3)} ms"),
        ("prefill, 95th percentile", f"{sig(b.prefill_ms_p95, 3)} ms → {sig(q.prefill_ms_p95, 3)} ms"),
        ("decode per token, median", f"{sig(b.decode_ms_per_token_p50, 3)} ms → {sig(q.decode_ms_per_token_p50, 3)} ms"),
        ("decode per token, 95th percentile",
         f"{sig(b.decode_ms_per_token_p95, 3)} ms → {sig(q.decode_ms_per_token_p95, 3)} ms"),
        ("parameters in memory", f"{gigabytes(b.parameter_bytes)} → {gigabytes(q.parameter_bytes)}"),
        ("size on disk", f"{gigabytes(b.disk_bytes)} → {gigabytes(q.disk_bytes)}"),
    ]
    if p.baseline_cached:
        rows.append(("baseline figures", "from the baseline cache (same machine and stack)"))
    return rows


def power_rows(r: GateResult) -> list[tuple[str, str]]:
    """``gate check``'s power per criterion and for the whole spec (every criterion must PASS)."""
    return r.power.rows() if r.power is not None else []


def provenance_rows(r: GateResult) -> list[tuple[str, str]]:
    labels = {
        "path": "spec", "name": "name", "sha256": "spec sha256", "owner": "owner", "tier": "tier",
        "traffic_share": "traffic share", "method": "method", "bits": "bits", "group_size": "group size",
        "format": "format", "baseline": "baseline", "calibration_source": "calibration data",
        "calibration_sha256": "calibration sha256", "calibration_samples": "calibration samples",
        "calibration_max_seq_len": "calibration max sequence length",
    }
    rows = [(labels.get(k, k.replace("_", " ")), v) for k, v in configuration_log(r).items()]
    a = r.artifact
    if a is None:
        return rows
    rows += [("artifact sha256", a.sha256), ("artifact cache key", a.cache_key),
             ("baseline identity", a.baseline_identity),
             ("artifact from cache", "yes" if a.cache_hit else "no, quantized in this run")]
    if a.backend:
        rows.append(("backend", a.backend))
    if a.parameters:
        rows.append(("backend parameters", ", ".join(f"{k}={_param(v)}" for k, v in sorted(a.parameters.items()))))
    if a.versions:
        rows.append(("produced with", ", ".join(f"{k} {v}" for k, v in sorted(a.versions.items()))))
    if a.files:
        rows.append(("artifact files", f"{len(a.files)} files, {_size_text(sum(f.size for f in a.files))}"))
    return rows


def _size_text(n: int) -> str:
    from gate.report.criteria import gigabytes

    return gigabytes(n)


def _param(value: object) -> str:
    """A backend parameter as JSON writes it (``true``, ``null``, ``[1, 2]``): never Python's ``True``."""
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def runtime_rows(r: GateResult) -> list[tuple[str, str]]:
    """Library and hardware versions, then the serving runtime (name, version, what it reported)."""
    rt = r.runtime
    rows = [(k, v) for k, v in rt.flat().items() if k not in ("serving", "serving_version")]
    s = rt.serving
    if s is not None:
        rows.append(("serving runtime", f"{s.name} {s.version}" if s.version else s.name))
        if s.args:
            rows.append(("serving arguments", ", ".join(f"{k}={_param(v)}" for k, v in sorted(s.args.items()))))
        reported = [f"{label} {value}" for label, value in (("dtype", s.dtype), ("quantization", s.quantization)) if value]
        if reported:
            rows.append(("server reported", ", ".join(reported)))
        built = {k: v for k, v in s.detail.items() if k not in LOCATION_KEYS}
        if built:
            rows.append(("serving build", ", ".join(f"{k}: {v}" for k, v in sorted(built.items()))))
        if s.fallback is not None:
            rows.append(("serving fallback", s.fallback.message))
    return rows


def timing_rows(r: GateResult) -> list[tuple[str, str]]:
    rows = []
    for s in r.stages:
        seconds = "< 0.01" if s.seconds < 0.005 else (fixed(s.seconds, 2) if s.seconds < 10 else fixed(s.seconds, 0))
        text = f"{s.status}, {seconds} s"
        if s.cache_hit:
            text += " (cache hit)"
        if s.message:
            text += f": {s.message}"
        rows.append((s.stage, text))
    return rows


def details_blocks(r: GateResult, context: ReportContext) -> list[str]:
    lines: list[str] = []
    if r.findings:
        lines += ["", f"<details><summary>{findings_summary(r)}</summary>", "", *findings_rows(r, context),
                  "", "</details>"]
    blocks = [
        ("Speed and memory measurements (baseline → candidate)", measurement_rows(r)),
        ("Chance to PASS an unchanged model at the declared sizes", power_rows(r)),
        ("Provenance", provenance_rows(r)),
        ("Runtime", runtime_rows(r)),
        ("Timings", timing_rows(r)),
    ]
    for title, rows in blocks:
        if not rows:
            continue
        lines += ["", f"<details><summary>{title}</summary>", "", "| | |", "|---|---|"]
        lines += [f"| {cell(k)} | {_value(v)} |" for k, v in rows]
        lines += ["", "</details>"]
    if r.error:
        lines += ["", "<details><summary>Error</summary>", "", "```text",
                  *[line.replace("```", "'''") for line in _plain_lines(r.error)], "```", "", "</details>"]
    return lines


def _value(text: str) -> str:
    """Identifiers (hashes, ``hub@revision``, paths, versions) as inline code: copyable, shown literally."""
    identifier = text and " " not in text and (any(ch in text for ch in "/@._-:") or len(text) >= 16)
    return code(text) if identifier else cell(text)


def _plain_lines(text: str) -> list[str]:
    from gate.report.safe import plain

    return plain(text).split("\n")


def footer(context: ReportContext) -> list[str]:
    full = f" · [full report and artifacts]({context.details_url})" if context.details_url else ""
    return ["", f"<sub>quant-gate {__version__} · result schema {RESULT_SCHEMA_VERSION}{full}</sub>"]


def _size(lines: list[str]) -> int:
    return len("\n".join(lines).encode("utf-8")) + 1


def render(results: list[GateResult], context: ReportContext | None = None, *, limit: int = COMMENT_LIMIT) -> str:
    """The Markdown report, at most ``limit`` bytes (UTF-8)."""
    ctx = context or ReportContext()
    head = header(results, ctx) + overview(results, ctx)
    foot = footer(ctx)
    full = [line for r in results for line in spec_section(r, ctx, details=True)]
    if _size(head + full + foot) <= limit:
        return "\n".join(head + full + foot) + "\n"
    # Too long: drop the collapsible details, then whole sections (failing specs come first).
    ordered = sorted(results, key=lambda r: (r.verdict.decision is Decision.passed, r.spec.path))
    pointer = (
        f"the full report is in the [workflow run]({ctx.details_url})" if ctx.details_url
        else "run `gate report --format markdown` on the uploaded results for the full report"
    )
    body: list[str] = []
    shown = 0
    for r in ordered:
        section = spec_section(r, ctx, details=False)
        note = truncation_note(len(results) - shown - 1, pointer)
        if _size(head + body + section + note + foot) > limit:
            break
        body += section
        shown += 1
    note = truncation_note(len(results) - shown, pointer, details_dropped=True)
    lines = head + body + note + foot
    while _size(lines) > limit and len(head) > 3:  # a pathological header (thousands of specs)
        head = head[:-1]
        lines = head + body + note + foot
    return "\n".join(lines) + "\n"


def truncation_note(hidden: int, pointer: str, *, details_dropped: bool = False) -> list[str]:
    what = "details were left out"
    if hidden > 0:
        what = f"{plural(hidden, 'spec section')} and the details were left out"
    elif not details_dropped:
        return []
    return ["", f"> ✂️ This report was truncated to fit GitHub's size limit: {what}; {pointer}."]
