"""Markdown report for the pull-request comment and the step summary.

Verdict first, then a table of specs, then one section per spec: findings linked to the spec line,
metrics with confidence intervals, performance, a mermaid chart (GitHub renders it without image
hosting) and collapsible details. The first line is a hidden marker so the workflow updates one
sticky comment. Output stays under ``limit`` bytes: details go first, then whole spec sections,
replaced by a pointer to the full report.
"""

from __future__ import annotations

import math

from gate import __version__
from gate.report.interface import ReportContext
from gate.report.summary import (
    DECISION_LABEL,
    Comparison,
    Level,
    configuration_log,
    flatten,
    label_of,
    level_counts,
    level_of,
    memory_comparison,
    metric_drop,
    metric_tolerance,
    num,
    overall_decision,
    plural,
    ranked_findings,
    split_section,
    summary_line,
    with_unit,
)
from gate.result import RESULT_SCHEMA_VERSION, Decision, Finding, GateResult

MARKER = "<!-- quant-gate:report -->"
"""Hidden first line of every comment: the workflow finds and updates the comment carrying it."""

COMMENT_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; keep a margin (measured in UTF-8 bytes)."""

ICON = {Decision.passed: "✅", Decision.failed: "❌", Decision.inconclusive: "⚠️", Decision.error: "💥"}
LEVEL_ICON = {Level.error: "🛑 error", Level.warning: "⚠️ warning", Level.notice: "💬 notice"}


def cell(text: object) -> str:
    """Text safe inside a table cell: no pipes, no newlines, no raw HTML."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
        .replace("\r", "").replace("\n", "<br>")
    )


def code(text: str) -> str:
    return f"`{text.replace('`', '')}`"


def where(finding: Finding, context: ReportContext) -> str:
    loc = finding.location
    if loc is None:
        return "—"
    link = context.link(loc.path, loc.line)
    return f"[{cell(str(loc))}]({link})" if link else code(str(loc))


def spec_title(result: GateResult, context: ReportContext) -> str:
    link = context.link(result.spec.path)
    path = f"[{code(result.spec.path)}]({link})" if link else code(result.spec.path)
    return f"**{cell(result.spec.name)}** {path}" if result.spec.name else path


