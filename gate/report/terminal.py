"""Terminal report (rich): per spec the decision and its reason, one criteria table, the findings.

Rendered into a string (``Console(file=StringIO)``) so it stays a pure function of the results and
the context; colour only when the context asks for it (the CLI passes ``color=True`` when stdout is
a terminal). The width is the terminal's (``terminal_width``: ``COLUMNS``, else the real terminal,
else 120 for CI logs and pipes), so tables never wrap their borders; cells wrap at word
boundaries and a ``path:line:col`` is never split. Every string is passed through ``safe.plain``
or ``safe.one_line``: escape sequences from a pull request never reach the terminal or the log.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gate.report.criteria import Row, constraint_warnings, criteria, deciding_reason
from gate.report.interface import ReportContext
from gate.report.safe import one_line, plain
from gate.report.summary import (
    DECISION_LABEL,
    Level,
    configuration_log,
    level_of,
    overall_decision,
    ranked_findings,
    summary_line,
    waiver_text,
)
from gate.result import Decision, GateResult

STYLE = {Decision.passed: "bold green", Decision.failed: "bold red", Decision.inconclusive: "bold yellow",
         Decision.error: "bold magenta"}
LEVEL_STYLE = {Level.error: "red", Level.warning: "yellow", Level.notice: "cyan"}

NON_TTY_WIDTH = 120
"""Width for CI logs and pipes: wide enough for the tables, narrow enough for a log viewer."""
MIN_WIDTH, MAX_WIDTH = 60, 200


def terminal_width(stream: TextIO | None = None) -> int:
    """``COLUMNS`` when set, else the terminal's width, else ``NON_TTY_WIDTH``; clamped to 60..200."""
    width = NON_TTY_WIDTH
    columns = os.environ.get("COLUMNS", "")
    out = stream if stream is not None else sys.stdout
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    else:
        try:
            if out.isatty():
                width = os.get_terminal_size(out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            pass
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    ctx = context or ReportContext()
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=ctx.width or terminal_width(), force_terminal=ctx.color, no_color=not ctx.color,
        color_system="standard" if ctx.color else None, highlight=False, emoji=False, soft_wrap=False,
        markup=False,
    )
    for r in results:
        _spec(console, r)
    for d in ctx.deleted:
        console.print(Text(f"{one_line(d.path)}: deleted"
                           + (f" (renamed to {one_line(d.renamed_to)})" if d.renamed_to else "") + "; not run"))
    for note in ctx.extra_notes:
        console.print(Text(one_line(note)))
    console.print(Text(summary_line(results) if results else "No specs: nothing to gate."))
    decision = overall_decision(results)
    console.print(Text(f"quant-gate: {DECISION_LABEL[decision]}", style=STYLE[decision]))
    return buffer.getvalue()


def _spec(console: Console, r: GateResult) -> None:
    title = one_line(r.spec.path) + (f" ({one_line(r.spec.name)})" if r.spec.name else "") + f" · gate {r.command}"
    console.rule(Text(title, style="bold"), align="left")
    d = r.verdict.decision
    line = Text(f"{DECISION_LABEL[d]}", style=STYLE[d])
    line.append(f" — {deciding_reason(r)}")
    console.print(line)
    for text in constraint_warnings(r):
        console.print(Text(f"constraint defeated: {text}", style="yellow"))
    if r.findings:
        console.print(findings_table(r, console.width))
    for plan_line in plan_lines(r):
        console.print(Text(plan_line, style="dim" if plan_line.startswith("  ") else ""))
    if r.power is not None:
        console.print(Text("chance to PASS an unchanged model at the declared sizes:"))
        for label, words in r.power.rows():
            console.print(Text(f"  {one_line(label)}: {one_line(words)}", style="dim"))
    rows = criteria(r)
    if rows:
        console.print(criteria_table(rows, console.width))
    config = configuration_log(r)
    if r.criteria:
        shown = ", ".join(f"{k}={one_line(v)}" for k, v in config.items() if k not in ("path", "name", "sha256"))
        console.print(Text(f"configuration: {shown}", style="dim"))
    verdict = Text(f"{one_line(r.spec.path)}: {DECISION_LABEL[d]}", style=STYLE[d])
    if r.verdict.reasons and d is not Decision.passed:
        verdict.append(" — " + "; ".join(one_line(reason) for reason in r.verdict.reasons))
    console.print(verdict)


MAX_WORD = 40
"""Longest word a column is widened for; longer ones (a URL) may fold."""


