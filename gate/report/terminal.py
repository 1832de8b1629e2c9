"""Terminal report (rich): findings with ``path:line:col``, metrics, performance, one verdict line.

Rendered into a string (``Console(file=StringIO)``) so it stays a pure function; colour only when
the context asks for it (the CLI passes ``color=True`` when stdout is a terminal).
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gate.report.interface import ReportContext
from gate.report.summary import (
    DECISION_LABEL,
    Level,
    configuration_log,
    label_of,
    level_of,
    metric_drop,
    metric_tolerance,
    num,
    overall_decision,
    ranked_findings,
    split_section,
    summary_line,
    with_unit,
)
from gate.result import Decision, GateResult

STYLE = {Decision.passed: "bold green", Decision.failed: "bold red", Decision.inconclusive: "bold yellow",
         Decision.error: "bold magenta"}
LEVEL_STYLE = {Level.error: "red", Level.warning: "yellow", Level.notice: "cyan"}


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    ctx = context or ReportContext()
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=ctx.width, force_terminal=ctx.color, no_color=not ctx.color,
        color_system="standard" if ctx.color else None, highlight=False, emoji=False, soft_wrap=False,
    )
    for r in results:
        _spec(console, r)
    for d in ctx.deleted:
        console.print(f"{d.path}: deleted" + (f" (renamed to {d.renamed_to})" if d.renamed_to else "") + "; not run")
    for note in ctx.extra_notes:
        console.print(note)
    console.print(summary_line(results) if results else "No specs: nothing to gate.")
    decision = overall_decision(results)
    console.print(Text(f"quant-gate: {DECISION_LABEL[decision]}", style=STYLE[decision]))
    return buffer.getvalue()


def _spec(console: Console, r: GateResult) -> None:
    title = f"{r.spec.path}" + (f" ({r.spec.name})" if r.spec.name else "") + f" · gate {r.command}"
    console.rule(Text(title, style="bold"), align="left")
    if r.findings:
        table = Table(title="Findings", title_justify="left", expand=False, show_lines=False)
        table.add_column("Level")
        table.add_column("Rule")
        table.add_column("Where", overflow="fold")
        table.add_column("Message", overflow="fold")
        for item in ranked_findings([r]):
            f = item.finding
            level = level_of(f)
            tag = " (waived)" if f.waived else (" (audit)" if f.mode == "audit" else "")
            message = Text(f.message)
            if f.hint:
                message.append(f"\nHint: {f.hint}", style="dim")
            table.add_row(Text(level.value + tag, style=LEVEL_STYLE[level]), f"{f.rule_id} {f.slug}",
                          str(f.location) if f.location else "—", message)
        console.print(table)
    for plan_line in plan_lines(r):
        console.print(Text(plan_line, style="dim" if plan_line.startswith("  ") else ""))
    if r.metrics:
        table = Table(title="Metrics (baseline vs quantized)", title_justify="left")
        for name, justify in (("Task / metric", "left"), ("n", "right"), ("Baseline", "right"),
                              ("Quantized", "right"), ("Degradation [CI]", "left"), ("Tolerance", "left"),
                              ("Outcome", "left")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for m in r.metrics:
            n = f"{m.n}/{m.n_total}" if m.n_total and m.n_total != m.n else str(m.n)
            table.add_row(f"{m.task} / {m.metric}", n, num(m.baseline), num(m.quantized), metric_drop(m),
                          metric_tolerance(m), Text(m.outcome.value, style=STYLE[m.outcome]))
        console.print(table)
    for title, section in (("Performance and memory", r.performance), ("Fidelity", r.fidelity)):
        pairs, rest = split_section(section)
        if not pairs and not rest:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("Measurement")
        if pairs:
            table.add_column("Baseline", justify="right")
            table.add_column("Quantized", justify="right")
            table.add_column("Ratio", justify="right")
            for p in pairs:
                table.add_row(label_of(p.key), with_unit(p.key, p.baseline), with_unit(p.key, p.quantized),
                              f"{num(p.ratio, 3)}x" if p.ratio is not None else "—")
            for key, value in rest.items():
                table.add_row(label_of(key), "", with_unit(key, value), "")
        else:
            table.add_column("Value", justify="right")
            for key, value in rest.items():
                table.add_row(label_of(key), with_unit(key, value))
        console.print(table)
    config = configuration_log(r)
    if r.metrics or r.performance:
        shown = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("path", "name", "sha256"))
        console.print(Text(f"configuration: {shown}", style="dim"))
    line = Text(f"{r.spec.path}: {DECISION_LABEL[r.verdict.decision]}", style=STYLE[r.verdict.decision])
    if r.verdict.reasons and r.verdict.decision is not Decision.passed:
        line.append(" — " + "; ".join(r.verdict.reasons))
    console.print(line)


def plan_lines(r: GateResult) -> list[str]:
    """The memory plan's breakdown and headroom (empty when the plan stage did not run)."""
    if not r.plan:
        return []
    from pydantic import ValidationError

    from gate.plan.memory import MemoryPlan

    try:
        return MemoryPlan.model_validate(r.plan).summary()
    except ValidationError:
        return []