def header(results: list[GateResult], context: ReportContext) -> list[str]:
    decision = overall_decision(results)
    lines = [MARKER, f"## {ICON[decision]} quant-gate: {DECISION_LABEL[decision]}", ""]
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
    if not results:
        return []
    lines = [
        "",
        "| Spec | Verdict | Quantization | Blocking | Warnings | Metrics within tolerance | Peak memory |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        counts = level_counts([r])
        within = sum(1 for m in r.metrics if m.outcome is Decision.passed)
        metrics = f"{within}/{len(r.metrics)}" if r.metrics else "—"
        quant = f"{r.spec.method} w{r.spec.bits}" if r.spec.method and r.spec.bits else (r.spec.method or "—")
        memory = memory_comparison(r)
        mem = f"{with_unit(memory.key, memory.baseline)} → {with_unit(memory.key, memory.quantized)}" if memory else "—"
        lines.append(
            f"| {spec_title(r, context)} | {ICON[r.verdict.decision]} {DECISION_LABEL[r.verdict.decision]} "
            f"| {cell(quant)} | {counts[Level.error]} | {counts[Level.warning]} | {metrics} | {cell(mem)} |"
        )
    return lines


def spec_section(r: GateResult, context: ReportContext, *, details: bool) -> list[str]:
    d = r.verdict.decision
    lines = ["", f"### {ICON[d]} {r.spec.name or r.spec.path}", ""]
    lines.append(f"{spec_title(r, context)} · `gate {r.command}` · **{DECISION_LABEL[d]}**")
    if r.verdict.reasons:
        lines.append("")
        lines.extend(f"- {cell(reason)}" for reason in r.verdict.reasons)
    lines += findings_table(r, context)
    lines += metrics_table(r)
    lines += performance_table(r)
    lines += chart(r)
    if details:
        lines += details_blocks(r)
    return lines


def findings_table(r: GateResult, context: ReportContext) -> list[str]:
    if not r.findings:
        return []
    lines = ["", "| Level | Rule | Where | Message |", "|---|---|---|---|"]
    for item in ranked_findings([r]):
        f = item.finding
        level = LEVEL_ICON[level_of(f)]
        tags = [t for t in ("audit" if f.mode == "audit" else "", "waived" if f.waived else "") if t]
        if tags:
            level += f" ({', '.join(tags)})"
        message = cell(f.message)
        if f.hint:
            message += f"<br>_Hint:_ {cell(f.hint)}"
        if f.waiver is not None:
            message += f"<br>_Waived by {cell(f.waiver.owner)} until {cell(f.waiver.expires)}:_ {cell(f.waiver.reason)}"
        lines.append(f"| {level} | {code(f.rule_id)} {cell(f.slug)} | {where(f, context)} | {message} |")
    return lines


def metrics_table(r: GateResult) -> list[str]:
    if not r.metrics:
        return []
    lines = [
        "",
        "| Task | Metric | n | Baseline | Quantized | Degradation [CI] | Tolerance | Outcome |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for m in r.metrics:
        n = f"{m.n}/{m.n_total}" if m.n_total and m.n_total != m.n else str(m.n)
        outcome = f"{ICON[m.outcome]} {m.outcome.value}"
        if m.note:
            outcome += f"<br>{cell(m.note)}"
        lines.append(
            f"| {cell(m.task)} | {cell(m.metric)} | {n} | {num(m.baseline)} | {num(m.quantized)} "
            f"| {cell(metric_drop(m))} | {cell(metric_tolerance(m))} | {outcome} |"
        )
    methods = sorted({m.method for m in r.metrics})
    lines += ["", f"<sub>Statistics: {cell('; '.join(methods))}.</sub>"]
    return lines


def performance_table(r: GateResult) -> list[str]:
    lines: list[str] = []
    for title, section in (("Performance", r.performance), ("Fidelity", r.fidelity)):
        pairs, rest = split_section(section)
        if not pairs and not rest:
            continue
        lines += ["", f"**{title}**", ""]
        if pairs:
            lines += ["| Measurement | Baseline | Quantized | Quantized / baseline |", "|---|---:|---:|---:|"]
            for p in pairs:
                ratio = f"{num(p.ratio, 3)}x" if p.ratio is not None else "—"
                lines.append(
                    f"| {cell(label_of(p.key))} | {cell(with_unit(p.key, p.baseline))} "
                    f"| {cell(with_unit(p.key, p.quantized))} | {ratio} |"
                )
            if rest:
                lines.append("")
        if rest:
            lines += ["| Measurement | Value |", "|---|---:|"]
            lines += [f"| {cell(label_of(k))} | {cell(with_unit(k, v))} |" for k, v in rest.items()]
    return lines


def chart_points(r: GateResult) -> list[tuple[str, float]]:
    """Quantized as a percentage of baseline, per metric and per baseline/quantized measurement."""
    points: list[tuple[str, float]] = []
    for m in r.metrics:
        if m.baseline:
            points.append((m.metric if m.task == m.metric else f"{m.task} {m.metric}", 100.0 * m.quantized / m.baseline))
    memory = memory_comparison(r)
    pairs = [memory] if memory else []
    pairs += [p for p in split_section(r.performance)[0] if "tokens_per_s" in p.key and p is not memory]
    for p in pairs:
        if isinstance(p, Comparison) and p.ratio is not None:
            points.append((label_of(p.key), 100.0 * p.ratio))
    return points


def chart(r: GateResult) -> list[str]:
    points = chart_points(r)
    if not points:
        return []
    top = max(120, math.ceil(max(v for _, v in points) / 20.0) * 20)
    labels = ", ".join('"' + label.replace('"', "'") + '"' for label, _ in points)
    return [
        "",
        "```mermaid",
        "xychart-beta",
        f'  title "{(r.spec.name or r.spec.path)}: quantized as % of baseline (bars = baseline)"',
        f"  x-axis [{labels}]",
        f'  y-axis "% of baseline" 0 --> {top}',
        f"  bar [{', '.join('100' for _ in points)}]",
        f"  line [{', '.join(num(round(v, 1), 4) for _, v in points)}]",
        "```",
    ]


def details_blocks(r: GateResult) -> list[str]:
    blocks: list[tuple[str, dict[str, str]]] = [("Configuration log", configuration_log(r))]
    if r.artifact:
        blocks.append(("Artifact and calibration", {k: with_unit(k, v) for k, v in flatten(r.artifact).items()}))
    if r.weights:
        blocks.append(("Weights", {k: with_unit(k, v) for k, v in flatten(r.weights).items()}))
    if r.plan:
        blocks.append(("Plan", {k: with_unit(k, v) for k, v in flatten(r.plan).items()}))
    if r.stages:
        blocks.append((
            "Stages",
            {s.stage: f"{s.status}, {num(round(s.seconds, 2))} s"
             + (" (cache hit)" if s.cache_hit else "") + (f": {s.message}" if s.message else "")
             for s in r.stages},
        ))
    if r.runtime:
        blocks.append(("Runtime versions", dict(r.runtime)))
    if r.error:
        blocks.append(("Error", {"error": r.error}))
    lines: list[str] = []
    for title, rows in blocks:
        if not rows:
            continue
        lines += ["", f"<details><summary>{title}</summary>", "", "| Key | Value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in rows.items()]
        lines += ["", "</details>"]
    return lines


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