def column_widths(headers: list[str], rows: list[list[Text]], width: int,
                  whole: frozenset[int] = frozenset()) -> list[int] | None:
    """Column widths that fit ``width`` without splitting a word (None: let rich squeeze them).

    Each column gets at least its longest word (a ``path:line:col`` is one word) and the header,
    then the room left goes to the columns whose text would wrap, in proportion to what they lack.
    Columns in ``whole`` (numbers with units) get their longest line: they never wrap.
    """
    n = len(headers)
    available = width - (n + 1) - 2 * n  # borders and one space of padding either side
    cells = [[h, *(row[i].plain for row in rows)] for i, h in enumerate(headers)]
    lines = [[line for c in col for line in c.split("\n")] for col in cells]
    most = [max(len(line) for line in col) for col in lines]
    least = [m if i in whole else min(max(len(w) for line in col for w in [*line.split(), ""]), MAX_WORD, m)
             for i, (col, m) in enumerate(zip(lines, most, strict=True))]
    if sum(most) <= available:
        return most
    if sum(least) > available:
        return None
    widths = list(least)
    room = available - sum(widths)
    while room > 0:
        wanting = [i for i in range(n) if widths[i] < most[i]]
        if not wanting:
            break
        lack = sum(most[i] - widths[i] for i in wanting)
        given = 0
        for i in wanting:
            share = max(1, (room * (most[i] - widths[i])) // lack)
            share = min(share, most[i] - widths[i], room - given)
            widths[i] += share
            given += share
            if given >= room:
                break
        room -= given
    return widths


def fitted_table(title: str, headers: list[tuple[str, str]], rows: list[list[Text]], width: int,
                 whole: frozenset[int] = frozenset()) -> Table:
    """A table whose columns fit ``width``; cells wrap at word boundaries."""
    table = Table(title=title, title_justify="left")
    widths = column_widths([h for h, _ in headers], rows, width, whole)
    for i, (header, justify) in enumerate(headers):
        table.add_column(header, justify=justify, overflow="fold",  # type: ignore[arg-type]
                         width=widths[i] if widths else None)
    for row in rows:
        table.add_row(*row)
    return table


def findings_table(r: GateResult, width: int) -> Table:
    """Level, rule, where, message; in a narrow terminal the location goes under the rule."""
    rows: list[list[Text]] = []
    for item in ranked_findings([r]):
        f = item.finding
        level = level_of(f)
        tag = " (waived)" if f.waived else (" (audit)" if f.mode == "audit" else "")
        message = Text(plain(f.message))
        if f.hint:
            message.append(f"\nHint: {one_line(f.hint)}", style="dim")
        waiver = waiver_text(f, r)
        if waiver:
            message.append("\n" + waiver[0].upper() + waiver[1:], style="cyan")
        rows.append([Text(level.value + tag, style=LEVEL_STYLE[level]), Text(f"{f.rule_id} {one_line(f.slug)}"),
                     Text(one_line(f.location) if f.location else "—"), message])
    headers = [("Level", "left"), ("Rule", "left"), ("Where", "left"), ("Message", "left")]
    if column_widths([h for h, _ in headers], rows, width) is not None:
        return fitted_table("Findings", headers, rows, width)
    stacked = [[level, Text.assemble(rule, "\n", where), message] for level, rule, where, message in rows]
    return fitted_table("Findings", [("Level", "left"), ("Rule and where", "left"), ("Message", "left")], stacked, width)


OUTCOME_TEXT = {Decision.passed: "pass", Decision.failed: "FAIL", Decision.inconclusive: "inconclusive",
                Decision.error: "error"}


def criteria_table(criteria_rows: list[Row], width: int) -> Table:
    rows: list[list[Text]] = []
    for c in criteria_rows:
        if c.outcome is not None:
            outcome = Text(OUTCOME_TEXT[c.outcome], style=STYLE[c.outcome])
        else:
            outcome = Text("not judged" if c.limit != "—" else "—", style="dim")
        if c.note:
            outcome.append(f"\n{one_line(c.note)}", style="dim")
        rows.append([Text(one_line(c.name)), Text(c.baseline), Text(c.candidate), Text(c.change), Text(c.limit),
                     outcome])
    title = "Criteria (baseline vs quantized)"
    headers = [("Criterion", "left"), ("Baseline", "right"), ("Candidate", "right"), ("Change", "left"),
               ("Limit", "left"), ("Outcome", "left")]
    if column_widths([h for h, _ in headers], rows, width, frozenset({1, 2, 4})) is not None:
        return fitted_table(title, headers, rows, width, frozenset({1, 2, 4}))
    # Narrow terminal: baseline above candidate in one column; the limit may wrap between words.
    narrow = [[name, Text(f"{base.plain}\n→ {cand.plain}"), change, limit, outcome]
              for name, base, cand, change, limit, outcome in rows]
    headers = [("Criterion", "left"), ("Baseline → candidate", "right"), ("Change", "left"), ("Limit", "left"),
               ("Outcome", "left")]
    return fitted_table(title, headers, narrow, width, frozenset({1}))


def plan_lines(r: GateResult) -> list[str]:
    """The memory plan's breakdown and headroom (empty when the plan stage did not run)."""
    return [plain(line) for line in r.plan.summary()] if r.plan is not None else []
